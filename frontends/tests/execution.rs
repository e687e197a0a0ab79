//! Execution semantics of the generic language and the built-in apps.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use stele_frontends::{AbortReason, Command, Execution, Outcome};
use stele_kv::{Store, WriteSet};

fn command(json: serde_json::Value) -> Command {
    Command::from_json(json.to_string().as_bytes()).unwrap()
}

/// Executes and applies at the next version, like the serial engine.
fn run(store: &mut Store, command: &Command) -> Execution {
    let execution = command.execute(store).unwrap();
    assert_eq!(execution.write_set_digest, execution.write_set.digest());
    store
        .apply(store.version() + 1, &execution.write_set)
        .unwrap();
    execution
}

fn committed(execution: &Execution) -> &serde_json::Value {
    match &execution.outcome {
        Outcome::Completed(response) => response,
        Outcome::Aborted(reason) => panic!("aborted: {reason:?}"),
    }
}

fn aborted(execution: &Execution) -> &AbortReason {
    assert!(execution.write_set.is_empty(), "an abort writes nothing");
    assert_eq!(execution.write_set_digest, WriteSet::new().digest());
    match &execution.outcome {
        Outcome::Aborted(reason) => reason,
        Outcome::Completed(response) => panic!("committed: {response}"),
    }
}

#[test]
fn generic_transaction_reads_its_own_writes_and_checks_preconditions() {
    let mut store = Store::new();
    let first = command(json!({"transaction": {"ops": [
        {"op": "check", "map": "m", "key": "k", "value": null},
        {"op": "put", "map": "m", "key": "k", "value": "v1"},
        {"op": "get", "map": "m", "key": "k"},
        {"op": "get", "map": "m", "key": "absent"},
    ]}}));
    let execution = run(&mut store, &first);
    assert_eq!(
        committed(&execution),
        &json!({"results": [
            {"map": "m", "key": "k", "value": "v1"},
            {"map": "m", "key": "absent", "value": null},
        ]})
    );
    assert_eq!(store.get("m", "k"), Some(&b"v1"[..]));

    // The same check now fails: the whole transaction aborts, the put included.
    let execution = run(&mut store, &first);
    assert_eq!(
        aborted(&execution),
        &AbortReason::CheckFailed {
            op_index: 0,
            map: "m".into(),
            key: "k".into()
        }
    );
    assert_eq!(store.version(), 2, "an abort still occupies its version");

    let delete = command(json!({"transaction": {"ops": [
        {"op": "check", "map": "m", "key": "k", "value": "v1"},
        {"op": "delete", "map": "m", "key": "k"},
    ]}}));
    committed(&run(&mut store, &delete));
    assert_eq!(store.get("m", "k"), None);
}

#[test]
fn logging_records_and_reads_back() {
    let mut store = Store::new();
    let record = command(json!({"logging": {"op": "record", "id": 42, "message": "hello"}}));
    assert_eq!(committed(&run(&mut store, &record)), &json!({"id": 42}));
    let read = command(json!({"logging": {"op": "read", "id": 42}}));
    assert_eq!(
        committed(&run(&mut store, &read)),
        &json!({"id": 42, "message": "hello"})
    );
    let missing = command(json!({"logging": {"op": "read", "id": 7}}));
    assert!(matches!(
        aborted(&run(&mut store, &missing)),
        AbortReason::NotFound { .. }
    ));
}

