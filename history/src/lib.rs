//! `stele-history`: the Merkle tree, its proofs, signed checkpoints and
//! receipts. Pure: no IO, no async, no clock.
//!
//! Modules:
//! - [`hash`]: RFC 9162 hashing (leaf = SHA-256(0x00 || leaf), node =
//!   SHA-256(0x01 || left || right), empty tree = SHA-256("")) and [`Digest`].
//! - [`tree`]: [`MerkleTree`], append-only (one leaf or a rayon-parallel batch),
//!   roots, inclusion and consistency proofs against any past size, truncation;
//!   its levels below the 256-leaf tiles kept for a recent window only, older
//!   nodes from [`Tiles`] of leaves the caller reads back.
//! - [`proof`]: verification of those proofs, as an auditor runs it.
//! - [`note`]: C2SP signed notes with Ed25519, verifier keys.
//! - [`checkpoint`]: C2SP tlog checkpoints (origin, size, root) signed as notes.
//! - [`quorum`]: [`ValidatorQuorum`], notes certified by validators holding
//!   more than two thirds of the voting power (BFT mode).
//! - [`leaf`]: [`TransactionId`], [`CommitEvidence`], the leaf (96 bytes, or
//!   128 with the command digest).
//! - [`receipt`]: [`Receipt`], its JSON and its offline verification.
//! - [`identity`]: [`ServiceIdentity`] (signing key, checkpoint origin,
//!   commit-evidence secret, and who certifies committed checkpoints: the
//!   service key, or in BFT mode a [`ValidatorQuorum`]) and [`Genesis`], its
//!   public part in the ledger.
//! - [`state`]: [`HistoryState`], the node's tree, every batch's span and the
//!   recent batches' signed checkpoints; receipts (given the leaf's
//!   components and the checkpoint, read back from the ledger and checked
//!   against the tree) and proofs from them.
//! - `levels`: [`Column`], a sequence in fixed 64 KiB chunks (never copied as
//!   it grows), holding the tree's levels.
//!
//! Invariants:
//! - The tree has RFC 9162's shape for every size, so roots and proofs equal
//!   those of any RFC 9162 implementation (property-tested against rs_merkle
//!   and a direct recursive MTH).
//! - Appending never changes a node that exists: the root at size `n` is the
//!   same before and after later appends (until a `truncate` below `n`).
//! - Memory: about 0.25 bytes per leaf (levels 8 and up) and 16 per batch,
//!   plus a bounded window of recent leaves ([`HistoryState::release`]).
//! - A tile of leaves read back is used only if it hashes to the stored node
//!   above it: a misread ledger gives an error, never a wrong proof.
//! - Text forms are canonical (lowercase hex, decimal without leading zeros,
//!   strict base64): a changed character never parses to the same value.
//! - Bad input is a [`HistoryError`], never a panic.

pub mod checkpoint;
mod error;
pub mod hash;
pub mod identity;
pub mod leaf;
mod levels;
pub mod note;
pub mod proof;
pub mod quorum;
pub mod receipt;
pub mod state;
pub mod tree;

pub use checkpoint::Checkpoint;
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::HistoryError;
pub use hash::Digest;
pub use identity::{Genesis, ServiceIdentity};
pub use leaf::{claims_digest, leaf_bytes_of, CommitEvidence, LeafComponents, TransactionId};
pub use levels::Column;
pub use note::{NoteSigner, NoteVerifier};
pub use proof::{verify_consistency, verify_inclusion};
pub use quorum::{validator_id_of_key_name, validator_key_name, QuorumMember, ValidatorQuorum};
pub use receipt::Receipt;
pub use state::HistoryState;
pub use tree::{Frontier, MerkleTree, Tiles, TILE_LEAVES};
