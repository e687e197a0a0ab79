//! The primary's executor thread: batch, execute speculatively, propose.
//!
//! One thread takes submissions in arrival order from the [`Intake`] and cuts
//! them into batches: at once while this node's log is idle, else what arrived
//! until the log made the previous batch durable (at most `batch_wait_us`,
//! `batch_entries_max`). While this node leads it executes each batch on its
//! speculative state, signs the checkpoint and proposes the batch to the
//! [`Sequencer`], in order, without waiting: batch k+1 executes while batch k
//! is being replicated and made durable. The waiting clients are answered as
//! the core applies the committed batch ([`Waiters`]).
//!
//! [`Waiters`]: crate::waiters::Waiters
//!
//! On a new term, or after a proposal failed, the speculative state is first
//! settled against the log: batches executed but never logged are rolled back,
//! logged batches the state lacks are re-executed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stele_dispatcher::TxResult;
use stele_frontends::Command;
use stele_history::TransactionId;

use crate::batch::ExecutedBatch;
use crate::config::EngineConfig;
use crate::intake::Intake;
use crate::replica::Replica;
use crate::sequencer::{Leadership, Sequencer};
use crate::submission::{Reply, Submission, SubmitError, SubmitResult};
use crate::sync::lock;
use crate::{ConsensusError, UNCOMMITTED_TX_MAX};

/// Longest wait for in-flight proposals to resolve before settling the state.
const SETTLE_WAIT_MS: u64 = 10_000;

/// Longest wait for in-flight proposals at shutdown: a deposed leader's
/// proposals may never resolve, and their submitters are answered when the
/// Raft engine stops anyway.
const SHUTDOWN_WAIT_MS: u64 = 2_000;

/// The executor thread's state.
pub(crate) struct Executor {
    pub(crate) replica: Arc<Replica>,
    /// Where submissions wait, and when a batch is cut.
    pub(crate) intake: Arc<Intake>,
    /// The ordering protocol.
    pub(crate) sequencer: Arc<dyn Sequencer>,
    pub(crate) config: EngineConfig,
    pub(crate) node_id: u64,
    /// Proposals sent to the sequencer and not ended yet.
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// Set when a proposal failed: settle before the next batch.
    pub(crate) unsettled: Arc<AtomicBool>,
    /// The term the speculative state was last settled in.
    pub(crate) settled_term: u64,
    /// The ledger writer's health: no batch is executed while a full disk (or
    /// a lack of file handles) holds the log back.
    pub(crate) storage: Arc<stele_ledger::StorageHealth>,
}

impl Executor {
    pub(crate) fn run(&mut self) {
        while let Some(batch) = self.next_batch() {
            self.process(batch);
        }
        self.wait_in_flight(SHUTDOWN_WAIT_MS);
    }

    /// The next batch (see [`Intake::next_batch`]); `None` once the intake is
    /// closed and drained.
    fn next_batch(&self) -> Option<Vec<Submission>> {
        self.intake.next_batch(
            self.config.batch_entries_max,
            Duration::from_micros(self.config.batch_wait_us),
        )
    }

    fn process(&mut self, batch: Vec<Submission>) {
        if let Err(error) = self.ready() {
            for submission in batch {
                (submission.reply)(Err(error.clone()));
            }
            return;
        }
        let (commands, replies): (Vec<Command>, Vec<(bool, Reply)>) = batch
            .into_iter()
            .map(|submission| (submission.command, (submission.wait, submission.reply)))
            .unzip();
        let executed = {
            let dispatcher = lock(&self.replica.execution);
            self.replica
                .execute(&dispatcher, self.settled_term, &commands)
        };
        match executed {
            Ok((batch, results)) => self.propose(batch, results, replies),
            Err(error) => {
                let reason = format!("executing a batch: {error}");
                self.replica.fail(reason.clone());
                for (_, reply) in replies {
                    reply(Err(SubmitError::Stopped(reason.clone())));
                }
            }
        }
    }

