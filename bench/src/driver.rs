//! Running one phase of a benchmark: every client on its own task and its own
//! connection, in a closed loop (send, wait, send again) or an open loop
//! (requests scheduled at fixed intervals, whatever the answers do).
//!
//! Open-loop latency is measured from each request's *scheduled* start, not
//! from when it was actually sent: a server that stalls delays every request
//! queued behind the stall, and timing from the send would hide that
//! (coordinated omission; the correction wrk2 makes). Scheduled requests that
//! could not start before the end of the phase are counted as `unsent`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

use super::target::{transport_failure, Connection, Request};
use super::workload::{Plan, Rng};

/// The largest latency the histograms hold, in microseconds; larger values
/// are recorded as this (requests time out well before).
pub const LATENCY_US_MAX: u64 = 600_000_000;
/// Significant decimal digits the histograms keep (0.1% resolution).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// How often the progress line is updated.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What a phase sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseKind {
    /// The workload's requests.
    Workload,
    /// `GET /node/commit` (etcd: a serializable range), always closed loop.
    Ceiling,
}

/// One phase: what, how long, and at which offered rate (none: closed loop).
#[derive(Debug, Clone)]
pub struct Phase {
    /// Workload or ceiling.
    pub kind: PhaseKind,
    /// Its name in the progress line.
    pub label: String,
    /// How long clients start requests.
    pub duration: Duration,
    /// Requests per second over all clients (open loop), or `None`.
    pub rate_per_s: Option<f64>,
}

/// What the clients of one phase counted, merged.
#[derive(Debug)]
pub struct Tally {
    /// Requests that got an answer or failed below HTTP.
    pub requests: u64,
    /// Successes: committed writes, served receipts, 200s of the ceiling.
    pub succeeded: u64,
    /// Failures by HTTP status (`"409"`, `"503"`) or transport failure
    /// (`"timeout"`, `"connect"`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Latencies of the successes, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Open loop: requests scheduled before the end that never started.
    pub unsent: u64,
    /// From the phase's start until its last answer.
    pub elapsed: Duration,
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        Ok(Tally {
            requests: 0,
            succeeded: 0,
            failures: BTreeMap::new(),
            latency_us: new_histogram()?,
            unsent: 0,
            elapsed: Duration::ZERO,
        })
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.succeeded += other.succeeded;
        for (key, count) in other.failures {
            *self.failures.entry(key).or_default() += count;
        }
        self.latency_us
            .add(&other.latency_us)
            .context("merging latency histograms")?;
        self.unsent += other.unsent;
        Ok(())
    }

    /// Failures of every kind.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .context("creating a latency histogram")
}

/// Counters the clients bump and the progress line reads.
#[derive(Debug, Default)]
struct Live {
    succeeded: AtomicU64,
    failed: AtomicU64,
}

/// One request on each connection to the trivial route, concurrently, so that
/// TCP and TLS handshakes are not timed. Failures are ignored here: the phases
/// count them.
pub async fn warm_up(connections: Vec<Connection>, plan: &Plan) -> anyhow::Result<Vec<Connection>> {
    let request = Arc::new(plan.ceiling_request());
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let request = Arc::clone(&request);
            tokio::spawn(async move {
                let _ = connection.send(&request).await;
                connection
            })
        })
        .collect();
    let mut connections = Vec::with_capacity(tasks.len());
    for task in tasks {
        connections.push(task.await.context("a warm-up task failed")?);
    }
    Ok(connections)
}

/// Runs `phase` with every connection as one client and returns the
/// connections (for the next phase: the same keep-alive connections, on the
/// node each ended on) and the merged tally.
pub async fn run_phase(
    connections: Vec<Connection>,
    plan: &Arc<Plan>,
    phase: &Phase,
    seed: u64,
) -> anyhow::Result<(Vec<Connection>, Tally)> {
    let clients = connections.len();
    let live = Arc::new(Live::default());
    let (stop_progress, stopped) = tokio::sync::oneshot::channel();
    let progress = tokio::spawn(report_progress(
        Arc::clone(&live),
        phase.label.clone(),
        phase.duration,
        stopped,
    ));
    let start = Instant::now();
    let deadline = start + phase.duration;
    let mut tasks = Vec::with_capacity(clients);
    for (client, connection) in connections.into_iter().enumerate() {
        let schedule = phase
            .rate_per_s
            .map(|rate| Schedule::new(rate, client, clients));
        let task = ClientTask {
            client,
            connection,
            plan: Arc::clone(plan),
            kind: phase.kind,
            live: Arc::clone(&live),
            rng: Rng::new(seed, client),
            start,
            deadline,
            schedule,
        };
        tasks.push(tokio::spawn(task.run()));
    }
    let mut connections = Vec::with_capacity(clients);
    let mut tally = Tally::new()?;
    for task in tasks {
        let (connection, client_tally) = task.await.context("a client task failed")?;
        connections.push(connection);
        tally.merge(client_tally?)?;
    }
    tally.elapsed = start.elapsed();
    // The progress task clears its bar and ends; it cannot fail.
    let _ = stop_progress.send(());
    let _ = progress.await;
    Ok((connections, tally))
}

