//! [`Intake`]: the bounded queue of submissions in front of the executor, and
//! when it cuts a batch.
//!
//! Each batch costs a group-commit sync on this node's log, so the executor
//! cuts a batch when the log has made durable everything proposed (group
//! commit at the batch level): an idle node answers a lone submission without
//! waiting to fill a batch, and under load a batch takes whatever arrived
//! during the previous sync, and lingers (at most as long as the last sync
//! took) for as many as the last batch held: those clients, answered, submit
//! again all at once. `batch_wait_us` bounds every wait (a proposal refused
//! before reaching the log never flushes), and `batch_entries_max` bounds the
//! batch. The rule dates from openraft 0.9, whose core waited for each append
//! to be durable before taking the next; with 0.10 (which does not) cutting a
//! cluster's batches at the previous batch's commit instead was measured and
//! did not help (BENCHMARKS.md, issue P9).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::submission::{Submission, SubmitError};
use crate::sync::lock;
use crate::SUBMIT_QUEUE_MAX;

struct State {
    queue: VecDeque<Submission>,
    closed: bool,
    /// The last seqno this node proposed.
    proposed_seqno: u64,
    /// The last seqno this node's log made durable.
    durable_seqno: u64,
    /// What the executor sleeps until, so that a submission wakes it only
    /// when it changes the executor's answer.
    sleep: Sleep,
    /// Submissions in the last batch cut: about as many are expected soon
    /// after it commits (its clients, answered, submit again).
    last_cut: usize,
    /// When the last proposal was made.
    proposed_at: Option<Instant>,
    /// When the log last made everything proposed durable, and how long that
    /// took from the proposal (the linger's bound, [`Intake::next_batch`]).
    idle_since: Option<(Instant, Duration)>,
}

impl State {
    /// The log made durable what was proposed last: proposing now costs no
    /// wait behind another sync. (After a rollback seqnos are reused and
    /// `durable_seqno` may be ahead: the next batch is then cut early, which
    /// costs batching, not correctness.)
    fn log_idle(&self) -> bool {
        self.durable_seqno >= self.proposed_seqno
    }
}

/// Why the executor sleeps. Under load it waits for the log's sync with part
/// of a batch queued. Notifying it for every submission cost a futex call per
/// submission (~22 k a second: `std`'s condvar makes one even with no
/// sleeper) and woke it ~1,900 times a second more than needed, only to find
/// the log still busy (its context switches halved without them).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sleep {
    /// Awake: nothing to signal.
    Awake,
    /// Waiting for a first submission.
    ForFirst,
    /// Waiting for the log to go idle (if it is busy), for `count` to be
    /// queued, or for a deadline.
    ForCount { count: usize },
}

/// Submissions waiting for the executor.
pub(crate) struct Intake {
    state: Mutex<State>,
    wake: Condvar,
}