    /// Checks that this node may execute the next batch: not failed, the leader,
    /// not too far ahead of the commit point, settled in the current view.
    fn ready(&mut self) -> Result<(), SubmitError> {
        if let Some(reason) = self.replica.failure() {
            return Err(SubmitError::Stopped(reason));
        }
        // Refused rather than queued behind the stuck group: the client learns
        // why at once, and nothing it was told about is lost.
        if let Some(condition) = self.storage.condition() {
            return Err(SubmitError::Storage(condition));
        }
        let leadership = self.sequencer.leadership();
        if leadership.leader != Some(self.node_id) {
            self.sequencer.demand();
            return Err(leadership.not_leader());
        }
        let uncommitted = self
            .replica
            .read_history()
            .size()
            .saturating_sub(self.replica.committed_seqno());
        if uncommitted >= UNCOMMITTED_TX_MAX {
            return Err(SubmitError::Overloaded { uncommitted });
        }
        if leadership.view != self.settled_term || self.unsettled.swap(false, Ordering::AcqRel) {
            // Settling may wait for proposals in flight, during which this node
            // can lose and regain leadership: `still_leading` checks the view
            // again just before the batch is proposed.
            self.settle()
                .map_err(|error| SubmitError::from_engine(&error))?;
            self.settled_term = leadership.view;
        }
        Ok(())
    }

    /// Checks, just before proposing, that this node still leads in the view the
    /// batch was executed for; if not, the batch is rolled back unproposed (its
    /// submitters are told to go to the leader: it did not happen).
    fn still_leading(&self, view: u64, first_seqno: u64) -> Result<(), SubmitError> {
        let leadership: Leadership = self.sequencer.leadership();
        if leadership.leader == Some(self.node_id) && leadership.view == view {
            return Ok(());
        }
        let _execution = lock(&self.replica.execution);
        self.replica
            .rollback_to(first_seqno.saturating_sub(1))
            .map_err(|error| SubmitError::from_engine(&error))?;
        self.unsettled.store(true, Ordering::Release);
        Err(leadership.not_leader())
    }

    /// Makes the speculative state exactly the log: waits for the proposals in
    /// flight, re-executes logged batches the state lacks, rolls back the rest.
    fn settle(&self) -> Result<(), ConsensusError> {
        self.wait_in_flight(SETTLE_WAIT_MS);
        let committed = self.replica.committed_seqno();
        let batches = self.sequencer.logged_after(committed)?;
        let dispatcher = lock(&self.replica.execution);
        let mut last = committed;
        for batch in &batches {
            if !self.replica.holds(batch) {
                self.replica
                    .rollback_to(batch.batch.first_seqno.saturating_sub(1))?;
                if let Err(error) = self.replica.check(&dispatcher, batch) {
                    let reason = format!("this node's own log does not re-execute: {error}");
                    self.replica.fail(reason.clone());
                    return Err(ConsensusError::Stopped(reason));
                }
            }
            last = batch.batch.last_seqno();
        }
        self.replica.rollback_to(last)
    }

    fn wait_in_flight(&self, wait_ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        while self.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Answers the submitters that did not ask to wait, proposes the batch and
    /// leaves the others to the proposal's end.
    fn propose(
        &mut self,
        batch: ExecutedBatch,
        results: Vec<TxResult>,
        replies: Vec<(bool, Reply)>,
    ) {
        let view = batch.batch.view;
        if let Err(error) = self.still_leading(view, batch.batch.first_seqno) {
            for (_, reply) in replies {
                reply(Err(error.clone()));
            }
            return;
        }
        let mut waiting = Vec::new();
        for (result, (wait, reply)) in results.into_iter().zip(replies) {
            let answer = SubmitResult {
                transaction_id: TransactionId {
                    view,
                    seqno: result.seqno,
                },
                committed: false,
                outcome: result.outcome,
            };
            if wait {
                waiting.push((answer, reply));
            } else {
                reply(Ok(answer));
            }
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let key = batch.batch.first_seqno;
        self.intake.proposed(batch.batch.last_seqno());
        // Filed before proposing: the batch may be applied (and its waiters
        // answered) before `propose` returns.
        self.replica.waiters.file(view, key, waiting);
        let replica = Arc::clone(&self.replica);
        let in_flight = Arc::clone(&self.in_flight);
        let unsettled = Arc::clone(&self.unsettled);
        let done = Box::new(move |ended: Result<(), SubmitError>| {
            match ended {
                // Applied: the core has answered the waiters (this answers any
                // it could not reach; it never answers twice).
                Ok(()) => replica.waiters.committed(view, key),
                Err(error) => {
                    unsettled.store(true, Ordering::Release);
                    replica.waiters.failed(view, key, &error);
                }
            }
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(fatal) = self.sequencer.propose(batch, done) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            let reason = fatal.to_string();
            self.replica.fail(reason.clone());
            self.replica
                .waiters
                .failed(view, key, &SubmitError::Stopped(reason));
        }
    }
}