/// Open loop: client `client` of `clients` sends at `start + offset + k *
/// interval`, interleaved with the others so that the whole offered load is
/// evenly spaced.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    offset: Duration,
    interval: Duration,
}

impl Schedule {
    fn new(rate_per_s: f64, client: usize, clients: usize) -> Schedule {
        let gap_s = 1.0 / rate_per_s;
        Schedule {
            offset: Duration::from_secs_f64(gap_s * client as f64),
            interval: Duration::from_secs_f64(gap_s * clients as f64),
        }
    }

    fn at(&self, start: Instant, sequence: u64) -> Instant {
        let sequence = u32::try_from(sequence).unwrap_or(u32::MAX);
        start + self.offset + self.interval.saturating_mul(sequence)
    }
}

/// One client of one phase.
struct ClientTask {
    client: usize,
    connection: Connection,
    plan: Arc<Plan>,
    kind: PhaseKind,
    live: Arc<Live>,
    rng: Rng,
    start: Instant,
    deadline: Instant,
    schedule: Option<Schedule>,
}

impl ClientTask {
    async fn run(mut self) -> (Connection, anyhow::Result<Tally>) {
        let result = self.drive().await;
        (self.connection, result)
    }

    async fn drive(&mut self) -> anyhow::Result<Tally> {
        let mut tally = Tally::new()?;
        let ceiling = self.plan.ceiling_request();
        let mut sequence: u64 = 0;
        loop {
            let now = Instant::now();
            let timed_from = match self.schedule {
                None => {
                    if now >= self.deadline {
                        break;
                    }
                    now
                }
                Some(schedule) => {
                    let scheduled = schedule.at(self.start, sequence);
                    if scheduled >= self.deadline {
                        break;
                    }
                    if now >= self.deadline {
                        // Behind schedule at the end: what could not start.
                        let behind = self.deadline.duration_since(scheduled).as_secs_f64();
                        // Slots at scheduled, scheduled + interval, ... before the deadline.
                        let slots = (behind / schedule.interval.as_secs_f64()).ceil().max(1.0);
                        tally.unsent += slots as u64;
                        break;
                    }
                    tokio::time::sleep_until(scheduled).await;
                    scheduled
                }
            };
            let workload_request;
            let request = match self.kind {
                PhaseKind::Workload => {
                    workload_request = self.plan.request(self.client, sequence, &mut self.rng);
                    &workload_request
                }
                PhaseKind::Ceiling => &ceiling,
            };
            sequence += 1;
            self.send_one(request, timed_from, &mut tally).await;
        }
        Ok(tally)
    }

    /// Sends one request and counts its outcome; latency from `timed_from`.
    async fn send_one(&mut self, request: &Request, timed_from: Instant, tally: &mut Tally) {
        let outcome = self.connection.send(request).await;
        let latency = timed_from.elapsed();
        tally.requests += 1;
        let failure = match outcome {
            Ok(reply) => {
                let succeeded = match self.kind {
                    PhaseKind::Workload => self.plan.succeeded(&reply),
                    PhaseKind::Ceiling => reply.status == reqwest::StatusCode::OK,
                };
                if succeeded {
                    None
                } else if reply.status == reqwest::StatusCode::OK {
                    Some("200-not-committed".to_owned())
                } else {
                    Some(reply.status.as_u16().to_string())
                }
            }
            Err(error) => Some(transport_failure(&error).to_owned()),
        };
        match failure {
            None => {
                tally.succeeded += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                tally.latency_us.saturating_record(micros.max(1));
                self.live.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Some(key) => {
                *tally.failures.entry(key).or_default() += 1;
                self.live.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Prints a progress line every second until `stop`: a bar on a terminal,
/// plain lines on stderr otherwise.
async fn report_progress(
    live: Arc<Live>,
    label: String,
    duration: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(duration.as_secs().max(1));
        if let Ok(style) = ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} s {msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(label.clone());
        bar
    });
    let started = Instant::now();
    let mut ticks = tokio::time::interval_at(started + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
    let mut succeeded_before = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => break,
        }
        let succeeded = live.succeeded.load(Ordering::Relaxed);
        let failed = live.failed.load(Ordering::Relaxed);
        let elapsed_s = started.elapsed().as_secs();
        let message = format!(
            "{succeeded} ok, {}/s in the last second, {failed} failed",
            succeeded - succeeded_before
        );
        succeeded_before = succeeded;
        match &bar {
            Some(bar) => {
                bar.set_position(elapsed_s);
                bar.set_message(message);
            }
            None => eprintln!("{label}: {elapsed_s} s, {message}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
