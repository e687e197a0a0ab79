//! The replica core driven through the in-memory twin of the [`Sequencer`]
//! seam: intake, executor, replica and waiters, with no Raft at all.
//!
//! [`Sequencer`]: crate::sequencer::Sequencer

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stele_frontends::{Command, LoggingCommand};

use crate::config::EngineConfig;
use crate::executor::Executor;
use crate::intake::Intake;
use crate::replica::Replica;
use crate::sequencer::twin::TwinSequencer;
use crate::submission::{Submission, SubmitError, SubmitResult};

const ME: u64 = 1;
const WAIT: Duration = Duration::from_secs(20);

struct Core {
    replica: Arc<Replica>,
    intake: Arc<Intake>,
    twin: Arc<TwinSequencer>,
    executor: Option<JoinHandle<()>>,
}

impl Core {
    /// A fresh core in which this node leads view 1.
    fn new() -> Self {
        let replica = Arc::new(Replica::fresh_for_tests("core.example/log"));
        let intake = Arc::new(Intake::new());
        let twin = Arc::new(TwinSequencer::new(
            Arc::clone(&replica),
            Arc::clone(&intake),
            ME,
            1,
        ));
        let mut executor = Executor {
            replica: Arc::clone(&replica),
            intake: Arc::clone(&intake),
            sequencer: twin.clone(),
            config: EngineConfig::default(),
            node_id: ME,
            in_flight: Arc::new(AtomicUsize::new(0)),
            unsettled: Arc::new(AtomicBool::new(true)),
            settled_term: 0,
            storage: Arc::default(),
        };
        let executor = std::thread::spawn(move || executor.run());
        Core {
            replica,
            intake,
            twin,
            executor: Some(executor),
        }
    }

    /// Submits a logging record that waits for its commit.
    fn submit(&self, id: u64) -> Receiver<Result<SubmitResult, SubmitError>> {
        let (sender, receiver) = channel();
        self.intake
            .submit(Submission {
                command: Command::Logging(LoggingCommand::Record {
                    id,
                    message: format!("message {id}"),
                }),
                wait: true,
                reply: Box::new(move |result| {
                    let _ = sender.send(result);
                }),
            })
            .expect("the queue has room");
        receiver
    }

    /// Waits until the twin holds `count` pending proposals.
    fn wait_for_proposals(&self, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self.twin.pending() < count {
            assert!(
                Instant::now() < deadline,
                "no proposal reached the sequencer"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.intake.close();
        if let Some(executor) = self.executor.take() {
            let _ = executor.join();
        }
    }
}

#[test]
fn a_waiting_submitter_is_answered_only_once_the_sequencer_commits() {
    let core = Core::new();
    let reply = core.submit(7);
    core.wait_for_proposals(1);
    // Executed and proposed, not committed: no answer, nothing readable.
    assert!(reply.try_recv().is_err());
    assert_eq!(core.replica.read_history().size(), 1);
    assert_eq!(core.replica.committed_seqno(), 0);
    core.twin.commit_all().expect("the batch confirms");
    let answer = reply
        .recv_timeout(WAIT)
        .expect("answered")
        .expect("committed");
    assert!(answer.committed);
    assert_eq!(answer.transaction_id.view, 1);
    assert_eq!(answer.transaction_id.seqno, 1);
    assert_eq!(core.replica.committed_seqno(), 1);
    assert_eq!(core.replica.read_store().committed_version(), 1);
}

#[test]
fn a_deposed_primary_rolls_back_what_was_cut_and_its_submitters_learn_the_leader() {
    let core = Core::new();
    let first = core.submit(1);
    core.wait_for_proposals(1);
    core.twin.commit_all().expect("the batch confirms");
    assert!(first.recv_timeout(WAIT).expect("answered").is_ok());
    let lost = core.submit(2);
    core.wait_for_proposals(1);
    assert_eq!(core.replica.read_history().size(), 2);
    core.twin.depose(2, 2);
    match lost.recv_timeout(WAIT).expect("answered") {
        Err(SubmitError::NotLeader { leader, .. }) => assert_eq!(leader, Some(2)),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    // The cut batch is gone from both halves of the speculative state.
    assert_eq!(core.replica.read_history().size(), 1);
    assert_eq!(core.replica.read_store().version(), 1);
    // Not the leader: refused before anything executes.
    let refused = core.submit(3);
    assert!(matches!(
        refused.recv_timeout(WAIT).expect("answered"),
        Err(SubmitError::NotLeader {
            leader: Some(2),
            ..
        })
    ));
    assert_eq!(core.replica.read_history().size(), 1);
    // Leading again in a later view: the seqno is reused under the new view.
    core.twin.elect(ME, 3);
    let again = core.submit(4);
    core.wait_for_proposals(1);
    core.twin.commit_all().expect("the batch confirms");
    let answer = again
        .recv_timeout(WAIT)
        .expect("answered")
        .expect("committed");
    assert_eq!(answer.transaction_id.view, 3);
    assert_eq!(answer.transaction_id.seqno, 2);
}
