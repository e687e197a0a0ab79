//! The fault schedule of a seed: a list of steps and the pauses between them,
//! drawn from the seed alone, plus the run's engine settings.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Nodes in the simulated cluster (ids 1..=NODES).
pub const NODES: u64 = 3;

/// RNG streams derived from one seed (each directed link uses its own too).
pub const STREAM_PLAN: u64 = 1_000_001;
pub const STREAM_CLIENT: u64 = 1_000_100;
pub const STREAM_CHECKS: u64 = 1_000_200;

/// An RNG for `stream` of `seed`.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Whom a step hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The node that is leader when the step runs (resolved at run time), or
    /// `otherwise` when none is.
    Leader { otherwise: u64 },
    /// A fixed node.
    Node(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing changes.
    Quiet,
    /// Message loss probabilities from now on.
    Loss { request: f64, response: f64 },
    /// Longest message delay (each way) from now on.
    Delay { max_ms: u64 },
    /// Cut every link of a node.
    Isolate(Target),
    /// Cut one link.
    Cut(u64, u64),
    /// Restore every link (loss and delay stay).
    Heal,
    /// Stop a node (removed from the network, then shut down).
    Crash(Target),
    /// Restart the crashed node from its ledger.
    Restart,
}

/// A step and the pause after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub step: Step,
    pub then_ms: u64,
}

/// Everything a seed fixes before the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<Planned>,
    /// Most commands per batch.
    pub batch_entries_max: usize,
    /// KV snapshots every this many committed transactions (0: none), so some
    /// restarts recover from a snapshot and the ledger suffix.
    pub snapshot_interval_tx: u64,
    /// Concurrent client tasks.
    pub clients: u64,
    /// Raft entries between snapshots (0: never), so a node that was down or
    /// cut off may catch up from a snapshot transfer.
    pub raft_snapshot_entries: u64,
    /// Snapshots are sent as resume transfers (the state and the tree's
    /// frontier; the receiver's ledger resumes at the snapshot).
    pub resume_transfers: bool,
}

fn target(rng: &mut ChaCha8Rng) -> Target {
    let node = rng.gen_range(1..=NODES);
    if rng.gen_bool(0.5) {
        Target::Leader { otherwise: node }
    } else {
        Target::Node(node)
    }
}

/// The plan of `seed`. At most one node is down at a time, so a majority can
/// always make progress once the links heal.
///
/// A node is crashed only while no link is cut: a leader crashed while cut off
/// keeps proposals that can neither commit nor be overwritten, and its engine's
/// shutdown then waits out its bounded waits (about 15 s) before the node can
/// restart. The plan heals instead; partitions still come and go around crashes
/// and restarts.
pub fn plan(seed: u64) -> Plan {
    let mut rng = rng(seed, STREAM_PLAN);
    let batch_entries_max = [1, 3, 16, 1000][rng.gen_range(0..4)];
    let snapshot_interval_tx = [0, 0, 7, 25][rng.gen_range(0..4)];
    let clients = rng.gen_range(1..=3);
    let count = rng.gen_range(6..=10);
    let (mut down, mut cut) = (false, false);
    let mut steps = Vec::with_capacity(count);
    for _ in 0..count {
        let step = match rng.gen_range(0..100) {
            0..=13 => Step::Loss {
                request: rng.gen_range(0.0..0.25),
                response: rng.gen_range(0.0..0.25),
            },
            14..=23 => Step::Delay {
                max_ms: rng.gen_range(0..=15),
            },
            24..=38 => {
                cut = true;
                Step::Isolate(target(&mut rng))
            }
            39..=48 => {
                cut = true;
                let a = rng.gen_range(1..=NODES);
                let b = (a + rng.gen_range(0..NODES - 1)) % NODES + 1;
                Step::Cut(a.min(b), a.max(b))
            }
            49..=62 => {
                cut = false;
                Step::Heal
            }
            63..=84 if down => {
                down = false;
                Step::Restart
            }
            63..=84 if cut => {
                cut = false;
                Step::Heal
            }
            63..=84 => {
                down = true;
                Step::Crash(target(&mut rng))
            }
            _ => Step::Quiet,
        };
        steps.push(Planned {
            step,
            then_ms: rng.gen_range(100..=300),
        });
    }
    // Drawn last, so the steps of a seed stay what they were before it existed.
    let raft_snapshot_entries = [0, 4, 12][rng.gen_range(0..3)];
    let resume_transfers = rng.gen_bool(0.5);
    Plan {
        steps,
        batch_entries_max,
        snapshot_interval_tx,
        clients,
        raft_snapshot_entries,
        resume_transfers,
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch_entries_max={} snapshot_interval_tx={} raft_snapshot_entries={} resume_transfers={} clients={} steps=[",
            self.batch_entries_max,
            self.snapshot_interval_tx,
            self.raft_snapshot_entries,
            self.resume_transfers,
            self.clients
        )?;
        for (index, planned) in self.steps.iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{:?} +{}ms", planned.step, planned.then_ms)?;
        }
        write!(f, "]")
    }
}
