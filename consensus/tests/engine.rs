//! The single-member engine: submit, commit, receipts, committed reads, restart.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use stele_consensus::raft::network::{Partition, PeerAuth};
use stele_consensus::raft::SteleNode;
use stele_consensus::{
    ClusterSetup, Engine, EngineConfig, RaftLogPolicy, RaftTiming, ServiceIdentity, Submission,
    SubmitResult, TxState,
};
use stele_frontends::{Command, Op, Outcome, Transaction};
use stele_history::{SigningKey, TransactionId};
use stele_ledger::{verify_ledger, Ledger, LedgerConfig};

const ORIGIN: &str = "test.stele.example/engine";

fn identity() -> ServiceIdentity {
    ServiceIdentity::new(ORIGIN, SigningKey::from_bytes(&[5; 32]), [6; 32]).unwrap()
}

/// An engine with the tokio runtime it runs on (openraft needs one).
struct Running {
    engine: Option<Engine>,
    runtime: tokio::runtime::Runtime,
}

impl std::ops::Deref for Running {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }
}

impl Running {
    fn shutdown(mut self) {
        let engine = self.engine.take().unwrap();
        self.runtime.block_on(engine.shutdown());
    }
}

/// A cluster of one, with a fixed node key.
fn single_member() -> ClusterSetup {
    let key = SigningKey::from_bytes(&[9; 32]);
    let members = BTreeMap::from([(1, key.verifying_key())]);
    ClusterSetup {
        node_id: 1,
        members: BTreeMap::from([(1, SteleNode::new("127.0.0.1:1", &key.verifying_key()))]),
        auth: Arc::new(PeerAuth::new(1, key, members)),
        partition: Partition::default(),
        timing: RaftTiming {
            heartbeat_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            ..RaftTiming::default()
        },
        log: RaftLogPolicy::default(),
        join: false,
    }
}

fn run_engine(ledger: Ledger, identity: ServiceIdentity, config: EngineConfig) -> Running {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = runtime
        .block_on(Engine::start(ledger, identity, config, single_member()))
        .unwrap();
    Running {
        engine: Some(engine),
        runtime,
    }
}

fn start(dir: &Path) -> Running {
    let identity = identity();
    let ledger = if dir.join("ledger_1").exists()
        || std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        Ledger::open(dir, LedgerConfig::default()).unwrap().0
    } else {
        Ledger::create(dir, LedgerConfig::default(), &identity.genesis()).unwrap()
    };
    let config = EngineConfig {
        batch_wait_us: 200,
        ..EngineConfig::default()
    };
    run_engine(ledger, identity, config)
}

fn put(key: &str, value: &str) -> Command {
    Command::Transaction(Transaction {
        ops: vec![Op::Put {
            map: "m".to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        }],
        claims: Some(format!("claims of {key}")),
    })
}

fn submit(engine: &Engine, command: Command, wait: bool) -> SubmitResult {
    let (sender, receiver) = mpsc::channel();
    engine
        .submit(Submission {
            command,
            wait,
            reply: Box::new(move |result| sender.send(result).unwrap()),
        })
        .unwrap();
    receiver.recv().unwrap().unwrap()
}

#[test]
fn committed_transactions_have_receipts_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let key = identity().signer().verifier().key().to_owned();
    let mut ids = Vec::new();
    for index in 0..20 {
        let result = submit(
            &engine,
            put(&format!("k{index}"), &format!("v{index}")),
            true,
        );
        assert!(result.committed);
        assert!(matches!(result.outcome, Outcome::Completed(_)));
        ids.push(result.transaction_id);
    }
    // Many submissions queued at once share batches.
    let (sender, receiver) = mpsc::channel();
    for index in 0..200 {
        let sender = sender.clone();
        engine
            .submit(Submission {
                command: put(&format!("bulk{index}"), "x"),
                wait: true,
                reply: Box::new(move |result| sender.send(result).unwrap()),
            })
            .unwrap();
    }
    for _ in 0..200 {
        assert!(receiver.recv().unwrap().unwrap().committed);
    }
    assert!(
        engine
            .counters()
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
            < 220
    );
    assert_eq!(engine.committed_seqno(), 220);

    for (index, id) in ids.iter().enumerate() {
        assert_eq!(engine.tx_state(*id), TxState::Committed);
        let receipt = engine.receipt(*id).unwrap();
        receipt.verify(&key).unwrap();
        let (value, writer) = engine.kv_get("m", &format!("k{index}")).unwrap();
        assert_eq!(value, format!("v{index}").into_bytes());
        assert_eq!(writer, *id);
    }
    let wrong_view = TransactionId { view: 9, seqno: 1 };
    assert_eq!(engine.tx_state(wrong_view), TxState::Invalid);
    assert_eq!(
        engine.tx_state(TransactionId {
            view: 1,
            seqno: 10_000
        }),
        TxState::Unknown
    );
    let checkpoint = engine.checkpoint().unwrap();
    assert!(checkpoint.contains("\n220\n"), "{checkpoint}");
    assert!(!engine.consistency(5, 220).unwrap().is_empty());
    assert!(engine.consistency(5, 221).is_err());
    let last = engine.last_committed().unwrap();
    engine.shutdown();

    verify_ledger(dir.path(), Some(&key), &mut |_| {}).unwrap();
    let engine = start(dir.path());
    assert_eq!(engine.last_committed(), Some(last));
    assert_eq!(engine.committed_seqno(), 220);
    for id in &ids {
        engine.receipt(*id).unwrap().verify(&key).unwrap();
    }
    let next = submit(&engine, put("after", "restart"), true);
    assert_eq!(next.transaction_id.seqno, 221);
}

