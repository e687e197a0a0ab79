//! Partitions of a 3-node cluster of real processes (`PUT /admin/partition` on
//! every node): the leader isolated, a follower isolated, then flapping links,
//! under a stream of put / get / compare-and-set operations from three clients
//! on three keys. Afterwards:
//!
//! - every write answered `Committed` is committed on every node;
//! - the history of every key is linearizable (stateright's
//!   `LinearizabilityTester`; keys are independent, so each is checked alone);
//! - every node's ledger verifies.
//!
//! Writes are submitted with `?wait=false`: the primary answers once it has
//! executed them, with their transaction id, and the client then watches
//! `/node/tx` for the commit, which ends the operation. A write whose commit is
//! not seen in time stays "in flight" (the client goes on under a new thread
//! id, as the checker requires) and is settled after the run: committed, it
//! stays in flight (it took effect some time after it began); not committed,
//! it is dropped (it never took effect). Requests refused before execution (a
//! follower's 307, a 503) and failed reads are dropped too; only a transport
//! failure on a write leaves an operation in flight unresolved. Few in-flight
//! operations keep the checker's search small.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use stele_history::TransactionId;
use stele_tests::client::{transaction_id, Auth, NodeClient};
use stele_tests::cluster::{Cluster, ClusterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_stele");
const KEYS: usize = 3;
const CLIENTS: u64 = 3;
/// A request to a cut-off leader gives up after this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// One key as a sequential object: the reference the history must match.
#[derive(Debug, Clone, Default)]
struct KeySpec(Option<String>);

#[derive(Debug, Clone)]
enum KvOp {
    Put(String),
    Get,
    /// Put the second value if the key holds the first (`None`: absent).
    Cas(Option<String>, String),
}

#[derive(Debug, Clone, PartialEq)]
enum KvRet {
    Written,
    Read(Option<String>),
    Swapped(bool),
}

impl SequentialSpec for KeySpec {
    type Op = KvOp;
    type Ret = KvRet;
    fn invoke(&mut self, op: &KvOp) -> KvRet {
        match op {
            KvOp::Put(value) => {
                self.0 = Some(value.clone());
                KvRet::Written
            }
            KvOp::Get => KvRet::Read(self.0.clone()),
            KvOp::Cas(expected, value) => {
                let matched = self.0 == *expected;
                if matched {
                    self.0 = Some(value.clone());
                }
                KvRet::Swapped(matched)
            }
        }
    }
}

/// One event of the history, in real-time order.
#[derive(Debug, Clone)]
enum Event {
    Invoke { key: usize, thread: u64, op: KvOp },
    Return { key: usize, thread: u64, ret: KvRet },
}

/// What one request came to.
enum Outcome {
    /// A read answered.
    Read(KvRet),
    /// A write executed with this result, under this id: it takes effect if
    /// and when that transaction commits.
    Executed(KvRet, TransactionId),
    /// Refused before execution, or a read that failed: no effect.
    NoEffect,
    /// Unknown: it may or may not have taken effect.
    Unknown,
}

/// How long a client watches for its write's commit before moving on.
const COMMIT_WATCH: Duration = Duration::from_secs(2);

fn key_name(key: usize) -> String {
    format!("k{key}")
}

/// Sends `op` on `key` to `client` and reads what it came to.
fn perform(client: &NodeClient, key: usize, op: &KvOp) -> Outcome {
    let name = key_name(key);
    let reply = match op {
        KvOp::Get => client.try_request(
            reqwest::Method::GET,
            &format!("/app/kv/m/{name}?consistency=linearizable"),
            None,
            None,
            &Auth::Token,
        ),
        KvOp::Put(value) => client.try_post_json(
            "/app/tx?wait=false",
            &json!({"ops": [{"op": "put", "map": "m", "key": name, "value": value}]}),
        ),
        KvOp::Cas(expected, value) => client.try_post_json(
            "/app/tx?wait=false",
            &json!({"ops": [
                {"op": "check", "map": "m", "key": name, "value": expected},
                {"op": "put", "map": "m", "key": name, "value": value},
            ]}),
        ),
    };
    let Ok(reply) = reply else {
        return match op {
            KvOp::Get => Outcome::NoEffect,
            _ => Outcome::Unknown,
        };
    };
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    // A commit answers `{"transaction_id"}`, an abort `{"error":{"transaction_id"}}`.
    let id = || {
        body.get("transaction_id")
            .or_else(|| body["error"].get("transaction_id"))
            .map(transaction_id)
    };
    let code = body["error"]["code"].as_str().unwrap_or_default();
    match (op, reply.status) {
        (KvOp::Get, 200) => Outcome::Read(KvRet::Read(Some(
            body["value"].as_str().unwrap().to_owned(),
        ))),
        (KvOp::Get, 404) if code == "NotFound" => Outcome::Read(KvRet::Read(None)),
        (KvOp::Get, _) => Outcome::NoEffect,
        (KvOp::Put(_), 200) => Outcome::Executed(KvRet::Written, id().unwrap()),
        (KvOp::Cas(..), 200) => Outcome::Executed(KvRet::Swapped(true), id().unwrap()),
        (KvOp::Cas(..), 409) if code == "CheckFailed" => {
            Outcome::Executed(KvRet::Swapped(false), id().unwrap())
        }
        // Refused before execution: a follower's redirect, a node not leading
        // or busy.
        (_, 307 | 503) => Outcome::NoEffect,
        _ => Outcome::Unknown,
    }
}

/// `/node/tx` of `id` on `client`, if it answers.
fn status_of(client: &NodeClient, id: TransactionId) -> Option<String> {
    let reply = client
        .try_request(
            reqwest::Method::GET,
            &format!("/node/tx?transaction_id={id}"),
            None,
            None,
            &Auth::None,
        )
        .ok()?;
    let body: Value = serde_json::from_slice(&reply.body).ok()?;
    body["status"].as_str().map(str::to_owned)
}

/// Watches `id` on `client` until it is committed (true) or the watch ends.
fn watch_commit(client: &NodeClient, id: TransactionId) -> bool {
    let deadline = std::time::Instant::now() + COMMIT_WATCH;
    while std::time::Instant::now() < deadline {
        if status_of(client, id).as_deref() == Some("Committed") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The node that claims to lead in the highest view, if any answers.
fn find_leader(clients: &[NodeClient]) -> Option<usize> {
    clients
        .iter()
        .enumerate()
        .filter_map(|(index, client)| {
            let reply = client
                .try_request(reqwest::Method::GET, "/node/state", None, None, &Auth::None)
                .ok()?;
            let state: Value = serde_json::from_slice(&reply.body).ok()?;
            (state["raft_node_id"].as_u64()? == state["leader"].as_u64()?)
                .then(|| (state["view"].as_u64().unwrap_or(0), index))
        })
        .max()
        .map(|(_, index)| index)
}

/// What the clients share.
struct Shared {
    clients: Vec<NodeClient>,
    leader: Mutex<usize>,
    /// `None`: an invocation dropped (it had no effect).
    history: Mutex<Vec<Option<Event>>>,
    committed: Mutex<Vec<TransactionId>>,
    /// Writes whose commit was not seen in time: the index of their invocation
    /// and their id, settled after the run.
    unsettled: Mutex<Vec<(usize, TransactionId)>>,
    stop: AtomicBool,
}

/// One client: operations in a fixed pattern until told to stop.
fn client_loop(shared: &Shared, client: u64) {
    let mut thread = client;
    let mut seen: Vec<Option<String>> = vec![None; KEYS];
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        n += 1;
        let key = usize::try_from((n * 7 + client) % KEYS as u64).unwrap();
        let value = format!("c{client}-{n}");
        let op = match n % 3 {
            0 => KvOp::Put(value),
            1 => KvOp::Get,
            _ => KvOp::Cas(seen[key].clone(), value),
        };
        let target = *shared.leader.lock().unwrap();
        let invoked = {
            let mut history = shared.history.lock().unwrap();
            history.push(Some(Event::Invoke {
                key,
                thread,
                op: op.clone(),
            }));
            history.len() - 1
        };
        let returned = |ret: KvRet| {
            let event = Event::Return { key, thread, ret };
            shared.history.lock().unwrap().push(Some(event));
        };
        let client_of_target = &shared.clients[target];
        match perform(client_of_target, key, &op) {
            Outcome::Read(ret) => {
                if let KvRet::Read(value) = &ret {
                    seen[key] = value.clone();
                }
                returned(ret);
            }
            Outcome::Executed(ret, id) => {
                if watch_commit(client_of_target, id) {
                    returned(ret);
                    shared.committed.lock().unwrap().push(id);
                } else {
                    shared.unsettled.lock().unwrap().push((invoked, id));
                    thread += CLIENTS;
                    refresh_leader(shared);
                }
            }
            Outcome::NoEffect => {
                shared.history.lock().unwrap()[invoked] = None;
                refresh_leader(shared);
            }
            Outcome::Unknown => {
                // The operation stays in flight; this client goes on as a new
                // thread (a thread has at most one operation in flight).
                thread += CLIENTS;
                refresh_leader(shared);
            }
        }
    }
}

/// Points the clients at the node leading in the highest view, after a pause.
fn refresh_leader(shared: &Shared) {
    if let Some(leader) = find_leader(&shared.clients) {
        *shared.leader.lock().unwrap() = leader;
    }
    std::thread::sleep(Duration::from_millis(50));
}

/// Feeds key `key`'s events to stateright's tester; returns it and the number
/// of operations.
fn tester_of(history: &[Event], key: usize) -> (LinearizabilityTester<u64, KeySpec>, usize) {
    let mut tester = LinearizabilityTester::new(KeySpec::default());
    let mut operations = 0;
    for event in history {
        match event {
            Event::Invoke { key: k, thread, op } if *k == key => {
                operations += 1;
                tester.on_invoke(*thread, op.clone()).unwrap();
            }
            Event::Return {
                key: k,
                thread,
                ret,
            } if *k == key => {
                tester.on_return(*thread, ret.clone()).unwrap();
            }
            _ => {}
        }
    }
    (tester, operations)
}

/// Checks each key's history with stateright's linearizability tester.
fn check_linearizable(history: &[Event]) {
    for key in 0..KEYS {
        let (tester, operations) = tester_of(history, key);
        assert!(operations > 0, "no operation on key {key}");
        assert!(
            tester.is_consistent(),
            "the history of key {key} is not linearizable: {:?}",
            history
                .iter()
                .filter(|event| matches!(event,
                    Event::Invoke { key: k, .. } | Event::Return { key: k, .. } if *k == key))
                .collect::<Vec<_>>()
        );
    }
}

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn partitions_lose_no_committed_write_and_histories_stay_linearizable() {
    let options = ClusterOptions {
        partition_injection: true,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(Path::new(BIN), &options);
    let all = cluster.all();
    let first = cluster.leader(&all);
    let shared = Arc::new(Shared {
        clients: all
            .iter()
            .map(|&index| cluster.client(index).with_timeout(CLIENT_TIMEOUT))
            .collect(),
        leader: Mutex::new(first),
        history: Mutex::new(Vec::new()),
        committed: Mutex::new(Vec::new()),
        unsettled: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || client_loop(&shared, client))
        })
        .collect();

    pause(1500);
    // The leader isolated: the majority elects another and goes on.
    let leader = cluster.leader(&all);
    cluster.split(&[leader]);
    pause(3000);
    cluster.split(&[]);
    pause(1500);
    // A follower isolated (a minority).
    let leader = cluster.leader(&all);
    cluster.split(&[(leader + 1) % all.len()]);
    pause(2000);
    cluster.split(&[]);
    // Flapping links: each node cut off in turn, briefly.
    for round in 0..6 {
        cluster.split(&[round % all.len()]);
        pause(400);
        cluster.split(&[]);
        pause(200);
    }
    pause(1500);
    shared.stop.store(true, Ordering::Release);
    for worker in workers {
        worker.join().unwrap();
    }

    // Healed: one more write commits, then every committed write is everywhere.
    let leader = cluster.leader(&all);
    let last = cluster.client(leader).put("m", "final", "v");
    // Writes whose commit was not seen: committed ones stay in flight, the
    // others never took effect.
    let mut committed = shared.committed.lock().unwrap().clone();
    let mut history = shared.history.lock().unwrap().clone();
    let unsettled = shared.unsettled.lock().unwrap().clone();
    cluster.wait_committed(leader, last);
    for (invoked, id) in &unsettled {
        match status_of(cluster.client(leader), *id).as_deref() {
            Some("Committed") => committed.push(*id),
            _ => history[*invoked] = None,
        }
    }
    let history: Vec<Event> = history.into_iter().flatten().collect();
    assert!(committed.len() >= 10, "only {} commits", committed.len());
    cluster.assert_committed_everywhere(&all, &committed, last);
    let returned = history
        .iter()
        .filter(|event| matches!(event, Event::Return { .. }))
        .count();
    eprintln!(
        "{} operations, {returned} answered, {} committed writes, {} settled after the run",
        history.len() - returned,
        committed.len(),
        unsettled.len()
    );
    check_linearizable(&history);
    cluster.terminate_and_verify();
}

/// The checker as wired here can fail: a read that misses a write completed
/// before it began is caught, and the same read overlapping the write is not.
#[test]
fn the_checker_rejects_a_stale_read() {
    let put = |thread| Event::Invoke {
        key: 0,
        thread,
        op: KvOp::Put("a".to_owned()),
    };
    let get = |thread| Event::Invoke {
        key: 0,
        thread,
        op: KvOp::Get,
    };
    let ret = |thread, ret| Event::Return {
        key: 0,
        thread,
        ret,
    };
    let stale = vec![
        put(1),
        ret(1, KvRet::Written),
        get(2),
        ret(2, KvRet::Read(None)),
    ];
    assert!(!tester_of(&stale, 0).0.is_consistent());
    let overlapping = vec![
        put(1),
        get(2),
        ret(2, KvRet::Read(None)),
        ret(1, KvRet::Written),
    ];
    assert!(tester_of(&overlapping, 0).0.is_consistent());
}
