//! `stele-history`: the Merkle tree, proofs, signed checkpoints and receipts.
