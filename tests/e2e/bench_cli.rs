//! End-to-end tests (`stele bench`): the load generator against one real node,
//! as a user runs it, with `--json` read as a script would. No assertion is
//! made about speed: only that the run committed and its figures are sane.
//!
//! - t10: a logging run and its ceiling, closed loop.
//! - t20: a SmallBank run in an open loop (accounts created first).
//! - t30: a wrong token fails at once, naming the node's answer.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use stele_tests::{describe_output, run_cli, TestNode};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// Runs `stele bench` against `node` for one second per phase with `extra`
/// arguments and returns its JSON report.
fn bench(node: &TestNode, extra: &[&str]) -> Value {
    let url = node.base_url().to_owned();
    let data_dir = node.data_dir().to_str().unwrap().to_owned();
    let mut args = vec![
        "bench",
        "--url",
        &url,
        "--data-dir",
        &data_dir,
        "--duration-s",
        "1",
        "--clients",
        "4",
        "--json",
    ];
    args.extend_from_slice(extra);
    let output = run_cli(Path::new(BIN), &args);
    assert!(
        output.status.success(),
        "stele bench failed: {}",
        describe_output(&output)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let mut lines = stdout.lines();
    let report: Value = serde_json::from_str(lines.next().unwrap_or_default())
        .unwrap_or_else(|error| panic!("stdout is not one JSON object ({error}): {stdout}"));
    assert_eq!(lines.next(), None, "more than one line on stdout: {stdout}");
    report
}

/// Checks the fields every phase report has, and returns its committed count.
fn check_phase(phase: &Value, route: &str) -> u64 {
    assert_eq!(phase["route"], route, "{phase}");
    let requests = phase["requests"].as_u64().unwrap();
    let committed = phase["committed"].as_u64().unwrap();
    let failed = phase["failed"].as_u64().unwrap();
    assert!(committed > 0, "nothing committed: {phase}");
    assert_eq!(committed + failed, requests, "{phase}");
    let errors: u64 = phase["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_u64().unwrap())
        .sum();
    assert_eq!(errors, failed, "errors by status must add up: {phase}");
    let elapsed_s = phase["elapsed_s"].as_f64().unwrap();
    assert!(elapsed_s > 0.0, "{phase}");
    let per_s = phase["committed_per_s"].as_f64().unwrap();
    assert!(
        (per_s - committed as f64 / elapsed_s).abs() < 1e-6 * per_s.max(1.0),
        "{phase}"
    );
    let latency = &phase["latency_ms"];
    let quantiles: Vec<f64> = ["p50", "p90", "p99", "p99_9", "max"]
        .iter()
        .map(|name| latency[*name].as_f64().unwrap())
        .collect();
    assert!(quantiles[0] > 0.0, "{phase}");
    assert!(
        quantiles.windows(2).all(|pair| pair[0] <= pair[1]),
        "percentiles must not decrease: {phase}"
    );
    committed
}

#[test]
fn t10_a_logging_run_commits_and_reports_against_its_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(Path::new(BIN), dir.path());
    let report = bench(&node, &["--workload", "log"]);

    let settings = &report["settings"];
    assert_eq!(settings["workload"], "log", "{report}");
    assert_eq!(settings["clients"], 4, "{report}");
    assert_eq!(settings["loop_kind"], "closed", "{report}");
    assert_eq!(settings["final_urls"][0], node.base_url(), "{report}");
    let committed = check_phase(&report["result"], "POST /app/log");
    check_phase(&report["ceiling"], "GET /node/commit");
    let ratio = report["ratio"]["throughput"].as_f64().unwrap();
    assert!(ratio > 0.0, "{report}");

    // The records are really there: the node's commit moved at least as far.
    let commit = node.get("/node/commit").expect_json(200);
    let seqno: u64 = commit["transaction_id"]
        .as_str()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        seqno >= committed,
        "{committed} committed, commit at {commit}"
    );
}

#[test]
fn t20_a_smallbank_open_loop_run_commits() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(Path::new(BIN), dir.path());
    let report = bench(
        &node,
        &[
            "--workload",
            "smallbank",
            "--accounts",
            "100",
            "--rate",
            "200",
        ],
    );
    assert_eq!(report["settings"]["loop_kind"], "open", "{report}");
    assert_eq!(report["settings"]["accounts"], 100, "{report}");
    check_phase(&report["result"], "POST /app/smallbank/{op}");
    check_phase(&report["ceiling"], "GET /node/commit");
    // At 200/s for 1 s, no more than the offered load was sent.
    let requests = report["result"]["requests"].as_u64().unwrap();
    let unsent = report["result"]["unsent"].as_u64().unwrap();
    assert!(requests + unsent <= 200, "{report}");
}

#[test]
fn t30_a_wrong_token_fails_at_once_naming_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(Path::new(BIN), dir.path());
    let token = dir.path().join("wrong.token");
    std::fs::write(&token, "0".repeat(64)).unwrap();
    let output = run_cli(
        Path::new(BIN),
        &[
            "bench",
            "--url",
            node.base_url(),
            "--cacert",
            dir.path().join("tls/node.crt").to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
            "--duration-s",
            "1",
        ],
    );
    assert!(!output.status.success(), "{}", describe_output(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("probe") && stderr.contains("401"),
        "{}",
        describe_output(&output)
    );
}

#[test]
fn t40_a_ceiling_phase_of_no_seconds_is_refused_before_any_request() {
    let output = run_cli(
        Path::new(BIN),
        &[
            "bench",
            "--url",
            "https://127.0.0.1:9",
            "--insecure",
            "--duration-s",
            "1",
            "--ceiling-s",
            "0",
        ],
    );
    assert!(!output.status.success(), "{}", describe_output(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--ceiling-s must be"),
        "{}",
        describe_output(&output)
    );
}