#[test]
fn smallbank_moves_money_and_aborts_deterministically() {
    let mut store = Store::new();
    let setup = command(
        json!({"small_bank": {"op": "create_accounts", "first_account": 1,
        "count": 3, "checking_cents": 1000, "savings_cents": 500}}),
    );
    assert_eq!(committed(&run(&mut store, &setup)), &json!({"created": 3}));
    assert!(matches!(
        aborted(&run(&mut store, &setup)),
        AbortReason::AccountExists { account: 1 }
    ));

    let pay = command(
        json!({"small_bank": {"op": "send_payment", "from": 1, "to": 2, "amount_cents": 300}}),
    );
    assert_eq!(
        committed(&run(&mut store, &pay)),
        &json!({"from": 1, "to": 2, "from_checking_cents": 700, "to_checking_cents": 1300})
    );
    let overdraw = command(
        json!({"small_bank": {"op": "send_payment", "from": 1, "to": 2, "amount_cents": 701}}),
    );
    assert_eq!(
        aborted(&run(&mut store, &overdraw)),
        &AbortReason::InsufficientFunds { account: 1 }
    );

    let withdraw = command(
        json!({"small_bank": {"op": "transact_savings", "account": 3, "amount_cents": -501}}),
    );
    assert_eq!(
        aborted(&run(&mut store, &withdraw)),
        &AbortReason::InsufficientFunds { account: 3 }
    );
    let deposit =
        command(json!({"small_bank": {"op": "deposit_checking", "account": 3, "amount_cents": 5}}));
    assert_eq!(
        committed(&run(&mut store, &deposit)),
        &json!({"account": 3, "checking_cents": 1005})
    );
    let negative = command(
        json!({"small_bank": {"op": "deposit_checking", "account": 3, "amount_cents": -5}}),
    );
    assert_eq!(
        aborted(&run(&mut store, &negative)),
        &AbortReason::NegativeAmount { amount_cents: -5 }
    );

    // 700 + 500 = 1200 < 1300: the check overdraws, so the penalty applies.
    let check =
        command(json!({"small_bank": {"op": "write_check", "account": 1, "amount_cents": 1300}}));
    assert_eq!(
        committed(&run(&mut store, &check)),
        &json!({"account": 1, "checking_cents": -700})
    );

    let merge = command(json!({"small_bank": {"op": "amalgamate", "from": 2, "to": 3}}));
    committed(&run(&mut store, &merge));
    let balance = command(json!({"small_bank": {"op": "balance", "account": 3}}));
    assert_eq!(
        committed(&run(&mut store, &balance)),
        &json!({"account": 3, "checking_cents": 2805, "savings_cents": 500, "total_cents": 3305})
    );
    let unknown = command(json!({"small_bank": {"op": "balance", "account": 99}}));
    assert_eq!(
        aborted(&run(&mut store, &unknown)),
        &AbortReason::UnknownAccount { account: 99 }
    );

    let huge = command(
        json!({"small_bank": {"op": "deposit_checking", "account": 3, "amount_cents": i64::MAX}}),
    );
    assert_eq!(aborted(&run(&mut store, &huge)), &AbortReason::Overflow);
}

#[test]
fn corrupt_balances_abort_instead_of_panicking() {
    let mut store = Store::new();
    run(
        &mut store,
        &command(json!({"small_bank": {"op": "create_account", "account": 5,
        "checking_cents": 1, "savings_cents": 1}})),
    );
    run(
        &mut store,
        &command(json!({"transaction": {"ops": [
        {"op": "put", "map": "smallbank.checking", "key": "5", "value": "not a number"}]}})),
    );
    let balance = command(json!({"small_bank": {"op": "balance", "account": 5}}));
    assert!(matches!(
        aborted(&run(&mut store, &balance)),
        AbortReason::CorruptBalance { .. }
    ));
}

#[test]
fn key_sets_are_declared_from_arguments() {
    let payment = command(
        json!({"small_bank": {"op": "send_payment", "from": 2, "to": 1, "amount_cents": 1}}),
    );
    let keys: Vec<_> = payment
        .key_set()
        .iter()
        .map(|(m, k)| format!("{m}/{k}"))
        .collect();
    assert_eq!(
        keys,
        [
            "smallbank.checking/1",
            "smallbank.checking/2",
            "smallbank.savings/1",
            "smallbank.savings/2"
        ]
    );
    let duplicate = command(json!({"transaction": {"ops": [
        {"op": "get", "map": "m", "key": "k"}, {"op": "put", "map": "m", "key": "k", "value": "v"}]}}));
    assert_eq!(duplicate.key_set().len(), 1);
}

