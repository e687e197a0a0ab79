//! `stele-bft`: BFT ordering on Malachite's Tendermint core (issue P11), stage 1.
//!
//! n = 3f + 1 validators with voting powers order batches: a height is one
//! batch; propose / prevote (> 2/3 power) / precommit (> 2/3 power) are pBFT's
//! pre-prepare / prepare / commit. Only Malachite's sans-IO core is used; this
//! crate answers its effects and leaves IO (transport, timers, WAL storage,
//! ledger) to the host. Nothing here reads a clock or a socket; the one
//! piece of IO offered is the write-ahead log file ([`wal`]), which the host
//! calls.
//!
//! Modules:
//! - [`context`]: Stele's Malachite `Context` (ids, heights, values = batch
//!   bytes identified by SHA-256, proposals, votes).
//! - [`validators`]: validators with Ed25519 keys and powers; the set and its
//!   power-weighted proposer schedule.
//! - [`signing`]: canonical, domain-separated sign-bytes; Ed25519 signing;
//!   [`verify_certificate`] for decided values.
//! - [`validity`]: the seam that says whether a proposed batch is valid
//!   (replicas re-execute it in Stele), with in-memory twins.
//! - [`node`]: [`BftNode`], events in, ordered actions out; WAL replay;
//!   `effects` (private) answers each of the core's effects.
//! - [`codec`]: a [`WalEntry`]'s bytes (a format byte, then CBOR of private
//!   mirror types); decoding refuses, never panics on, damaged bytes.
//! - [`wal`]: [`Wal`], the write-ahead log file of the current height:
//!   checksummed frames, a torn tail cut at open, atomic reset per height.
//! - [`error`]: [`BftError`] (consensus) and [`WalError`] (the log on disk).
//!
//! Invariants kept:
//! 1. A node signs at most one prevote and one precommit per (height, round),
//!    across restarts, provided the host makes each [`Action::PersistWal`]
//!    durable before acting on the actions after it ([`BftNode::recover`]
//!    replays the log and reuses the logged signatures).
//! 2. A node never feeds the core a proposal whose value its [`Validity`] hook
//!    refused, so it never prevotes for it.
//! 3. Every signature from a peer is checked against the signer's key in the
//!    set; a bad one is dropped, never an error that stops the node.
//! 4. A [`Action::Decided`] carries a certificate that [`verify_certificate`]
//!    accepts: distinct signers of the set holding > 2/3 of the power.
//! 5. A validator set is non-empty, sorted, with distinct ids, positive powers
//!    and a total <= `u64::MAX / 3`.

pub mod codec;
pub mod context;
mod effects;
pub mod error;
pub mod node;
pub mod signing;
pub mod validators;
pub mod validity;
pub mod wal;

pub use arc_malachitebft_core_types::{
    CommitCertificate, CommitSignature, LinearTimeouts, NilOrVal, Round, Timeout, TimeoutKind,
    VoteType,
};
pub use codec::{WalEntryKind, WAL_ENTRY_FORMAT};
pub use context::{Height, Proposal, SteleContext, ValidatorId, Value, ValueId, Vote};
pub use error::{BftError, WalError};
pub use node::{Action, BftConfig, BftNode, BftStats, Event, Message, WalEntry};
pub use signing::{
    sign_proposal, sign_vote, verify_certificate, Signature, SignedProposal, SignedVote,
};
pub use validators::{select_proposer, Validator, ValidatorSet};
pub use validity::{AcceptAll, Validity, ValidityFn};
pub use wal::{TornTail, Wal, WAL_ENTRY_BYTES_MAX};
