//! Answers to the Malachite core's effects, for [`crate::node::BftNode`].
//!
//! Each effect becomes an [`Action`] for the host, an answer computed here
//! (signatures, certificate checks), or an input queued for after the current
//! `process!` call (the next height, a synced value, a re-proposal).

use std::collections::{BTreeMap, VecDeque};

use arc_malachitebft_core_consensus::{
    ConsensusMsg, Effect, Input, LivenessMsg, LocallyProposedValue, ProposedValue, Resumable,
    SignedConsensusMsg, VoteExtensionError,
};
use arc_malachitebft_core_types::{
    CertificateError, CommitCertificate, Round, Timeouts, Validity as CoreValidity, ValueOrigin,
    VoteExtensionPolicy,
};

use crate::context::{Height, SteleContext, Value};
use crate::node::{Action, BftConfig, BftStats, Message, WalEntry};
use crate::signing::{
    check_commit_certificate, check_polka_certificate, check_round_certificate, sign_proposal,
    sign_vote, verify_proposal, verify_vote,
};

/// What an effect handler may touch while the core holds the state.
pub(crate) struct EffectContext<'a> {
    pub(crate) height: Height,
    pub(crate) config: &'a BftConfig,
    pub(crate) replaying: bool,
    pub(crate) proposed: &'a mut BTreeMap<Round, Value>,
    pub(crate) stats: &'a mut BftStats,
    pub(crate) actions: &'a mut Vec<Action>,
    pub(crate) queue: &'a mut VecDeque<Input<SteleContext>>,
    pub(crate) decided: &'a mut Option<(usize, CommitCertificate<SteleContext>)>,
}

type Resume = arc_malachitebft_core_consensus::Resume<SteleContext>;

