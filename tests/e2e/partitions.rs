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
//! An operation whose outcome the client cannot know (timeout, transport error,
//! a redirect or 503 after the request may have been proposed) stays "in flight"
//! for the checker, which may place it anywhere after its start or drop it, and
//! that client goes on under a new thread id, as the checker requires.

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
    /// Answered: the operation took effect (or read) exactly so.
    Done(KvRet, Option<TransactionId>),
    /// Unknown: it may or may not have taken effect.
    Unknown,
}

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
            "/app/tx",
            &json!({"ops": [{"op": "put", "map": "m", "key": name, "value": value}]}),
        ),
        KvOp::Cas(expected, value) => client.try_post_json(
            "/app/tx",
            &json!({"ops": [
                {"op": "check", "map": "m", "key": name, "value": expected},
                {"op": "put", "map": "m", "key": name, "value": value},
            ]}),
        ),
    };
    let Ok(reply) = reply else {
        return Outcome::Unknown;
    };
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let committed =
        || (body["status"] == "Committed").then(|| transaction_id(&body["transaction_id"]));
    match (op, reply.status) {
        (KvOp::Get, 200) => Outcome::Done(
            KvRet::Read(Some(body["value"].as_str().unwrap().to_owned())),
            None,
        ),
        (KvOp::Get, 404) if body["error"]["code"] == "NotFound" => {
            Outcome::Done(KvRet::Read(None), None)
        }
        (KvOp::Put(_), 200) => match committed() {
            Some(id) => Outcome::Done(KvRet::Written, Some(id)),
            None => Outcome::Unknown,
        },
        (KvOp::Cas(..), 200) => match committed() {
            Some(id) => Outcome::Done(KvRet::Swapped(true), Some(id)),
            None => Outcome::Unknown,
        },
        (KvOp::Cas(..), 409) if body["error"]["code"] == "CheckFailed" => {
            Outcome::Done(KvRet::Swapped(false), None)
        }
        _ => Outcome::Unknown,
    }
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
    history: Mutex<Vec<Event>>,
    committed: Mutex<Vec<TransactionId>>,
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
        shared.history.lock().unwrap().push(Event::Invoke {
            key,
            thread,
            op: op.clone(),
        });
        match perform(&shared.clients[target], key, &op) {
            Outcome::Done(ret, id) => {
                if let KvRet::Read(value) = &ret {
                    seen[key] = value.clone();
                }
                shared
                    .history
                    .lock()
                    .unwrap()
                    .push(Event::Return { key, thread, ret });
                shared.committed.lock().unwrap().extend(id);
            }
            Outcome::Unknown => {
                // The operation stays in flight; this client goes on as a new
                // thread (a thread has at most one operation in flight).
                thread += CLIENTS;
                if let Some(leader) = find_leader(&shared.clients) {
                    *shared.leader.lock().unwrap() = leader;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
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
    let committed = shared.committed.lock().unwrap().clone();
    assert!(committed.len() >= 10, "only {} commits", committed.len());
    cluster.assert_committed_everywhere(&all, &committed, last);
    let history = shared.history.lock().unwrap().clone();
    let returned = history
        .iter()
        .filter(|event| matches!(event, Event::Return { .. }))
        .count();
    eprintln!(
        "{} operations, {returned} answered, {} committed writes",
        history.len() - returned,
        committed.len()
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
