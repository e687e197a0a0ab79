//! Project tasks that are not part of Stele itself (`cargo run -p xtask -- ...`).
//!
//! `criterion-report`: reads the criterion baselines saved by several runs of
//! a benchmark (`--save-baseline run1`, `run2`, ...) and prints, for each
//! benchmark, the median over runs of its median time, and for each requested
//! pair the ratio of their rates computed within each run (so machine noise
//! between runs cancels), then the median of those ratios.
//!
//! `plots`: the PNGs and median tables of `bench/results/*.json` (see
//! [`plots`]); `bench/all.sh` regenerates the results and then runs it.

mod plots;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Median-of-runs figures and same-run ratios from criterion baselines.
    CriterionReport {
        /// Criterion's output folder.
        #[arg(long, default_value = "target/criterion")]
        criterion_dir: PathBuf,
        /// The baselines, one per run, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        baselines: Vec<String>,
        /// `label=subject:ceiling`: the rate of `subject` over the rate of
        /// `ceiling` (benchmark paths relative to the criterion folder).
        #[arg(long = "ratio")]
        ratios: Vec<String>,
    },
    /// PNG plots and Markdown median tables from `bench/results/*.json`.
    Plots {
        /// Where the JSON results are.
        #[arg(long, default_value = "bench/results")]
        results: PathBuf,
        /// Where the PNGs and `summary.md` go.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::CriterionReport {
            criterion_dir,
            baselines,
            ratios,
        } => criterion_report(&criterion_dir, &baselines, &ratios),
        Task::Plots { results, out } => plots::plots(&results, &out),
    }
}

/// Median time per iteration (ns) of `bench` in `baseline`.
fn median_ns(dir: &Path, bench: &str, baseline: &str) -> Result<f64> {
    let path = dir.join(bench).join(baseline).join("estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    json["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no median in {path:?}"))
}

/// Elements per iteration, if the benchmark declared a throughput.
fn elements(dir: &Path, bench: &str, baseline: &str) -> Option<f64> {
    let path = dir.join(bench).join(baseline).join("benchmark.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["throughput"]["Elements"].as_f64()
}

/// Every benchmark folder (relative path) holding `baseline`.
fn benchmarks(dir: &Path, baseline: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "report") {
                if path.file_name().is_some_and(|n| n == baseline) {
                    if let Ok(relative) = folder.strip_prefix(dir) {
                        found.push(relative.to_string_lossy().into_owned());
                    }
                } else {
                    stack.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn human_time(ns: f64) -> String {
    match ns {
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} us", ns / 1e3),
        ns => format!("{ns:.0} ns"),
    }
}

fn criterion_report(dir: &Path, baselines: &[String], ratios: &[String]) -> Result<()> {
    let benches = benchmarks(dir, &baselines[0]);
    if benches.is_empty() {
        bail!("no benchmark in {dir:?} has the baseline {}", baselines[0]);
    }
    println!("runs: {}", baselines.join(", "));
    println!(
        "{:<55} {:>12} {:>16}",
        "benchmark", "median time", "median rate"
    );
    for bench in &benches {
        let times: Vec<f64> = baselines
            .iter()
            .map(|b| median_ns(dir, bench, b))
            .collect::<Result<_>>()?;
        let time = median(times);
        let rate = elements(dir, bench, &baselines[0])
            .map(|e| format!("{:.3} M/s", e / time * 1e3))
            .unwrap_or_default();
        println!("{bench:<55} {:>12} {rate:>16}", human_time(time));
    }
    for spec in ratios {
        let (label, pair) = spec
            .split_once('=')
            .context("--ratio is label=subject:ceiling")?;
        let (subject, ceiling) = pair
            .split_once(':')
            .context("--ratio is label=subject:ceiling")?;
        let per_run: Vec<f64> = baselines
            .iter()
            .map(|b| Ok(median_ns(dir, ceiling, b)? / median_ns(dir, subject, b)?))
            .collect::<Result<_>>()?;
        let shown: Vec<String> = per_run.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "ratio {label}: {:.2}x (runs: {})",
            median(per_run.clone()),
            shown.join(", ")
        );
    }
    Ok(())
}