#[test]
fn not_waiting_replies_pending_and_failed_checks_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let pending = submit(&engine, put("a", "1"), false);
    assert!(!pending.committed);
    let check = Command::Transaction(Transaction {
        ops: vec![
            Op::Check {
                map: "m".to_owned(),
                key: "a".to_owned(),
                value: Some("wrong".to_owned()),
            },
            Op::Put {
                map: "m".to_owned(),
                key: "a".to_owned(),
                value: "2".to_owned(),
            },
        ],
        claims: None,
    });
    let result = submit(&engine, check, true);
    assert!(matches!(result.outcome, Outcome::Aborted(_)));
    assert_eq!(engine.tx_state(pending.transaction_id), TxState::Committed);
    assert_eq!(engine.kv_get("m", "a").unwrap().0, b"1");
}

/// Runs an engine on the ledger in `ledger_dir`, created on the first call.
fn start_on_ledger(ledger_dir: &Path, config: EngineConfig) -> Running {
    let identity = identity();
    let ledger = if ledger_dir.exists() {
        Ledger::open(ledger_dir, LedgerConfig::default()).unwrap().0
    } else {
        Ledger::create(ledger_dir, LedgerConfig::default(), &identity.genesis()).unwrap()
    };
    run_engine(ledger, identity, config)
}

#[test]
fn restarts_from_a_snapshot_and_ignores_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("ledger");
    let snapshot_dir = dir.path().join("snapshots");
    let config = EngineConfig {
        batch_wait_us: 0,
        snapshot_dir: Some(snapshot_dir.clone()),
        snapshot_interval_tx: 10,
        ..EngineConfig::default()
    };
    let start_with = |config: EngineConfig| start_on_ledger(&ledger_dir, config);
    let engine = start_with(config.clone());
    assert_eq!(engine.restored_from_snapshot(), None);
    for index in 0..45 {
        // Rewrite a few keys often, so the snapshot and the suffix overlap.
        submit(
            &engine,
            put(&format!("k{}", index % 7), &format!("v{index}")),
            true,
        );
    }
    let expected: Vec<_> = (0..7)
        .map(|key| engine.kv_get("m", &format!("k{key}")).unwrap())
        .collect();
    engine.shutdown();
    let mut snapshots: Vec<_> = std::fs::read_dir(&snapshot_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    snapshots.sort();
    assert!(
        !snapshots.is_empty() && snapshots.len() <= 2,
        "{snapshots:?}"
    );

    let engine = start_with(config.clone());
    let restored = engine.restored_from_snapshot().unwrap();
    // Snapshots are due every 10 commits; one may be skipped while another is
    // being written, so only its range is certain.
    assert!((10..=45).contains(&restored), "{restored}");
    let restarted: Vec<_> = (0..7)
        .map(|key| engine.kv_get("m", &format!("k{key}")).unwrap())
        .collect();
    assert_eq!(restarted, expected);
    engine.shutdown();

    // Corrupt every snapshot: the node replays the whole ledger to the same state.
    for path in &snapshots {
        if let Ok(mut bytes) = std::fs::read(path) {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            std::fs::write(path, bytes).unwrap();
        }
    }
    let engine = start_with(config);
    assert_eq!(engine.restored_from_snapshot(), None);
    let replayed: Vec<_> = (0..7)
        .map(|key| engine.kv_get("m", &format!("k{key}")).unwrap())
        .collect();
    assert_eq!(replayed, expected);
}

/// Rewrites a version 2 snapshot file as version 1 (no magic line, no tree
/// frontier): what nodes before issue P10 wrote.
fn as_version_1(bytes: &[u8]) -> Vec<u8> {
    let magic = b"stele-snapshot 2\n";
    assert!(bytes.starts_with(magic), "a version 2 snapshot");
    let rest = &bytes[magic.len()..];
    let note_len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
    let (head, rest) = rest.split_at(4 + note_len);
    let tiles = u64::from_be_bytes(rest[..8].try_into().unwrap()) as usize;
    let rest = &rest[8 + 32 * tiles..];
    let edge = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
    let state = &rest[4 + 32 * edge..];
    [head, state].concat()
}