#[test]
fn an_invalid_command_replayed_without_validation_aborts_deterministically() {
    // A faulty primary could order a command that never passed `from_json`.
    let payment: Command = serde_json::from_value(json!({"small_bank": {"op": "send_payment",
        "from": 1, "to": 1, "amount_cents": 1}}))
    .unwrap();
    let mut store = Store::new();
    assert!(matches!(
        aborted(&run(&mut store, &payment)),
        AbortReason::InvalidCommand { .. }
    ));

    // Its key set is empty rather than unbounded: scheduling happens before validation.
    let huge: Command = serde_json::from_value(json!({"small_bank": {"op": "create_accounts",
        "first_account": 0, "count": u32::MAX, "checking_cents": 0, "savings_cents": 0}}))
    .unwrap();
    assert!(huge.key_set().is_empty());
    assert!(matches!(
        aborted(&run(&mut store, &huge)),
        AbortReason::InvalidCommand { .. }
    ));
}

#[test]
fn redis_commands_answer_replies_and_watches_abort() {
    use stele_frontends::redis::{
        replies_from_response, watch_digest, RedisCommand, RedisOp, Reply, Watch,
    };
    let mut store = Store::new();
    let set = command(json!({"redis": {"ops": [
        {"op": "set", "key": "k", "value": "1"},
        {"op": "incrby", "key": "k", "by": 41},
        {"op": "hget", "key": "k", "field": "f"},
    ]}}));
    let replies = replies_from_response(committed(&run(&mut store, &set))).unwrap();
    assert_eq!(
        replies,
        vec![
            Reply::Status("OK".into()),
            Reply::Int(42),
            Reply::Error(
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            ),
        ]
    );
    assert_eq!(store.get("redis", "k"), Some(&b"42"[..]));

    let watched = Command::Redis(RedisCommand {
        ops: vec![RedisOp::Get { key: b"k".to_vec() }],
        watches: vec![Watch {
            key: b"k".to_vec(),
            digest: watch_digest(&store, b"k"),
        }],
    });
    run(&mut store, &set); // k is 42 again: an equal value is no change
    assert!(matches!(
        run(&mut store, &watched).outcome,
        Outcome::Completed(_)
    ));
    let incr = command(json!({"redis": {"ops": [{"op": "incrby", "key": "k", "by": 1}]}}));
    run(&mut store, &incr);
    assert_eq!(
        aborted(&run(&mut store, &watched)),
        &AbortReason::WatchedKeyChanged { key: "k".into() }
    );
}

#[test]
fn commands_round_trip_through_cbor_and_json() {
    let commands = [
        json!({"transaction": {"ops": [{"op": "check", "map": "m", "key": "k", "value": null}], "claims": "c"}}),
        json!({"transaction": {"ops": [{"op": "put", "map": "m", "key": "k", "value": "v"}]}}),
        json!({"logging": {"op": "record", "id": u64::MAX, "message": "m"}}),
        json!({"small_bank": {"op": "transact_savings", "account": 1, "amount_cents": -5}}),
        json!({"redis": {
            "ops": [
                {"op": "set", "key": [255, 0], "value": [118], "condition": "if_absent", "get": true},
                {"op": "hset", "key": [104], "pairs": [[[102], []]]},
            ],
            "watches": [{"key": [119], "digest": null}],
        }}),
    ];
    for value in commands {
        let original = command(value.clone());
        assert_eq!(serde_json::to_value(&original).unwrap(), value);
        let mut cbor = Vec::new();
        ciborium::into_writer(&original, &mut cbor).unwrap();
        let back: Command = ciborium::from_reader(cbor.as_slice()).unwrap();
        assert_eq!(back, original);
        let mut again = Vec::new();
        ciborium::into_writer(&back, &mut again).unwrap();
        assert_eq!(again, cbor, "CBOR encoding is deterministic");
    }
}
