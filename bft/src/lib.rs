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
//! A value is a batch's checkpoint body (C2SP note text) and payload; a
//! precommit for a value signs the note text [`commit_note_text`], so each
//! signature of a decided certificate is a note signature over the checkpoint
//! body plus one `stele-bft {height} {round} {view} {digest}` line. pBFT's
//! view is a position in the proposer schedule: round r of a height runs in
//! view `base + r` (for its first rounds), and a height decided in view v
//! gives the next height view base v, so the proposer (the primary) keeps its
//! role across heights until a round change. A node may park between heights
//! ([`BftConfig::park_between_heights`]): no rounds or timers while idle.
//!
//! Modules:
//! - [`value`]: [`Value`] (checkpoint body and payload) and [`ValueId`]
//!   (digest and body), with the body's checks.
//! - [`context`]: Stele's Malachite `Context` (ids, heights, proposals, votes;
//!   the view base of the height the core runs).
//! - [`validators`]: validators with Ed25519 keys and powers; the set, its
//!   power-weighted proposer schedule by view, and [`round_view`].
//! - [`signing`]: canonical, domain-separated sign-bytes and note texts;
//!   Ed25519 signing; [`verify_certificate`] for decided values.
//! - [`validity`]: the seam that says whether a proposed batch is valid
//!   (replicas re-execute it in Stele), with in-memory twins.
//! - [`events`]: [`Event`]s in, [`Action`]s out, [`Message`]s, the config.
//! - [`node`]: [`BftNode`], events in, ordered actions out; views, parking,
//!   WAL replay; `effects` (private) answers each of the core's effects.
//! - [`codec`]: a [`WalEntry`]'s bytes (a format byte, then CBOR of private
//!   mirror types); decoding refuses, never panics on, damaged bytes.
//! - [`wire`]: a [`Message`]'s and a [`Decision`]'s bytes, the same way.
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
//!    set; a bad one is dropped, never an error that stops the node. A vote
//!    whose signature depends on a view base the node does not know (a
//!    precommit for a value of another height) does not verify.
//! 4. A [`Action::Decided`] carries a certificate that [`verify_certificate`]
//!    accepts in the action's view: distinct signers of the set holding > 2/3
//!    of the power, each signing [`commit_note_text`].
//! 5. A validator set is non-empty, sorted, with distinct ids and keys,
//!    positive powers and a total <= `u64::MAX / 3`.
//! 6. A value's checkpoint body is a well-formed note body (see [`Value::new`]);
//!    every decoder checks it.

pub mod codec;
pub mod context;
mod effects;
pub mod error;
pub mod events;
pub mod node;
pub mod signing;
pub mod validators;
pub mod validity;
pub mod value;
pub mod wal;
pub mod wire;

pub use arc_malachitebft_core_types::{
    CommitCertificate, CommitSignature, LinearTimeouts, NilOrVal, Round, Timeout, TimeoutKind,
    VoteType,
};
pub use codec::{WalEntryKind, WAL_ENTRY_FORMAT};
pub use context::{Height, Proposal, SteleContext, ValidatorId, Vote};
pub use error::{BftError, WalError};
pub use events::{Action, BftConfig, BftStats, Event, Message, WalEntry};
pub use node::BftNode;
pub use signing::{
    certificate_note_text, commit_note_text, sign_proposal, sign_vote, verify_certificate,
    Signature, SignedProposal, SignedVote,
};
pub use validators::{round_view, select_proposer, Validator, ValidatorSet, STICKY_ROUNDS};
pub use validity::{AcceptAll, Validity, ValidityFn};
pub use value::{Value, ValueId, CHECKPOINT_BODY_BYTES_MAX};
pub use wal::{TornTail, Wal, WAL_ENTRY_BYTES_MAX};
pub use wire::{Decision, MESSAGE_BYTES_MAX};
