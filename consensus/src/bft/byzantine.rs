//! Deliberate Byzantine behaviour for the real-process tests of BFT mode.
//! Compiled only with the `byzantine` cargo feature (never in the default
//! binary), chosen per node by `STELE_BYZANTINE=<fault>`.

/// What a Byzantine validator does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByzantineFault {
    /// As proposer, proposes batches whose checkpoint root is not the one its
    /// execution gives.
    WrongRoot,
    /// As proposer, signs two different values for one (height, round), each
    /// sent to half of its peers; sends each vote with a conflicting one to
    /// the other half.
    Equivocate,
    /// Prevotes and precommits every value it sees, without checking it.
    VoteAll,
    /// Sends nothing.
    Silent,
}

impl ByzantineFault {
    /// The fault named `name` (`wrong-root`, `equivocate`, `vote-all`,
    /// `silent`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "wrong-root" => Some(ByzantineFault::WrongRoot),
            "equivocate" => Some(ByzantineFault::Equivocate),
            "vote-all" => Some(ByzantineFault::VoteAll),
            "silent" => Some(ByzantineFault::Silent),
            _ => None,
        }
    }
}

/// `body` with its root changed: a checkpoint no honest execution of the
/// batch gives (a body that does not parse is returned as it is).
pub(crate) fn wrong_root(body: &str) -> String {
    match stele_history::Checkpoint::parse_body(body) {
        Ok(mut checkpoint) => {
            checkpoint.root.0[0] ^= 0xff;
            checkpoint.body()
        }
        Err(_) => body.to_owned(),
    }
}

/// For an equivocating validator: a message that conflicts with `message`,
/// signed by `key` in the height's view base `view_base`. A proposal gets a
/// twin proposing the same batch under a wrong root; a vote for a value gets
/// a twin for nil; nil votes and certificates get none.
pub(crate) fn conflicting(
    message: &stele_bft::Message,
    key: &ed25519_dalek::SigningKey,
    view_base: u64,
) -> Option<stele_bft::Message> {
    use stele_bft::{Message, NilOrVal};
    match message {
        Message::Proposal(signed) => {
            let mut proposal = signed.message.clone();
            let value = stele_bft::Value::new(
                wrong_root(proposal.value.checkpoint_body()),
                proposal.value.payload().to_vec(),
            )
            .ok()?;
            proposal.value = value;
            Some(Message::Proposal(stele_bft::sign_proposal(
                key, proposal, view_base,
            )))
        }
        Message::Vote(signed) => {
            let mut vote = signed.message.clone();
            if matches!(vote.value_id, NilOrVal::Nil) {
                return None;
            }
            vote.value_id = NilOrVal::Nil;
            Some(Message::Vote(stele_bft::sign_vote(key, vote, view_base)))
        }
        _ => None,
    }
}
