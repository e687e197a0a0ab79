//! The invariant everything relies on: for every N, executing a batch in parallel
//! gives exactly what executing it serially, in order, gives.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use proptest::prelude::*;
use stele_dispatcher::{execute_serial, Dispatcher, TxResult};
use stele_frontends::smallbank::CHECKING_MAP;
use stele_frontends::{Command, LoggingCommand, Op, SmallBankCommand, Transaction};
use stele_kv::Store;

const WORKER_COUNTS: [usize; 4] = [1, 2, 4, 8];

/// One dispatcher per worker count, built once for all cases (as in production).
fn dispatchers() -> &'static [Dispatcher] {
    static DISPATCHERS: OnceLock<Vec<Dispatcher>> = OnceLock::new();
    DISPATCHERS.get_or_init(|| {
        WORKER_COUNTS
            .iter()
            .map(|&n| Dispatcher::new(n).unwrap())
            .collect()
    })
}

/// Generic operations over a plain map and SmallBank's checking map, so that the
/// generic language and the app contend on the same keys.
fn op_strategy(keys: u64) -> impl Strategy<Value = Op> {
    let map = prop::sample::select(vec!["m", CHECKING_MAP]).prop_map(str::to_owned);
    let key = (0..keys).prop_map(|key| key.to_string());
    let value = prop::sample::select(vec!["0", "5", "250", "x"]).prop_map(str::to_owned);
    (0..4u8, map, key, prop::option::of(value)).prop_map(|(kind, map, key, value)| match kind {
        0 => Op::Get { map, key },
        1 => Op::Put {
            map,
            key,
            value: value.unwrap_or_default(),
        },
        2 => Op::Delete { map, key },
        _ => Op::Check { map, key, value },
    })
}

fn smallbank_strategy(keys: u64) -> impl Strategy<Value = SmallBankCommand> {
    let account = 0..keys;
    let amount = -50i64..300;
    (0..8u8, account.clone(), account, amount).prop_map(|(kind, a, b, amount_cents)| {
        // Commands on two accounts need two distinct ones; with one key, fall back
        // to a one-account command.
        let other = if a == b { None } else { Some(b) };
        match (kind, other) {
            (0, _) => SmallBankCommand::Balance { account: a },
            (1, _) => SmallBankCommand::DepositChecking {
                account: a,
                amount_cents,
            },
            (2, _) => SmallBankCommand::TransactSavings {
                account: a,
                amount_cents,
            },
            (3, _) => SmallBankCommand::WriteCheck {
                account: a,
                amount_cents,
            },
            (4, _) => SmallBankCommand::CreateAccount {
                account: a,
                checking_cents: 10,
                savings_cents: 10,
            },
            (5, Some(to)) => SmallBankCommand::Amalgamate { from: a, to },
            (_, Some(to)) => SmallBankCommand::SendPayment {
                from: a,
                to,
                amount_cents,
            },
            (_, None) => SmallBankCommand::Balance { account: a },
        }
    })
}

fn command_strategy(keys: u64) -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            prop::collection::vec(op_strategy(keys), 0..5),
            prop::option::of("[a-z]{0,4}")
        )
            .prop_map(|(ops, claims)| Command::Transaction(Transaction { ops, claims })),
        (0..keys, "[a-z]{0,6}")
            .prop_map(|(id, message)| Command::Logging(LoggingCommand::Record { id, message })),
        (0..keys).prop_map(|id| Command::Logging(LoggingCommand::Read { id })),
        smallbank_strategy(keys).prop_map(Command::SmallBank),
        smallbank_strategy(keys).prop_map(Command::SmallBank),
    ]
}

/// Key-space size from 1 (every transaction on one key) to 64 (mostly disjoint),
/// then two consecutive batches over it.
fn batches_strategy() -> impl Strategy<Value = (u64, Vec<Vec<Command>>)> {
    (1..64u64).prop_flat_map(|keys| {
        let batch = prop::collection::vec(command_strategy(keys), 0..48);
        (Just(keys), prop::collection::vec(batch, 1..3))
    })
}

