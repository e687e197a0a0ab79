//! The results of a run: one [`Report`], printed as a table for people or as
//! one JSON object for scripts, with every workload figure also given as a
//! ratio to the ceiling measured in the same run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::driver::Tally;

/// Latency percentiles of the successes, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// What one phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// The route(s) it drove.
    pub route: String,
    /// Requests answered or failed.
    pub requests: u64,
    /// Committed writes (200 and `Committed`), served receipts, or for the
    /// ceiling its 200s.
    pub committed: u64,
    /// Everything else.
    pub failed: u64,
    /// Failures by HTTP status or transport failure.
    pub errors: BTreeMap<String, u64>,
    /// Open loop: scheduled requests that could not start before the end.
    pub unsent: u64,
    /// From the start of the phase to its last answer.
    pub elapsed_s: f64,
    /// `committed / elapsed_s`.
    pub committed_per_s: f64,
    /// Latency of the successes: until the answer, which for writes is sent
    /// once the transaction is committed (durable).
    pub latency_ms: Latency,
}

impl PhaseReport {
    /// The report of a tally.
    pub fn new(route: &str, tally: &Tally) -> PhaseReport {
        let elapsed_s = tally.elapsed.as_secs_f64();
        let histogram = &tally.latency_us;
        let at = |quantile: f64| micros_to_ms(histogram.value_at_quantile(quantile) as f64);
        PhaseReport {
            route: route.to_owned(),
            requests: tally.requests,
            committed: tally.succeeded,
            failed: tally.failed(),
            errors: tally.failures.clone(),
            unsent: tally.unsent,
            elapsed_s,
            committed_per_s: if elapsed_s > 0.0 {
                tally.succeeded as f64 / elapsed_s
            } else {
                0.0
            },
            latency_ms: Latency {
                p50: at(0.50),
                p90: at(0.90),
                p99: at(0.99),
                p99_9: at(0.999),
                max: micros_to_ms(histogram.max() as f64),
                mean: micros_to_ms(histogram.mean()),
            },
        }
    }
}

/// Microseconds to milliseconds, kept to the microsecond.
fn micros_to_ms(micros: f64) -> f64 {
    micros.round() / 1000.0
}

/// The workload's figures over the ceiling's: throughput as a fraction of the
/// ceiling's, latencies as multiples of the ceiling's. `None` where the
/// ceiling's figure is zero.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ratios {
    /// Committed/s over the ceiling's requests/s.
    pub throughput: Option<f64>,
    /// p50 over the ceiling's p50.
    pub p50: Option<f64>,
    /// p90 over the ceiling's p90.
    pub p90: Option<f64>,
    /// p99 over the ceiling's p99.
    pub p99: Option<f64>,
    /// p99.9 over the ceiling's p99.9.
    pub p99_9: Option<f64>,
}

impl Ratios {
    /// `result` against `ceiling`.
    pub fn new(result: &PhaseReport, ceiling: &PhaseReport) -> Ratios {
        let ratio = |numerator: f64, denominator: f64| {
            (denominator > 0.0).then(|| (numerator / denominator * 1000.0).round() / 1000.0)
        };
        let (run, top) = (&result.latency_ms, &ceiling.latency_ms);
        Ratios {
            throughput: ratio(result.committed_per_s, ceiling.committed_per_s),
            p50: ratio(run.p50, top.p50),
            p90: ratio(run.p90, top.p90),
            p99: ratio(run.p99, top.p99),
            p99_9: ratio(run.p99_9, top.p99_9),
        }
    }
}

/// The parameters of a run, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The workload's name.
    pub workload: String,
    /// `stele`, or `etcd` for `etcd-put`.
    pub target: &'static str,
    /// `--label`, as given.
    pub label: Option<String>,
    /// The nodes the clients started on.
    pub urls: Vec<String>,
    /// Where the clients ended (the leader, after redirects).
    pub final_urls: Vec<String>,
    /// Concurrent clients, one keep-alive connection each.
    pub clients: usize,
    /// Threads of the client's runtime.
    pub threads: usize,
    /// Length of each phase.
    pub duration_s: u64,
    /// `closed` or `open`.
    pub loop_kind: &'static str,
    /// The offered load of an open loop.
    pub rate_per_s: Option<f64>,
    /// Bytes of each written value or log message.
    pub value_bytes: usize,
    /// SmallBank accounts (smallbank only).
    pub accounts: Option<u64>,
    /// 307s to the leader the clients followed.
    pub leader_redirects: u64,
    /// The seed of the SmallBank mix and receipt choices (`--seed` repeats it).
    pub seed: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The version of `stele` that measured.
    pub stele_version: &'static str,
    /// What was run.
    pub settings: Settings,
    /// The workload phase.
    pub result: PhaseReport,
    /// The ceiling phase: the same clients on `GET /node/commit` (etcd: a
    /// serializable one-key range), closed loop.
    pub ceiling: PhaseReport,
    /// `result` against `ceiling`.
    pub ratio: Ratios,
    /// With `--cpu-pid`: the CPU of those processes and the client over the
    /// workload phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<crate::cpu::CpuReport>,
}

