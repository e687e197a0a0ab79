//! [`TwinSequencer`]: the in-memory twin of the [`Sequencer`] seam, for the
//! replica core's own tests. It logs every proposal at once (durable at
//! once), and the test decides the rest: commit what is pending, or depose
//! this node (truncating what is not committed, as a new leader's log would).

use std::sync::{Arc, Mutex};

use super::{BoxFuture, Leadership, OrderStatus, ProposalDone, Sequencer};
use crate::batch::ExecutedBatch;
use crate::intake::Intake;
use crate::members::{Members, SteleNode};
use crate::replica::Replica;
use crate::sync::lock;
use crate::{ConsensusError, SubmitError};

struct State {
    leadership: Leadership,
    /// Every logged batch, committed ones first.
    log: Vec<ExecutedBatch>,
    /// How many of `log` are committed.
    committed: usize,
    /// The proposals not ended yet, in log order.
    pending: Vec<ProposalDone>,
}

/// An ordering protocol in memory, driven by the test.
pub(crate) struct TwinSequencer {
    replica: Arc<Replica>,
    intake: Arc<Intake>,
    state: Mutex<State>,
}

impl TwinSequencer {
    /// A twin in which node `leader` leads `view`.
    pub(crate) fn new(replica: Arc<Replica>, intake: Arc<Intake>, leader: u64, view: u64) -> Self {
        TwinSequencer {
            replica,
            intake,
            state: Mutex::new(State {
                leadership: Leadership {
                    leader: Some(leader),
                    view,
                    address: Some(format!("node-{leader}:443")),
                },
                log: Vec::new(),
                committed: 0,
                pending: Vec::new(),
            }),
        }
    }

    /// Proposals logged and not committed.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// Commits every pending proposal, in order, as a protocol does: the
    /// high water first, then each batch applied, then its proposer told.
    pub(crate) fn commit_all(&self) -> Result<(), ConsensusError> {
        let (batches, dones) = {
            let mut state = lock(&self.state);
            let batches = state.log[state.committed..].to_vec();
            state.committed = state.log.len();
            (batches, std::mem::take(&mut state.pending))
        };
        if let Some(last) = batches.last() {
            self.replica.raise_high_water(last)?;
        }
        for (batch, done) in batches.iter().zip(dones) {
            self.replica.apply_committed(batch)?;
            done(Ok(()));
        }
        Ok(())
    }

    /// Another node now leads `view`: what is not committed is cut from the
    /// log (its batches rolled back), and its proposers are told.
    pub(crate) fn depose(&self, leader: u64, view: u64) {
        let (cut, dones, leadership) = {
            let mut state = lock(&self.state);
            let committed = state.committed;
            let cut = state.log.split_off(committed);
            state.leadership = Leadership {
                leader: Some(leader),
                view,
                address: Some(format!("node-{leader}:443")),
            };
            let dones = std::mem::take(&mut state.pending);
            (cut, dones, state.leadership.clone())
        };
        if let Some(first) = cut.first() {
            self.replica.truncated(first);
        }
        for done in dones {
            done(Err(leadership.not_leader()));
        }
    }

    /// Node `leader` leads `view` from now on; the log stays.
    pub(crate) fn elect(&self, leader: u64, view: u64) {
        lock(&self.state).leadership = Leadership {
            leader: Some(leader),
            view,
            address: Some(format!("node-{leader}:443")),
        };
    }
}

impl Sequencer for TwinSequencer {
    fn leadership(&self) -> Leadership {
        lock(&self.state).leadership.clone()
    }

    fn propose(&self, batch: ExecutedBatch, done: ProposalDone) -> Result<(), ConsensusError> {
        let last = batch.batch.last_seqno();
        {
            let mut state = lock(&self.state);
            if state.leadership.view != batch.batch.view {
                drop(state);
                done(Err(SubmitError::Stopped(
                    "proposed in an old view".to_owned(),
                )));
                return Ok(());
            }
            state.log.push(batch);
            state.pending.push(done);
        }
        self.intake.durable(last);
        Ok(())
    }

    fn logged_after(&self, seqno: u64) -> Result<Vec<ExecutedBatch>, ConsensusError> {
        Ok(lock(&self.state)
            .log
            .iter()
            .filter(|batch| batch.batch.first_seqno > seqno)
            .cloned()
            .collect())
    }

    fn logged_batch(&self, seqno: u64) -> Result<Option<ExecutedBatch>, ConsensusError> {
        Ok(lock(&self.state)
            .log
            .iter()
            .find(|batch| batch.batch.record_of(seqno).is_some())
            .cloned())
    }

    fn status(&self) -> OrderStatus {
        let leadership = self.leadership();
        OrderStatus {
            role: "Leader".to_owned(),
            term: leadership.view,
            leader: leadership.leader,
            leader_address: leadership.address,
        }
    }

    fn members(&self) -> Members {
        Members {
            voters: Default::default(),
            learners: Default::default(),
        }
    }

    fn add_member(&self, id: u64, _node: SteleNode) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move {
            Err(ConsensusError::Config(format!(
                "the twin has no membership to add node {id} to"
            )))
        })
    }

    fn remove_member(&self, id: u64) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async move {
            Err(ConsensusError::Config(format!(
                "the twin has no membership to remove node {id} from"
            )))
        })
    }

    fn ensure_linearizable(&self) -> BoxFuture<'_, Result<(), ConsensusError>> {
        Box::pin(async { Ok(()) })
    }

    fn fatal(&self) -> Option<String> {
        None
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let dones = std::mem::take(&mut lock(&self.state).pending);
            for done in dones {
                done(Err(SubmitError::Stopped("shut down".to_owned())));
            }
        })
    }
}