/// Submits `count` puts at once and waits for all of them; returns their ids.
fn submit_many(engine: &Engine, prefix: &str, count: usize) -> Vec<TransactionId> {
    let (sender, receiver) = mpsc::channel();
    for index in 0..count {
        let sender = sender.clone();
        engine
            .submit(Submission {
                command: put(&format!("{prefix}{}", index % 50), &format!("v{index}")),
                wait: true,
                reply: Box::new(move |result| sender.send(result).unwrap()),
            })
            .unwrap();
    }
    (0..count)
        .map(|_| {
            let result = receiver.recv().unwrap().unwrap();
            assert!(result.committed);
            result.transaction_id
        })
        .collect()
}

#[test]
fn a_snapshot_restores_the_tree_without_the_ledger_before_it_and_old_files_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("ledger");
    let snapshot_dir = dir.path().join("snapshots");
    let key = identity().signer().verifier().key().to_owned();
    let config = EngineConfig {
        snapshot_dir: Some(snapshot_dir.clone()),
        snapshot_interval_tx: 400,
        ..EngineConfig::default()
    };
    let start_with = |config: EngineConfig| start_on_ledger(&ledger_dir, config);
    let engine = start_with(config.clone());
    let mut ids = submit_many(&engine, "a", 500);
    ids.sort();
    let sampled: Vec<TransactionId> = ids.iter().step_by(37).copied().collect();
    let receipts: Vec<_> = sampled
        .iter()
        .map(|id| engine.receipt(*id).unwrap())
        .collect();
    let last = engine.last_committed().unwrap();
    let checkpoint = engine.checkpoint().unwrap();
    let consistency = engine.consistency(3, last.seqno).unwrap();
    let values: Vec<_> = (0..50)
        .map(|key| engine.kv_get("m", &format!("a{key}")).unwrap())
        .collect();
    engine.shutdown();
    let snapshot = std::fs::read_dir(&snapshot_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.to_string_lossy().ends_with(".tmp"))
        .max()
        .expect("a snapshot was written");

    let check = |engine: &Running, when: &str| {
        assert_eq!(engine.last_committed(), Some(last), "{when}");
        assert_eq!(engine.checkpoint().unwrap(), checkpoint, "{when}");
        for (id, receipt) in sampled.iter().zip(&receipts) {
            let again = engine.receipt(*id).unwrap();
            assert_eq!(&again, receipt, "the receipt of {id} {when}");
            again.verify(&key).unwrap();
        }
        assert_eq!(
            engine.consistency(3, last.seqno).unwrap(),
            consistency,
            "{when}"
        );
        let again: Vec<_> = (0..50)
            .map(|key| engine.kv_get("m", &format!("a{key}")).unwrap())
            .collect();
        assert_eq!(again, values, "{when}");
    };
    let engine = start_with(config.clone());
    let restored = engine.restored_from_snapshot().unwrap();
    assert!(restored >= 400, "{restored}");
    // The tree came from the snapshot's frontier: the lower levels before its
    // last tile were never rebuilt (they are read back for old receipts).
    assert_eq!(engine.leaves_in_memory_from(), restored / 256 * 256);
    check(&engine, "after a restart from a version 2 snapshot");
    engine.shutdown();

    // The same snapshot in the version 1 format still restores the state; the
    // tree is then rebuilt from the whole ledger.
    let bytes = std::fs::read(&snapshot).unwrap();
    std::fs::write(&snapshot, as_version_1(&bytes)).unwrap();
    let engine = start_with(config);
    assert_eq!(engine.restored_from_snapshot(), Some(restored));
    assert_eq!(engine.leaves_in_memory_from(), 0);
    check(&engine, "after a restart from a version 1 snapshot");
}

#[test]
fn every_restart_is_a_new_view_and_older_views_past_the_log_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let mut previous = None;
    for restart in 0..3 {
        let engine = start(dir.path());
        let view = engine.view();
        if let Some(previous) = previous {
            assert!(
                view > previous,
                "start {restart} resumed view {view}, not past {previous}"
            );
        }
        let id = submit(&engine, put(&format!("k{restart}"), "v"), true).transaction_id;
        assert_eq!(id.view, view, "start {restart}: {id} in view {view}");
        // An id the last view might have given beyond the log, had it crashed
        // with it pending: it can never commit now.
        if let Some(previous) = previous {
            let lost = TransactionId {
                view: previous,
                seqno: id.seqno + 1,
            };
            assert_eq!(engine.tx_state(lost), TxState::Invalid, "{lost}");
        }
        // The current view past the log may still come.
        let next = TransactionId {
            view,
            seqno: id.seqno + 1,
        };
        assert_eq!(engine.tx_state(next), TxState::Unknown, "{next}");
        previous = Some(view);
        engine.shutdown();
    }
}