impl Intake {
    pub(crate) fn new() -> Self {
        Intake {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
                proposed_seqno: 0,
                durable_seqno: 0,
                sleep: Sleep::Awake,
                last_cut: 0,
                proposed_at: None,
                idle_since: None,
            }),
            wake: Condvar::new(),
        }
    }

    /// Queues a submission; refuses at once when [`SUBMIT_QUEUE_MAX`] wait or
    /// the intake is closed.
    pub(crate) fn submit(&self, submission: Submission) -> Result<(), SubmitError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(SubmitError::Stopped("shutting down".to_owned()));
        }
        if state.queue.len() >= SUBMIT_QUEUE_MAX {
            return Err(SubmitError::Busy {
                waiting: SUBMIT_QUEUE_MAX,
            });
        }
        state.queue.push_back(submission);
        let wake = match state.sleep {
            Sleep::Awake => false,
            Sleep::ForFirst => true,
            Sleep::ForCount { count } => state.queue.len() >= count,
        };
        if wake {
            // Decided under the lock the executor sleeps with: it cannot be
            // between its check and its wait now.
            state.sleep = Sleep::Awake;
            drop(state);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Refuses later submissions; the executor still drains the queue.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_all();
    }

    /// The executor proposed a batch ending at `seqno`.
    pub(crate) fn proposed(&self, seqno: u64) {
        let mut state = lock(&self.state);
        state.proposed_seqno = seqno;
        state.proposed_at = Some(Instant::now());
    }

    /// This node's log made a batch ending at `seqno` durable.
    pub(crate) fn durable(&self, seqno: u64) {
        let mut state = lock(&self.state);
        let was_idle = state.log_idle();
        state.durable_seqno = state.durable_seqno.max(seqno);
        let idle = state.log_idle();
        if idle && !was_idle {
            let now = Instant::now();
            let sync = state
                .proposed_at
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            state.idle_since = Some((now, sync));
        }
        if idle && state.sleep != Sleep::Awake {
            state.sleep = Sleep::Awake;
            drop(state);
            self.wake.notify_one();
        }
    }

    /// [`State::log_idle`], for the tests.
    #[cfg(test)]
    pub(crate) fn log_idle(&self) -> bool {
        lock(&self.state).log_idle()
    }

    /// The next batch: blocks for a first submission, then cuts when the log
    /// is idle (and the batch filled, below), `entries_max` are queued or
    /// `wait` has passed since the first was taken. `None` once closed and
    /// drained.
    ///
    /// Once the log is idle, it cuts as soon as as many are queued as the
    /// last batch held, or the log has been idle for as long as its last sync
    /// took (the linger). Why: under a closed-loop load the clients of a
    /// batch all submit again just after it commits. Cutting at once took the
    /// few that came first into a batch of their own, and the rest waited a
    /// whole sync behind it: at 64 clients, 40% of the syncs carried 1-3
    /// transactions, the others ~60. Lingering at most one sync's time costs
    /// a lone submitter nothing (it is a batch of one, as was the last) and
    /// any other at most what cutting at once cost the rest.
    pub(crate) fn next_batch(&self, entries_max: usize, wait: Duration) -> Option<Vec<Submission>> {
        let mut state = lock(&self.state);
        while state.queue.is_empty() {
            if state.closed {
                return None;
            }
            state = self.sleep(state, Sleep::ForFirst, None);
        }
        let deadline = Instant::now() + wait;
        loop {
            let now = Instant::now();
            let idle = state.log_idle();
            let full = state.queue.len() >= entries_max;
            let (count, until) = if idle {
                let expected = state.last_cut.clamp(1, entries_max);
                let linger_end = state
                    .idle_since
                    .map_or(now, |(since, sync)| since + sync)
                    .min(deadline);
                (expected, linger_end)
            } else {
                (entries_max, deadline)
            };
            if state.closed || full || state.queue.len() >= count || now >= until {
                let take = state.queue.len().min(entries_max);
                state.last_cut = take;
                return Some(state.queue.drain(..take).collect());
            }
            let left = until.saturating_duration_since(now);
            state = self.sleep(state, Sleep::ForCount { count }, Some(left));
        }
    }

    /// The executor sleeps (at most `left`) for `why`, recorded only while it
    /// sleeps: [`Intake::submit`] and [`Intake::durable`] read it to decide
    /// whether to wake it.
    fn sleep<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        why: Sleep,
        left: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        state.sleep = why;
        let mut state = match left {
            None => self
                .wake
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Some(left) => {
                self.wake
                    .wait_timeout(state, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
        };
        state.sleep = Sleep::Awake;
        state
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use stele_frontends::{Command, LoggingCommand};

    use super::*;

    fn submission(id: u64) -> Submission {
        Submission {
            command: Command::Logging(LoggingCommand::Record {
                id,
                message: "m".to_owned(),
            }),
            wait: false,
            reply: Box::new(|_| {}),
        }
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn an_idle_log_cuts_at_once_and_a_busy_one_gathers() {
        let intake = Intake::new();
        intake.submit(submission(1)).expect("room");
        // Nothing proposed: the log is idle, the lone submission goes now.
        let batch = intake.next_batch(100, LONG).expect("a batch");
        assert_eq!(batch.len(), 1);
        intake.proposed(1);
        assert!(!intake.log_idle());
        for id in 2..=4 {
            intake.submit(submission(id)).expect("room");
        }
        // Busy and not full: gathers until the wait ends.
        let batch = intake
            .next_batch(100, Duration::from_millis(1))
            .expect("a batch");
        assert_eq!(batch.len(), 3);
        // Busy, but full: cut at entries_max without waiting.
        for id in 5..=9 {
            intake.submit(submission(id)).expect("room");
        }
        assert_eq!(intake.next_batch(2, LONG).expect("a batch").len(), 2);
        // The sync covering what was proposed ends the wait.
        let waiting = Arc::new(intake);
        let flusher = Arc::clone(&waiting);
        let durable = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            flusher.durable(1);
        });
        assert_eq!(waiting.next_batch(100, LONG).expect("a batch").len(), 3);
        assert!(waiting.log_idle());
        durable.join().expect("the flusher ends");
    }

    /// The executor sleeps through submissions that do not change its answer,
    /// but the one that fills a batch, and a first one, still wake it (if
    /// they did not, these calls would block for an hour).
    #[test]
    fn a_sleeping_executor_wakes_for_a_full_batch_and_for_a_first_submission() {
        let intake = Arc::new(Intake::new());
        intake.submit(submission(1)).expect("room");
        assert_eq!(intake.next_batch(100, LONG).expect("a batch").len(), 1);
        intake.proposed(1);
        let submitter = Arc::clone(&intake);
        let submissions = std::thread::spawn(move || {
            // The first one arrives while the executor waits for a first.
            std::thread::sleep(Duration::from_millis(20));
            for id in 2..=4 {
                submitter.submit(submission(id)).expect("room");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        // The log stays busy (nothing made durable): only a full batch cuts.
        assert_eq!(intake.next_batch(3, LONG).expect("a batch").len(), 3);
        submissions.join().expect("the submitter ends");
        assert!(!intake.log_idle());
    }

    /// Cuts a batch of `count`, proposes it, and makes it durable as if its
    /// sync had taken `sync`.
    fn committed_batch(intake: &Intake, count: u64, sync: Duration) {
        for id in 0..count {
            intake.submit(submission(id)).expect("room");
        }
        let batch = intake.next_batch(100, LONG).expect("a batch");
        assert_eq!(batch.len() as u64, count);
        intake.proposed(count);
        lock(&intake.state).proposed_at = Instant::now().checked_sub(sync);
        intake.durable(count);
        assert!(intake.log_idle());
    }

    /// After a batch of 3 commits, its clients submit again one by one: the
    /// idle log waits for all 3 (the last sync was long) instead of cutting
    /// the first alone (if it did not, this batch would be of 1).
    #[test]
    fn an_idle_log_lingers_for_as_many_as_the_last_batch() {
        let intake = Arc::new(Intake::new());
        committed_batch(&intake, 3, LONG);
        let submitter = Arc::clone(&intake);
        let submissions = std::thread::spawn(move || {
            for id in 10..13 {
                submitter.submit(submission(id)).expect("room");
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        assert_eq!(intake.next_batch(100, LONG).expect("a batch").len(), 3);
        submissions.join().expect("the submitter ends");
    }

    /// The linger lasts at most as long as the last sync took: after an
    /// instant one, a lone submission goes at once (if it did not, this
    /// call would block for an hour waiting for two more).
    #[test]
    fn the_linger_ends_after_the_last_sync_time() {
        let intake = Intake::new();
        committed_batch(&intake, 3, Duration::ZERO);
        intake.submit(submission(10)).expect("room");
        assert_eq!(intake.next_batch(100, LONG).expect("a batch").len(), 1);
    }

    #[test]
    fn the_queue_is_bounded_and_closing_drains_then_ends() {
        let intake = Intake::new();
        for id in 0..SUBMIT_QUEUE_MAX as u64 {
            intake.submit(submission(id)).expect("room");
        }
        assert!(matches!(
            intake.submit(submission(0)),
            Err(SubmitError::Busy { .. })
        ));
        intake.close();
        assert!(matches!(
            intake.submit(submission(0)),
            Err(SubmitError::Stopped(_))
        ));
        let mut drained = 0;
        while let Some(batch) = intake.next_batch(1000, LONG) {
            drained += batch.len();
        }
        assert_eq!(drained, SUBMIT_QUEUE_MAX);
    }
}