/// A store with accounts `0..keys` (the same start for every engine).
fn seeded_store(keys: u64) -> Store {
    let mut store = Store::new();
    let setup = Command::SmallBank(SmallBankCommand::CreateAccounts {
        first_account: 0,
        count: u32::try_from(keys).unwrap(),
        checking_cents: 200,
        savings_cents: 100,
    });
    let results = execute_serial(&mut store, &[setup]).unwrap();
    assert!(matches!(
        results[0].outcome,
        stele_frontends::Outcome::Completed(_)
    ));
    store
}

/// The naive reference: one command at a time, straight on the store.
fn reference(store: &mut Store, batch: &[Command]) -> Vec<TxResult> {
    batch
        .iter()
        .map(|command| {
            let execution = command.execute(&*store).unwrap();
            let seqno = store.version() + 1;
            store.apply(seqno, &execution.write_set).unwrap();
            TxResult {
                seqno,
                outcome: execution.outcome,
                write_set: execution.write_set,
                write_set_digest: execution.write_set_digest,
            }
        })
        .collect()
}

/// One transaction's observable result as bytes: seqno, outcome JSON, canonical
/// write set, digest.
type Observed = (u64, Vec<u8>, Vec<u8>, [u8; 32]);

/// Everything observable, as bytes.
fn observable(results: &[TxResult]) -> Vec<Observed> {
    results
        .iter()
        .map(|result| {
            (
                result.seqno,
                serde_json::to_vec(&result.outcome).unwrap(),
                result.write_set.canonical_bytes(),
                result.write_set_digest,
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn every_worker_count_matches_the_serial_reference((keys, batches) in batches_strategy()) {
        let mut expected_store = seeded_store(keys);
        let expected: Vec<_> = batches.iter().map(|batch| observable(&reference(&mut expected_store, batch))).collect();
        let expected_state = expected_store.snapshot(expected_store.version()).unwrap().to_bytes();

        for dispatcher in dispatchers() {
            let mut store = seeded_store(keys);
            for (batch, expected) in batches.iter().zip(&expected) {
                let results = dispatcher.execute(&mut store, batch).unwrap();
                prop_assert_eq!(&observable(&results), expected, "N = {}", dispatcher.workers());
                for result in &results {
                    prop_assert_eq!(result.write_set.digest(), result.write_set_digest);
                }
            }
            let state = store.snapshot(store.version()).unwrap().to_bytes();
            prop_assert_eq!(&state, &expected_state, "final state, N = {}", dispatcher.workers());
        }
    }
}

/// A wide, mostly disjoint batch with a few shared keys: exercises the pool path
/// (waves wider than the inline threshold) and the overlay between waves.
#[test]
fn wide_waves_with_a_few_conflicts_match_serial() {
    let accounts = 400u64;
    let batch: Vec<Command> = (0..accounts)
        .map(|index| {
            let command = if index % 10 == 0 {
                SmallBankCommand::SendPayment {
                    from: index,
                    to: u64::from(index == 0),
                    amount_cents: 7,
                }
            } else {
                SmallBankCommand::DepositChecking {
                    account: index,
                    amount_cents: 3,
                }
            };
            Command::SmallBank(command)
        })
        .collect();
    let mut expected_store = seeded_store(accounts);
    let expected = observable(&reference(&mut expected_store, &batch));
    for dispatcher in dispatchers() {
        let mut store = seeded_store(accounts);
        let results = dispatcher.execute(&mut store, &batch).unwrap();
        assert_eq!(
            observable(&results),
            expected,
            "N = {}",
            dispatcher.workers()
        );
        assert_eq!(
            store.snapshot(store.version()).unwrap(),
            expected_store.snapshot(expected_store.version()).unwrap()
        );
    }
}

/// Aborted transactions keep their seqnos: seqnos are contiguous from the head.
#[test]
fn aborts_occupy_their_seqnos() {
    let mut store = seeded_store(2);
    let head = store.version();
    let batch = vec![
        Command::SmallBank(SmallBankCommand::Balance { account: 99 }),
        Command::Logging(LoggingCommand::Record {
            id: 1,
            message: "m".into(),
        }),
    ];
    let results = Dispatcher::new(2)
        .unwrap()
        .execute(&mut store, &batch)
        .unwrap();
    assert_eq!(
        results.iter().map(|r| r.seqno).collect::<Vec<_>>(),
        vec![head + 1, head + 2]
    );
    assert!(results[0].write_set.is_empty());
    assert_eq!(store.version(), head + 2);
}
