//! What goes into a [`crate::BftNode`] and what comes out: [`Event`]s,
//! [`Action`]s, the [`Message`]s validators exchange, the node's
//! [`BftConfig`] and [`BftStats`], and a [`WalEntry`].

use std::time::Duration;

use arc_malachitebft_core_consensus::Input;
use arc_malachitebft_core_types::{
    CommitCertificate, LinearTimeouts, PolkaCertificate, Round, RoundCertificate, Timeout,
};
use ed25519_dalek::SigningKey;

use crate::context::{Height, SteleContext, ValidatorId, Value};
use crate::signing::{SignedProposal, SignedVote};
use crate::validators::ValidatorSet;

/// A message between validators. Each carries its own signatures; the
/// transport's sender is not trusted. [`Message::encode`] and
/// [`Message::decode`] give its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A signed proposal (the value travels inside: `ProposalOnly`).
    Proposal(SignedProposal),
    /// A signed prevote or precommit.
    Vote(SignedVote),
    /// > 2/3 prevotes for one value (sent with a re-proposal).
    PolkaCertificate(PolkaCertificate<SteleContext>),
    /// A round's precommits, or > 1/3 votes of a later round (skip).
    RoundCertificate(RoundCertificate<SteleContext>),
}

impl Message {
    /// The height the message belongs to.
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(proposal) => proposal.height,
            Message::Vote(vote) => vote.height,
            Message::PolkaCertificate(certificate) => certificate.height,
            Message::RoundCertificate(certificate) => certificate.height,
        }
    }
}

/// What happened to the node.
#[derive(Clone, Debug)]
pub enum Event {
    /// Start the node's height if it is not started: the first height, or a
    /// parked one ([`BftNode::parked`](crate::BftNode::parked)); a no-op
    /// otherwise (a recovered node is already started).
    Start,
    /// A message from a peer (never the node's own broadcasts). While parked,
    /// a message of the node's height or a later one whose signatures check
    /// out starts the height first; any other is dropped.
    Message(ValidatorId, Message),
    /// A timeout scheduled by [`Action::ScheduleTimeout`] elapsed.
    TimeoutElapsed(Height, Timeout),
    /// The value asked for by [`Action::GetValue`].
    ValueToPropose(Height, Round, Value),
    /// A decided value, its certificate and the view it was decided in, fetched
    /// from a peer for the node's height (catch-up; see [`crate::Decision`]).
    /// The certificate is checked before use (a bad one counts in
    /// [`BftStats::rejected_syncs`]); a parked node starts the height first.
    Synced {
        /// The decided value.
        value: Value,
        /// Its commit certificate.
        certificate: CommitCertificate<SteleContext>,
        /// The view it was decided in (its signatures sign it).
        view: u64,
    },
}

/// An entry of the write-ahead log: an input the core must see again after a
/// restart (its own votes and proposals among them). [`WalEntry::encode`] and
/// [`WalEntry::decode`] give its bytes, [`crate::Wal`] keeps it on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalEntry {
    /// The height the entry belongs to.
    pub height: Height,
    /// The logged input (opaque to the host: see [`WalEntry::kind`]).
    pub(crate) input: Input<SteleContext>,
}

/// What the host must do, in the order returned.
#[derive(Clone, Debug)]
pub enum Action {
    /// Make the entry durable before acting on any later action.
    PersistWal(WalEntry),
    /// Send to every other validator.
    Broadcast(Message),
    /// Feed `Event::TimeoutElapsed(height, timeout)` after `after`, replacing
    /// any pending timer for the same `(height, timeout)`.
    ScheduleTimeout {
        /// The height the timer belongs to.
        height: Height,
        /// The timeout.
        timeout: Timeout,
        /// How long from now.
        after: Duration,
    },
    /// Cancel the timer for `(height, timeout)`.
    CancelTimeout {
        /// The height the timer belongs to.
        height: Height,
        /// The timeout.
        timeout: Timeout,
    },
    /// Cancel every pending timer (also when the node parks).
    CancelAllTimeouts,
    /// This node proposes at `(height, round)`: answer with
    /// `Event::ValueToPropose` before the propose timeout.
    GetValue {
        /// The height to propose for.
        height: Height,
        /// The round to propose in.
        round: Round,
    },
    /// `value` is decided at `height`; commit it with its certificate and view.
    Decided {
        /// The decided height.
        height: Height,
        /// The decided value.
        value: Value,
        /// Precommit signatures of > 2/3 of the voting power, each over
        /// [`crate::certificate_note_text`]`(certificate, view)`.
        certificate: CommitCertificate<SteleContext>,
        /// The view the height was decided in: the next height's view base.
        view: u64,
    },
}

/// Counters of what the node refused or could not do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BftStats {
    /// Distinct proposed values the validity hook refused.
    pub refused_proposals: u64,
    /// Messages dropped before the core: bad signature, wrong proposer, too
    /// far ahead, over a cap, or unverifiable while parked.
    pub dropped_messages: u64,
    /// Synced values whose certificate or value did not check out.
    pub rejected_syncs: u64,
    /// Synced certificates decided in another view than this node's view of
    /// their round (its view base had diverged from the signers'; they vouch
    /// for theirs, which the node adopts).
    pub synced_other_views: u64,
    /// Inputs the core stopped on with an error (none expected).
    pub core_errors: u64,
}

/// The node's identity and the validators it works with.
#[derive(Clone, Debug)]
pub struct BftConfig {
    /// This validator's id.
    pub id: ValidatorId,
    /// This validator's key (its public half must be its key in the set).
    pub signing_key: SigningKey,
    /// The validators (one set for every height at this stage).
    pub validators: ValidatorSet,
    /// Round timeouts.
    pub timeouts: LinearTimeouts,
    /// After a decision, wait for [`Event::Start`] (or a message or synced
    /// value of the next height) before starting the next height, instead of
    /// starting it at once: no rounds, timeouts or round changes while idle.
    /// A new node with this set waits for its first height the same way.
    pub park_between_heights: bool,
}
