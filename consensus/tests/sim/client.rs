//! The client workload: transactions on a few keys, submitted to whichever node
//! leads, and committed reads on any node. Each client's stream of commands is
//! drawn from the seed; which of them commit, and where, depends on the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use stele_consensus::{Submission, SubmitError, SubmitResult};
use stele_frontends::{Command, Op, Outcome, Transaction};
use stele_history::TransactionId;

use super::network::Net;
use super::schedule::{rng, NODES, STREAM_CLIENT};

pub const MAP: &str = "m";
pub const KEYS: [&str; 5] = ["k0", "k1", "k2", "k3", "k4"];

/// Longest wait for the answer to a submission that waits for commit.
const REPLY_WAIT: Duration = Duration::from_millis(700);
/// Attempts of one command before moving on to the next.
const ATTEMPTS: usize = 3;

/// A transaction a node answered committed.
#[derive(Debug, Clone)]
pub struct Answered {
    pub id: TransactionId,
    /// The writes it made, `None` for a delete (empty if it aborted).
    pub writes: Vec<(String, Option<String>)>,
    pub aborted: bool,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct ClientLog {
    pub answered: Vec<Answered>,
    /// Transactions some node reported committed to a read: (node, id).
    pub observed: Vec<(u64, TransactionId)>,
    /// Broken promises of the submit API (e.g. "committed: false" to a waiting
    /// submission).
    pub violations: Vec<String>,
    pub attempts: u64,
    pub refusals: u64,
    pub timeouts: u64,
}

/// One command of the stream and the writes it makes if it commits.
struct Planned {
    command: Command,
    writes: Vec<(String, Option<String>)>,
}

fn key(rng: &mut ChaCha8Rng) -> String {
    KEYS[rng.gen_range(0..KEYS.len())].to_owned()
}

/// The `n`-th command of client `client`. `last_written` is the value this
/// client's stream last wrote to each key (whether or not it committed), so the
/// stream depends on the seed alone.
fn command(
    rng: &mut ChaCha8Rng,
    client: u64,
    n: u64,
    last_written: &mut [Option<String>; KEYS.len()],
) -> Planned {
    let value = format!("c{client}-{n}");
    let put = |key: &str, value: &str| Op::Put {
        map: MAP.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let get = |key: &str| Op::Get {
        map: MAP.to_owned(),
        key: key.to_owned(),
    };
    let target = key(rng);
    let (ops, writes) = match rng.gen_range(0..100) {
        0..=39 => (
            vec![put(&target, &value)],
            vec![(target.clone(), Some(value.clone()))],
        ),
        40..=59 => (
            vec![get(&key(rng)), put(&target, &value)],
            vec![(target.clone(), Some(value.clone()))],
        ),
        60..=74 => {
            let index = KEYS.iter().position(|k| *k == target).unwrap_or(0);
            let check = Op::Check {
                map: MAP.to_owned(),
                key: target.clone(),
                value: last_written[index].clone(),
            };
            (
                vec![check, put(&target, &value)],
                vec![(target.clone(), Some(value.clone()))],
            )
        }
        75..=84 => (
            vec![Op::Delete {
                map: MAP.to_owned(),
                key: target.clone(),
            }],
            vec![(target.clone(), None)],
        ),
        _ => (vec![get(&target)], Vec::new()),
    };
    for (key, value) in &writes {
        if let Some(index) = KEYS.iter().position(|k| k == key) {
            last_written[index] = value.clone();
        }
    }
    let claims = rng
        .gen_bool(0.5)
        .then(|| format!("claims of c{client}-{n}"));
    Planned {
        command: Command::Transaction(Transaction { ops, claims }),
        writes,
    }
}

/// Submits `command` to `node` and waits (bounded) for the answer.
async fn submit(
    net: &Net,
    node: u64,
    command: Command,
) -> Option<Result<SubmitResult, SubmitError>> {
    let engine = net.engine(node)?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let submitted = engine.submit(Submission {
        command,
        wait: true,
        reply: Box::new(move |result| {
            let _ = sender.send(result);
        }),
    });
    // Not held while waiting: a crash must be able to take the engine.
    drop(engine);
    if let Err(error) = submitted {
        return Some(Err(error));
    }
    match tokio::time::timeout(REPLY_WAIT, receiver).await {
        Ok(Ok(result)) => Some(result),
        // Dropped unanswered (the node stopped), or no answer in time.
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Committed reads on a node: the writer of a key and the last committed
/// transaction are transactions that node reports committed.
fn read(net: &Net, node: u64, key: &str, log: &mut ClientLog) {
    if let Some(engine) = net.engine(node) {
        if let Some((_, writer)) = engine.kv_get(MAP, key) {
            log.observed.push((node, writer));
        }
        if let Some(last) = engine.last_committed() {
            log.observed.push((node, last));
        }
    }
}

/// Runs client `client` until `stop`.
pub async fn run(net: Arc<Net>, seed: u64, client: u64, stop: Arc<AtomicBool>) -> ClientLog {
    let mut rng = rng(seed, STREAM_CLIENT + client);
    let mut log = ClientLog::default();
    let mut last_written: [Option<String>; KEYS.len()] = Default::default();
    let mut target = rng.gen_range(1..=NODES);
    let next = |node: u64| node % NODES + 1;
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        if rng.gen_bool(0.3) {
            let (node, key) = (rng.gen_range(1..=NODES), key(&mut rng));
            read(&net, node, &key, &mut log);
        }
        let planned = command(&mut rng, client, n, &mut last_written);
        for _ in 0..ATTEMPTS {
            if stop.load(Ordering::Acquire) {
                break;
            }
            log.attempts += 1;
            match submit(&net, target, planned.command.clone()).await {
                Some(Ok(result)) if result.committed => {
                    let aborted = matches!(result.outcome, Outcome::Aborted(_));
                    log.answered.push(Answered {
                        id: result.transaction_id,
                        writes: if aborted {
                            Vec::new()
                        } else {
                            planned.writes.clone()
                        },
                        aborted,
                    });
                    break;
                }
                Some(Ok(result)) => {
                    log.violations.push(format!(
                        "node {target} answered a waiting submission uncommitted: {result:?}"
                    ));
                    break;
                }
                Some(Err(SubmitError::NotLeader { leader, .. })) => {
                    log.refusals += 1;
                    target = leader.filter(|&l| l != target).unwrap_or(next(target));
                }
                Some(Err(_)) => {
                    log.refusals += 1;
                    target = next(target);
                }
                None => {
                    log.timeouts += 1;
                    target = next(target);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    log
}
