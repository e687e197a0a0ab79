//! [`Dispatcher`]: runs a batch's waves on N workers and merges the results back
//! into batch order; [`execute_serial`], the serial reference.

use rayon::prelude::*;
use stele_frontends::{Command, Execution, KeySet, Outcome};
use stele_kv::{Overlay, Store, Version, WriteSet};

use crate::{
    DispatchError, Schedule, BATCH_ENTRIES_MAX, CONTENTION_SLACK_TXS, PARALLEL_MEAN_WAVE_TXS_MIN,
    PARALLEL_WAVE_TXS_MIN, WORKERS_MAX,
};

/// The result of one transaction of a batch, in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxResult {
    /// Its seqno: the version its write set was applied at.
    pub seqno: Version,
    /// Its response, or why it aborted.
    pub outcome: Outcome,
    /// Its writes (empty if it aborted).
    pub write_set: WriteSet,
    /// SHA-256 of the write set's canonical encoding.
    pub write_set_digest: [u8; 32],
}

impl TxResult {
    fn new(seqno: Version, execution: Execution) -> Self {
        TxResult {
            seqno,
            outcome: execution.outcome,
            write_set: execution.write_set,
            write_set_digest: execution.write_set_digest,
        }
    }
}

/// Executes batches on N frontend workers. The rayon pool is built once, here, and
/// reused for every batch; with N = 1 there is no pool at all.
pub struct Dispatcher {
    workers: usize,
    pool: Option<rayon::ThreadPool>,
}

impl Dispatcher {
    /// A dispatcher with `workers` frontend workers, 1 ..= [`WORKERS_MAX`].
    pub fn new(workers: usize) -> Result<Self, DispatchError> {
        if workers == 0 || workers > WORKERS_MAX {
            return Err(DispatchError::Workers {
                workers,
                max: WORKERS_MAX,
            });
        }
        let pool = if workers == 1 {
            None
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .thread_name(|index| format!("stele-frontend-{index}"))
                .build()
                .map_err(|error| DispatchError::ThreadPool(error.to_string()))?;
            Some(pool)
        };
        Ok(Dispatcher { workers, pool })
    }

    /// The worker count N.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Executes `batch` at seqnos `store.version() + 1 ..`, applies every write set
    /// to `store` at its seqno, and returns the results in batch order. On error the
    /// store is unchanged.
    pub fn execute(
        &self,
        store: &mut Store,
        batch: &[Command],
    ) -> Result<Vec<TxResult>, DispatchError> {
        match &self.pool {
            None => execute_serial(store, batch),
            // Scheduling, the contention test and the apply run on the calling thread;
            // only the waves go to the pool. A contended batch then never wakes the
            // pool: idle rayon workers spin before they sleep, and on two cores that
            // spinning slowed the serial fallback by a quarter.
            Some(pool) => execute_parallel(pool, store, batch),
        }
    }
}

fn check_batch(batch: &[Command]) -> Result<(), DispatchError> {
    if batch.len() > BATCH_ENTRIES_MAX {
        return Err(DispatchError::BatchTooLarge {
            entries: batch.len(),
            max: BATCH_ENTRIES_MAX,
        });
    }
    Ok(())
}

/// The serial reference engine: each command runs against the store as left by the
/// previous one and is applied at once. What N = 1 runs; no scheduling, no pool.
pub fn execute_serial(
    store: &mut Store,
    batch: &[Command],
) -> Result<Vec<TxResult>, DispatchError> {
    check_batch(batch)?;
    run_serial(store, batch, &[])
}

/// The serial loop; `key_sets` holds the key sets of a prefix of the batch already
/// computed (possibly none), the others are computed as it goes.
fn run_serial(
    store: &mut Store,
    batch: &[Command],
    key_sets: &[KeySet],
) -> Result<Vec<TxResult>, DispatchError> {
    let start = store.version();
    let mut results = Vec::with_capacity(batch.len());
    for (position, command) in batch.iter().enumerate() {
        match serial_step(store, command, key_sets.get(position)) {
            Ok(result) => results.push(result),
            Err(error) => return Err(undo_batch(store, start, error)),
        }
    }
    Ok(results)
}

