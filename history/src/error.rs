//! The one error type of `stele-history`.

use thiserror::Error;

/// Everything that can go wrong in the history crate. Every variant is an
/// answer to bad input or a failed check: nothing here is a panic in disguise.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HistoryError {
    /// A leaf index at or past the tree size it is asked about.
    #[error("leaf index {leaf_index} is out of range for a tree of size {tree_size}")]
    LeafIndexOutOfRange {
        /// The index asked for (0-based).
        leaf_index: u64,
        /// The size of the tree it was asked against.
        tree_size: u64,
    },
    /// A tree size larger than the tree that exists.
    #[error("tree size {requested} is beyond the current tree size {tree_size}")]
    TreeSizeBeyondTree {
        /// The size asked for.
        requested: u64,
        /// The size the tree has.
        tree_size: u64,
    },
    /// A consistency proof asked from a larger size to a smaller one.
    #[error("consistency range from {from} to {to} is invalid: from must be <= to")]
    ConsistencyRange {
        /// The older size.
        from: u64,
        /// The newer size.
        to: u64,
    },
    /// An inclusion proof that does not lead to the expected root.
    #[error("inclusion proof is invalid: {0}")]
    InclusionProofInvalid(&'static str),
    /// A consistency proof that does not link the two roots.
    #[error("consistency proof is invalid: {0}")]
    ConsistencyProofInvalid(&'static str),
    /// Text that is not a well-formed C2SP signed note.
    #[error("malformed signed note: {0}")]
    MalformedNote(&'static str),
    /// A note body that is not a well-formed C2SP tlog checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// A key name (origin) that C2SP signed notes do not allow.
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    InvalidKeyName(String),
    /// A verifier key string that is not `<name>+<hex key id>+<base64 key>`.
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    /// A note that carries no signature line from the expected key.
    #[error("the note has no signature from key {name} ({key_id:08x})")]
    NoSignatureFromKey {
        /// The expected key's name.
        name: String,
        /// The expected key's 4-byte ID.
        key_id: u32,
    },
    /// A validator set that cannot certify anything.
    #[error("invalid validator set: {0}")]
    InvalidValidators(&'static str),
    /// A note certified by validators (BFT mode) whose valid signatures hold
    /// no more than two thirds of the voting power.
    #[error("the note's valid validator signatures hold {signed} of {total} voting power; more than two thirds is needed")]
    QuorumNotReached {
        /// The power of the distinct validators whose signature verified.
        signed: u64,
        /// The set's total power.
        total: u64,
    },
    /// A signature line from the expected key whose signature does not verify.
    #[error("the signature of key {name} does not verify")]
    SignatureInvalid {
        /// The key's name.
        name: String,
    },
    /// Text that is not the lowercase hex of the expected number of bytes.
    #[error("malformed hex in {field}: {reason}")]
    MalformedHex {
        /// What the hex was meant to be.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A transaction id that is not `<view>.<seqno>` in canonical decimal.
    #[error("malformed transaction id {0:?}: expected <view>.<seqno> in decimal")]
    MalformedTransactionId(String),
    /// Commit evidence that is not `ce:<view>.<seqno>:<64 lowercase hex>`.
    #[error("malformed commit evidence: {0}")]
    MalformedCommitEvidence(&'static str),
    /// A receipt whose fields disagree with each other.
    #[error("receipt does not verify: {0}")]
    ReceiptMismatch(&'static str),
    /// The history does not rebuild to what the ledger says (a signed
    /// checkpoint differs from the tree), or a rollback that would split a
    /// batch. The consensus engine reports it as its own replay error.
    #[error("ledger replay failed at seqno {seqno}: {reason}")]
    Replay {
        /// Where.
        seqno: u64,
        /// What.
        reason: String,
    },
    /// A node below the tree's in-memory window: the caller reads tile
    /// `tile`'s leaves back, admits them and asks again.
    #[error(
        "leaves {first} to {last} are not in memory: tile {tile} must be read back",
        first = tile * crate::tree::TILE_LEAVES,
        last = (tile + 1) * crate::tree::TILE_LEAVES - 1
    )]
    TileMissing {
        /// The tile (leaves `[tile * 256, (tile + 1) * 256)`).
        tile: u64,
    },
    /// Leaf hashes read back for a tile that are not the tree's.
    #[error("the leaves read back for tile {tile} are refused: {reason}")]
    TileMismatch {
        /// The tile.
        tile: u64,
        /// Why.
        reason: &'static str,
    },
    /// A rollback below the part of the tree still held in memory (only
    /// committed transactions are forgotten, and those are never rolled back).
    #[error("cannot roll the tree back to size {size}: only sizes from {window} are held")]
    TruncateBelowWindow {
        /// The size asked for.
        size: u64,
        /// The first size that can be rolled back to.
        window: u64,
    },
}
