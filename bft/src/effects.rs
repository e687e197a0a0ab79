//! Answers to the Malachite core's effects, for [`crate::node::BftNode`].
//!
//! Each effect becomes an [`Action`] for the host, an answer computed here
//! (signatures, certificate checks), an input queued for after the current
//! `process!` call (a synced value, a re-proposal), or an [`Outcome`] the node
//! acts on (a decision; the height's end, after which the node starts the next
//! height or parks).
//!
//! Signatures of proposals and precommits for a value depend on the view base
//! of their height (see [`crate::signing`]); the core signs and verifies only
//! messages of the height it runs, whose base is [`EffectContext::view_base`],
//! and one of another height never verifies.

use std::collections::{BTreeMap, VecDeque};

use arc_malachitebft_core_consensus::{
    ConsensusMsg, Effect, Input, LivenessMsg, LocallyProposedValue, ProposedValue, Resumable,
    SignedConsensusMsg, VoteExtensionError,
};
use arc_malachitebft_core_types::{
    CertificateError, CommitCertificate, Round, ThresholdParam, Timeouts, Validity as CoreValidity,
    ValueOrigin,
};

use crate::context::{Height, SteleContext, Value};
use crate::events::{Action, BftConfig, BftStats, Message, WalEntry};
use crate::signing::{
    check_commit_certificate, check_polka_certificate, check_round_certificate, sign_proposal,
    sign_vote, verify_proposal, verify_vote,
};
use crate::validators::{round_view, ValidatorSet};

/// What the node acts on once `process!` returns.
#[derive(Default)]
pub(crate) struct Outcome {
    /// A decision: where its `Action::Decided` goes among the actions, its
    /// certificate and the view it was decided in.
    pub(crate) decided: Option<(usize, CommitCertificate<SteleContext>, u64)>,
    /// The height ended (Malachite's `Finalize`): the decided height and view.
    pub(crate) finalized: Option<(Height, u64)>,
}

/// What an effect handler may touch while the core holds the state.
pub(crate) struct EffectContext<'a> {
    /// The height the effects belong to.
    pub(crate) height: Height,
    /// That height's view base.
    pub(crate) view_base: u64,
    pub(crate) config: &'a BftConfig,
    pub(crate) replaying: bool,
    /// A synced certificate being fed, with the view it was decided in (which
    /// may differ from this node's view of its round: see `Event::Synced`).
    pub(crate) synced: Option<&'a (CommitCertificate<SteleContext>, u64)>,
    pub(crate) proposed: &'a mut BTreeMap<Round, Value>,
    pub(crate) stats: &'a mut BftStats,
    pub(crate) actions: &'a mut Vec<Action>,
    pub(crate) queue: &'a mut VecDeque<Input<SteleContext>>,
    pub(crate) outcome: &'a mut Outcome,
}

type Resume = arc_malachitebft_core_consensus::Resume<SteleContext>;

/// Whether two commit certificates hold the same signatures for the same
/// height, round and value, in any order (Malachite sorts a synced
/// certificate's signatures by signer).
fn same_certificate(
    a: &CommitCertificate<SteleContext>,
    b: &CommitCertificate<SteleContext>,
) -> bool {
    let signatures = |certificate: &CommitCertificate<SteleContext>| {
        let mut signatures: Vec<_> = certificate
            .commit_signatures
            .iter()
            .map(|s| (s.address, s.signature))
            .collect();
        signatures.sort_unstable();
        signatures
    };
    (a.height, a.round, &a.value_id) == (b.height, b.round, &b.value_id)
        && signatures(a) == signatures(b)
}

impl EffectContext<'_> {
    /// The view `certificate` was decided in: the synced one's for the
    /// certificate being synced, else its round's view at this height.
    fn decided_view(&self, certificate: &CommitCertificate<SteleContext>) -> u64 {
        match self.synced {
            Some((synced, view)) if same_certificate(synced, certificate) => *view,
            _ => round_view(certificate.height, self.view_base, certificate.round),
        }
    }

    /// The commit-certificate check, refusing another height's certificate.
    // Malachite takes its certificate error as is (a `Resume` of this type).
    #[allow(clippy::result_large_err)]
    fn check_commit(
        &self,
        certificate: &CommitCertificate<SteleContext>,
        set: &ValidatorSet,
        threshold: ThresholdParam,
    ) -> Result<(), CertificateError<SteleContext>> {
        if certificate.height != self.height {
            return Err(CertificateError::NotEnoughVotingPower {
                signed: 0,
                total: set.total_power(),
                expected: threshold.min_expected(set.total_power()),
            });
        }
        check_commit_certificate(certificate, set, threshold, self.decided_view(certificate))
    }

    /// Answers one effect. Never `Err`: Malachite turns an error into a
    /// resume that aborts the input, and a peer must not be able to do that;
    /// failed checks answer `false` or a certificate error instead.
    pub(crate) fn on_effect(&mut self, effect: Effect<SteleContext>) -> Result<Resume, ()> {
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
                let value = Value::from_bytes(&response.value_bytes)
                    .ok()
                    .filter(|value| value.id() == response.certificate.value_id);
                if let Some(value) = value {
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
                let view = self.decided_view(&certificate);
                self.outcome.decided = Some((self.actions.len(), certificate, view));
                r.resume_with(())
            }
            Effect::Finalize(certificate, _extensions, _evidence, r) => {
                // The node starts the next height, or parks.
                let view = self.decided_view(&certificate);
                self.outcome.finalized = Some((certificate.height, view));
                r.resume_with(())
            }
            Effect::SignVote(vote, r) => {
                r.resume_with(sign_vote(&self.config.signing_key, vote, self.view_base))
            }
            Effect::SignProposal(proposal, r) => {
                let key = &self.config.signing_key;
                r.resume_with(sign_proposal(key, proposal, self.view_base))
            }
            Effect::VerifySignature(signed, public_key, r) => {
                let valid = match &signed.message {
                    // Another height's base is not known here: refuse.
                    ConsensusMsg::Vote(vote) => {
                        vote.height == self.height
                            && verify_vote(vote, &signed.signature, &public_key, self.view_base)
                    }
                    ConsensusMsg::Proposal(proposal) => {
                        proposal.height == self.height
                            && verify_proposal(
                                proposal,
                                &signed.signature,
                                &public_key,
                                self.view_base,
                            )
                    }
                };
                r.resume_with(valid)
            }
            Effect::VerifyCommitCertificate(certificate, set, thresholds, r) => {
                r.resume_with(self.check_commit(&certificate, &set, thresholds.quorum))
            }
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
                    None => self.check_commit(
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
                let result = if certificate.height == self.height {
                    check_round_certificate(&certificate, &set, thresholds, self.view_base)
                } else {
                    Err(CertificateError::NotEnoughVotingPower {
                        signed: 0,
                        total: set.total_power(),
                        expected: thresholds.quorum.min_expected(set.total_power()),
                    })
                };
                r.resume_with(result)
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