fn serial_step(
    store: &mut Store,
    command: &Command,
    key_set: Option<&KeySet>,
) -> Result<TxResult, DispatchError> {
    let execution = match key_set {
        Some(key_set) => command.execute_declared(&*store, key_set)?,
        None => command.execute(&*store)?,
    };
    let seqno = store.version() + 1;
    store.apply(seqno, &execution.write_set)?;
    Ok(TxResult::new(seqno, execution))
}

/// Rolls the store back to the batch's start, then hands back `error`.
fn undo_batch(store: &mut Store, start: Version, error: DispatchError) -> DispatchError {
    // `start` was the head when the batch began, so it is retained: this cannot fail.
    store
        .rollback(start)
        .expect("the batch's start version is retained");
    error
}

fn execute_parallel(
    pool: &rayon::ThreadPool,
    store: &mut Store,
    batch: &[Command],
) -> Result<Vec<TxResult>, DispatchError> {
    check_batch(batch)?;
    let mut key_sets = Vec::with_capacity(batch.len());
    let mut schedule = Schedule::default();
    for command in batch {
        let key_set = command.key_set();
        schedule.push(&key_set);
        key_sets.push(key_set);
        if is_too_contended(&schedule) {
            // Identical results either way; serial is cheaper here. The key sets
            // computed so far are reused.
            return run_serial(store, batch, &key_sets);
        }
    }
    let executions = run_waves(pool, store, batch, &key_sets, &schedule)?;

    let start = store.version();
    let mut results = Vec::with_capacity(batch.len());
    for (seqno, execution) in (start + 1..).zip(executions) {
        if let Err(error) = store.apply(seqno, &execution.write_set) {
            return Err(undo_batch(store, start, error.into()));
        }
        results.push(TxResult::new(seqno, execution));
    }
    Ok(results)
}

/// True once the waves average fewer than [`PARALLEL_MEAN_WAVE_TXS_MIN`]
/// transactions, allowing [`CONTENTION_SLACK_TXS`] of slack so that the first few
/// transactions of a batch do not decide alone.
fn is_too_contended(schedule: &Schedule) -> bool {
    schedule.waves().len() * PARALLEL_MEAN_WAVE_TXS_MIN > schedule.len() + CONTENTION_SLACK_TXS
}

/// Runs the waves in order over an overlay of the store; returns the executions in
/// batch order. The store itself is only read.
fn run_waves(
    pool: &rayon::ThreadPool,
    store: &Store,
    batch: &[Command],
    key_sets: &[KeySet],
    schedule: &Schedule,
) -> Result<Vec<Execution>, DispatchError> {
    let mut overlay = Overlay::new(store);
    let mut slots: Vec<Option<Execution>> = vec![None; batch.len()];
    let waves = schedule.waves();
    for (wave_index, wave) in waves.iter().enumerate() {
        let run =
            |&position: &usize| batch[position].execute_declared(&overlay, &key_sets[position]);
        let executions: Vec<Execution> = if wave.len() < PARALLEL_WAVE_TXS_MIN {
            wave.iter().map(run).collect::<Result<_, _>>()?
        } else {
            pool.install(|| wave.par_iter().map(run).collect::<Result<_, _>>())?
        };
        // Copy into the overlay only the writes a later wave declares (none, for the
        // last wave): the others are read by no one in this batch.
        let is_last = wave_index + 1 == waves.len();
        for (&position, execution) in wave.iter().zip(executions) {
            if !is_last {
                overlay.apply_where(&execution.write_set, |map, key| {
                    schedule.is_declared_after(map, key, wave_index)
                });
            }
            slots[position] = Some(execution);
        }
    }
    Ok(slots
        .into_iter()
        .map(|slot| slot.expect("the schedule places every transaction in exactly one wave"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_count_is_bounded() {
        assert!(matches!(
            Dispatcher::new(0),
            Err(DispatchError::Workers { .. })
        ));
        assert!(matches!(
            Dispatcher::new(WORKERS_MAX + 1),
            Err(DispatchError::Workers { .. })
        ));
        assert_eq!(Dispatcher::new(3).unwrap().workers(), 3);
    }

    #[test]
    fn an_empty_batch_changes_nothing() {
        let mut store = Store::new();
        for workers in [1, 2] {
            let results = Dispatcher::new(workers)
                .unwrap()
                .execute(&mut store, &[])
                .unwrap();
            assert!(results.is_empty());
            assert_eq!(store.version(), 0);
        }
    }
}