impl EffectContext<'_> {
    /// Answers one effect. Never `Err`: Malachite turns an error into a
    /// resume that aborts the input, and a peer must not be able to do that;
    /// failed checks answer `false` or a certificate error instead.
    pub(crate) fn on_effect(&mut self, effect: Effect<SteleContext>) -> Result<Resume, ()> {
        let validators = &self.config.validators;
        Ok(match effect {
            Effect::CancelAllTimeouts(r) => {
                self.actions.push(Action::CancelAllTimeouts);
                r.resume_with(())
            }
            Effect::CancelTimeout(timeout, r) => {
                self.actions.push(Action::CancelTimeout {
                    height: self.height,
                    timeout,
                });
                r.resume_with(())
            }
            Effect::ScheduleTimeout(timeout, r) => {
                let after = Timeouts::<SteleContext>::duration_for(&self.config.timeouts, timeout);
                self.actions.push(Action::ScheduleTimeout {
                    height: self.height,
                    timeout,
                    after,
                });
                r.resume_with(())
            }
            Effect::StartRound(_, _, _, _, r) => r.resume_with(()),
            Effect::PublishConsensusMsg(message, r) => {
                self.actions.push(Action::Broadcast(match message {
                    SignedConsensusMsg::Vote(vote) => Message::Vote(vote),
                    SignedConsensusMsg::Proposal(proposal) => Message::Proposal(proposal),
                }));
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(message, r) => {
                self.actions.push(Action::Broadcast(match message {
                    LivenessMsg::Vote(vote) => Message::Vote(vote),
                    LivenessMsg::PolkaCertificate(c) => Message::PolkaCertificate(c),
                    LivenessMsg::SkipRoundCertificate(c) => Message::RoundCertificate(c),
                }));
                r.resume_with(())
            }
            Effect::RepublishVote(vote, r) => {
                self.actions.push(Action::Broadcast(Message::Vote(vote)));
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(certificate, r) => {
                self.actions
                    .push(Action::Broadcast(Message::RoundCertificate(certificate)));
                r.resume_with(())
            }
            Effect::GetValue(height, round, _timeout, r) => {
                match self.proposed.get(&round) {
                    // A restarted proposer re-proposes its logged value.
                    Some(value) => self
                        .queue
                        .push_back(Input::Propose(LocallyProposedValue::new(
                            height,
                            round,
                            value.clone(),
                        ))),
                    None => self.actions.push(Action::GetValue { height, round }),
                }
                r.resume_with(())
            }
            // ProposalOnly: the core re-publishes the proposal itself.
            Effect::RestreamProposal(.., r) => r.resume_with(()),
            Effect::CertVerifiedSyncValue(response, proposer, r) => {
                let value = Value::new(response.value_bytes.to_vec());
                if value.id() == response.certificate.value_id {
                    // > 2/3 of the power signed it, so an honest validator
                    // checked it: valid without asking the hook.
                    let proposed = ProposedValue {
                        height: response.certificate.height,
                        round: response.certificate.round,
                        valid_round: Round::Nil,
                        proposer,
                        value,
                        validity: CoreValidity::Valid,
                    };
                    self.queue
                        .push_back(Input::ProposedValue(proposed, ValueOrigin::Sync));
                } else {
                    self.stats.rejected_syncs += 1;
                }
                r.resume_with(())
            }
            Effect::CertRejectedSyncValue(.., r) => {
                self.stats.rejected_syncs += 1;
                r.resume_with(())
            }
            Effect::Decide(certificate, _extensions, r) => {
                // The value is read from the state once `process!` returns.
                *self.decided = Some((self.actions.len(), certificate));
                r.resume_with(())
            }
            Effect::Finalize(certificate, _extensions, _evidence, r) => {
                self.queue.push_back(Input::StartHeight(
                    certificate.height.next(),
                    validators.clone(),
                    false,
                    None,
                    VoteExtensionPolicy::Disabled,
                ));
                r.resume_with(())
            }
            Effect::SignVote(vote, r) => r.resume_with(sign_vote(&self.config.signing_key, vote)),
            Effect::SignProposal(proposal, r) => {
                r.resume_with(sign_proposal(&self.config.signing_key, proposal))
            }
            Effect::VerifySignature(signed, public_key, r) => {
                let valid = match &signed.message {
                    ConsensusMsg::Vote(vote) => verify_vote(vote, &signed.signature, &public_key),
                    ConsensusMsg::Proposal(proposal) => {
                        verify_proposal(proposal, &signed.signature, &public_key)
                    }
                };
                r.resume_with(valid)
            }
            Effect::VerifyCommitCertificate(certificate, set, thresholds, r) => r.resume_with(
                check_commit_certificate(&certificate, &set, thresholds.quorum),
            ),
            Effect::VerifyExtendedCommitCertificate(certificate, set, thresholds, _, r) => {
                // Extensions are disabled: a certificate carrying one is refused.
                let result = match certificate
                    .commit_signatures
                    .iter()
                    .find(|signature| signature.extension.is_some())
                {
                    Some(extended) => {
                        Err(CertificateError::UnexpectedVoteExtension(extended.address))
                    }
                    None => check_commit_certificate(
                        &certificate.trim_vote_extensions(),
                        &set,
                        thresholds.quorum,
                    ),
                };
                r.resume_with(result)
            }
            Effect::VerifyPolkaCertificate(certificate, set, thresholds, r) => r.resume_with(
                check_polka_certificate(&certificate, &set, thresholds.quorum),
            ),
            Effect::VerifyRoundCertificate(certificate, set, thresholds, r) => {
                r.resume_with(check_round_certificate(&certificate, &set, thresholds))
            }
            Effect::WalAppend(height, input, r) => {
                if let Input::ProposedValue(value, ValueOrigin::Consensus) = &input {
                    if value.proposer == self.config.id {
                        self.proposed.insert(value.round, value.value.clone());
                    }
                }
                // A replayed entry is already in the log.
                if !self.replaying {
                    self.actions
                        .push(Action::PersistWal(WalEntry { height, input }));
                }
                r.resume_with(())
            }
            // Vote extensions are disabled (the policy never asks for these).
            Effect::ExtendVote(.., r) => r.resume_with(None),
            Effect::VerifyVoteExtension(.., r) => {
                r.resume_with(Err(VoteExtensionError::InvalidVoteExtension))
            }
        })
    }
}