impl Report {
    /// The table people read.
    pub fn to_text(&self) -> String {
        let settings = &self.settings;
        let mut text = String::new();
        let load = match settings.rate_per_s {
            Some(rate) => format!("open loop at {rate} requests/s"),
            None => "closed loop".to_owned(),
        };
        let _ = writeln!(
            text,
            "stele bench: {}, {} clients ({load}), {} thread(s), {} s per phase, {}",
            settings.workload,
            settings.clients,
            settings.threads,
            settings.duration_s,
            settings.final_urls.join(" ")
        );
        let _ = writeln!(
            text,
            "  {:<36} {:>12} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "", "committed/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "failed"
        );
        for (name, phase) in [
            (
                format!("{} ({})", settings.workload, self.result.route),
                &self.result,
            ),
            (format!("ceiling ({})", self.ceiling.route), &self.ceiling),
        ] {
            let latency = &phase.latency_ms;
            let _ = writeln!(
                text,
                "  {name:<36} {:>12.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                phase.committed_per_s,
                latency.p50,
                latency.p90,
                latency.p99,
                latency.p99_9,
                phase.failed
            );
        }
        let show =
            |ratio: Option<f64>| ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        let ratio = &self.ratio;
        let _ = writeln!(
            text,
            "  {:<36} {:>12} {:>9} {:>9} {:>9} {:>9}",
            "ratio to the ceiling",
            show(ratio.throughput),
            show(ratio.p50),
            show(ratio.p90),
            show(ratio.p99),
            show(ratio.p99_9)
        );
        for (name, phase) in [("workload", &self.result), ("ceiling", &self.ceiling)] {
            if !phase.errors.is_empty() {
                let errors: Vec<String> = phase
                    .errors
                    .iter()
                    .map(|(key, count)| format!("{key}: {count}"))
                    .collect();
                let _ = writeln!(text, "  {name} failures: {}", errors.join(", "));
            }
            if phase.unsent > 0 {
                let _ = writeln!(
                    text,
                    "  {name}: {} scheduled requests could not start in time (offered load above capacity)",
                    phase.unsent
                );
            }
        }
        let _ = writeln!(
            text,
            "  {} committed of {} requests in {:.2} s; ceiling {} of {} in {:.2} s; {} redirects to the leader",
            self.result.committed,
            self.result.requests,
            self.result.elapsed_s,
            self.ceiling.committed,
            self.ceiling.requests,
            self.ceiling.elapsed_s,
            settings.leader_redirects
        );
        if let Some(cpu) = &self.cpu {
            let processes: Vec<String> = cpu
                .processes
                .iter()
                .map(|process| format!("{} {} {:.2}", process.name, process.pid, process.cores))
                .collect();
            let _ = writeln!(
                text,
                "  cpu over the workload: {:.1} us per committed operation ({:.1} us in the watched processes); cores: {}, client {:.2}",
                cpu.total_us_per_op,
                cpu.nodes_us_per_op,
                processes.join(", "),
                cpu.client_cores
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn phase(per_s: f64, p50: f64) -> PhaseReport {
        PhaseReport {
            route: "GET /x".to_owned(),
            requests: 10,
            committed: 10,
            failed: 0,
            errors: BTreeMap::new(),
            unsent: 0,
            elapsed_s: 1.0,
            committed_per_s: per_s,
            latency_ms: Latency {
                p50,
                p90: p50,
                p99: p50,
                p99_9: p50,
                max: p50,
                mean: p50,
            },
        }
    }

    #[test]
    fn ratios_are_against_the_ceiling_and_absent_over_zero() {
        let ratios = Ratios::new(&phase(600.0, 2.0), &phase(1000.0, 0.5));
        assert_eq!(ratios.throughput, Some(0.6));
        assert_eq!(ratios.p50, Some(4.0));
        let none = Ratios::new(&phase(600.0, 2.0), &phase(0.0, 0.0));
        assert_eq!(none.throughput, None);
        assert_eq!(none.p99, None);
    }
}
