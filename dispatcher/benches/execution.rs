//! Transactions per second of the execution engine: SmallBank uncontended (100k
//! accounts) and contended (100 accounts), the logging app, each with 1 and 2
//! workers in the same run, plus the serial engine with no dispatcher at all.
//!
//! Run: `cargo bench -p stele-dispatcher -- --warm-up-time 1 --measurement-time 3`.
//! The ratio to report is (2 workers) / (1 worker) per workload; the design's ceiling
//! is 1.85x when a transaction does >= 2-3 us of work.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

/// The allocator the `stele` binary uses: glibc's main arena trims and regrows the
/// heap on this batch-sized churn, which made serial execution 2-4x slower on the
/// main thread than on pool threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use stele_dispatcher::{execute_serial, Dispatcher};
use stele_frontends::{Command, LoggingCommand, SmallBankCommand};
use stele_kv::Store;

/// Transactions per batch.
const BATCH_TXS: usize = 1_000;
/// Distinct pre-generated batches cycled through, so caches do not see one batch.
const BATCHES: usize = 8;
/// Accounts created per setup command (the frontends' bound).
const SETUP_CHUNK: u32 = 1_000;

/// Seeded, so the batches are the same on every run.
fn seeded() -> StdRng {
    StdRng::seed_from_u64(0x5eed_1234_abcd_0001)
}

/// The standard SmallBank mix (percent): balance 15, deposit_checking 15,
/// transact_savings 15, amalgamate 15, write_check 25, send_payment 15.
fn smallbank_tx(random: &mut StdRng, accounts: u64) -> Command {
    let account = random.random_range(0..accounts);
    let other = (account + 1 + random.random_range(0..accounts - 1)) % accounts;
    let amount_cents = 1 + random.random_range(0..500) as i64;
    let pick = random.random_range(0..100);
    Command::SmallBank(match pick {
        0..15 => SmallBankCommand::Balance { account },
        15..30 => SmallBankCommand::DepositChecking {
            account,
            amount_cents,
        },
        30..45 => SmallBankCommand::TransactSavings {
            account,
            amount_cents,
        },
        45..60 => SmallBankCommand::Amalgamate {
            from: account,
            to: other,
        },
        60..85 => SmallBankCommand::WriteCheck {
            account,
            amount_cents,
        },
        _ => SmallBankCommand::SendPayment {
            from: account,
            to: other,
            amount_cents,
        },
    })
}

fn smallbank_store(accounts: u64) -> Store {
    let mut store = Store::new();
    let mut first_account = 0;
    while first_account < accounts {
        let count = SETUP_CHUNK.min((accounts - first_account) as u32);
        let setup = Command::SmallBank(SmallBankCommand::CreateAccounts {
            first_account,
            count,
            checking_cents: 1_000_000,
            savings_cents: 1_000_000,
        });
        execute_serial(&mut store, &[setup]).expect("setup of fresh accounts cannot fail");
        first_account += u64::from(count);
    }
    store.commit(store.version()).expect("the head is retained");
    store
}

fn batches(mut make: impl FnMut(&mut StdRng) -> Command) -> Vec<Vec<Command>> {
    let mut random = seeded();
    (0..BATCHES)
        .map(|_| (0..BATCH_TXS).map(|_| make(&mut random)).collect())
        .collect()
}

/// Benches one workload with 1 and 2 workers, then the serial engine alone.
fn workload(c: &mut Criterion, name: &str, store: &Store, batches: &[Vec<Command>]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH_TXS as u64));
    for workers in [1, 2] {
        let dispatcher = Dispatcher::new(workers).expect("2 workers are within the bound");
        let mut store = store.clone();
        let mut next = 0;
        group.bench_function(BenchmarkId::new("workers", workers), |bencher| {
            bencher.iter(|| {
                let results = dispatcher
                    .execute(&mut store, &batches[next % BATCHES])
                    .expect("bench commands are valid");
                // Compact as consensus would on global commit, so undo logs stay small.
                store.commit(store.version()).expect("the head is retained");
                next += 1;
                results
            })
        });
    }
    let mut store = store.clone();
    let mut next = 0;
    group.bench_function("serial_engine", |bencher| {
        bencher.iter(|| {
            // No dispatcher: execute and apply, one command at a time.
            for command in &batches[next % BATCHES] {
                let execution = command.execute(&store).expect("bench commands are valid");
                let seqno = store.version() + 1;
                store
                    .apply(seqno, &execution.write_set)
                    .expect("seqnos are contiguous");
            }
            store.commit(store.version()).expect("the head is retained");
            next += 1;
        })
    });
    group.finish();
}

fn smallbank_uncontended(c: &mut Criterion) {
    let accounts = 100_000;
    let store = smallbank_store(accounts);
    workload(
        c,
        "smallbank_100k_accounts",
        &store,
        &batches(|random| smallbank_tx(random, accounts)),
    );
}

fn smallbank_contended(c: &mut Criterion) {
    let accounts = 100;
    let store = smallbank_store(accounts);
    workload(
        c,
        "smallbank_100_accounts",
        &store,
        &batches(|random| smallbank_tx(random, accounts)),
    );
}

fn smallbank_one_account(c: &mut Criterion) {
    // Full contention: every transaction touches account 0, one per wave.
    let store = smallbank_store(1);
    let batch = batches(|random| {
        Command::SmallBank(SmallBankCommand::DepositChecking {
            account: 0,
            amount_cents: 1 + random.random_range(0..5) as i64,
        })
    });
    workload(c, "smallbank_1_account", &store, &batch);
}

fn logging(c: &mut Criterion) {
    let batch = batches(|random| {
        Command::Logging(LoggingCommand::Record {
            id: random.random_range(0..1_000_000),
            message: "a log line of a typical length, about sixty-four bytes long.".to_owned(),
        })
    });
    workload(c, "logging_record", &Store::new(), &batch);
}

criterion_group!(
    benches,
    smallbank_uncontended,
    smallbank_contended,
    smallbank_one_account,
    logging
);
criterion_main!(benches);
