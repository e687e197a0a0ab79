//! `stele-bench`: `stele bench`, the load generator. It drives a running node
//! or cluster over real HTTPS and reports committed transactions per second and
//! commit latency, each also as a ratio to the ceiling of the same server
//! measured in the same run. The `stele` binary parses [`BenchArgs`] as its
//! `bench` subcommand and calls [`run`]; nothing here is part of the node.
//!
//! Modules:
//! - [`target`]: the clients' keep-alive connections, TLS trust, the token,
//!   and following a 307 to the leader.
//! - [`workload`]: what each request is (`log`, `kv-put`, `smallbank`,
//!   `receipt`), the state a run needs first, and what counts as committed.
//! - [`driver`]: one phase: every client on its own task and connection, in a
//!   closed loop or an open loop with coordinated-omission correction; the
//!   progress line.
//! - [`report`]: the table and the JSON object.
//!
//! A run, in order: prepare (SmallBank accounts, or records whose receipts it
//! fetches) and one probe request that must succeed, so a wrong token or URL
//! fails at once; one request per connection to open it; the workload phase;
//! then the ceiling phase, the same connections hammering `GET /node/commit`
//! in a closed loop for as long. Everything is bounded: clients, duration,
//! rate, request timeout, setup size ([`CLIENTS_MAX`] and the others below).
//!
//! `--workload etcd-put` drives etcd instead (its JSON gateway over plain
//! HTTP, `--url http://host:2379`), with the same client, connections and
//! phases, so that `bench/etcd3.sh` compares the two like for like; its
//! ceiling is a serializable one-key range on the same gateway.
//!
//! Invariants kept:
//! - Every argument is checked against its limit before anything is sent, and
//!   a refusal names the argument.
//! - `--clients C` is exactly C keep-alive connections (plus one per client
//!   redirected to another node), each sending one request at a time.
//! - Open-loop latency is timed from each request's scheduled start, never
//!   from when it was sent; scheduled requests that never started are counted.
//! - The ceiling is measured in the same run, over the same connections and
//!   for as long as the workload, so every ratio compares like with like.
//! - stdout holds the report alone (the table, or one JSON object with
//!   `--json`); progress goes to stderr.
//! - Keys and ids come from a random run id: two runs against the same node
//!   neither collide nor rewrite each other's records.
//! - `--cpu-pid` samples the named processes and the client over the
//!   workload phase only, so CPU per operation divides like by like.
//! - The report's `stele_version` is this crate's version, which moves with
//!   the `stele` package's (the workspace's crates share one version, as
//!   `stele-resp`'s `INFO` assumes too).

pub mod cpu;
pub mod driver;
pub mod report;
pub mod target;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use self::driver::{run_phase, warm_up, Phase, PhaseKind};
use self::report::{PhaseReport, Ratios, Report, Settings};
use self::target::{parse_origin, Access};
use self::workload::{send_expecting_success, Plan, WorkloadKind};

/// Most concurrent clients (connections) of a run.
pub const CLIENTS_MAX: usize = 1024;
/// Longest phase, in seconds (a run has two).
pub const DURATION_S_MAX: u64 = 600;
/// Highest offered load of an open loop, requests per second.
pub const RATE_PER_S_MAX: f64 = 1_000_000.0;
/// Most SmallBank accounts a run creates (1,000 per request).
pub const ACCOUNTS_MAX: u64 = 1_000_000;
/// Most `--url`s.
pub const URLS_MAX: usize = 16;
/// Most threads of the client's runtime.
pub const THREADS_MAX: usize = 64;
/// Longest request timeout, in milliseconds.
pub const TIMEOUT_MS_MAX: u64 = 600_000;
/// The node's address when no `--url` is given (`stele start`'s default).
const URL_DEFAULT: &str = "https://127.0.0.1:8443";
/// etcd's client address when no `--url` is given (`etcd`'s default).
const ETCD_URL_DEFAULT: &str = "http://127.0.0.1:2379";
/// Longest `--label`.
pub const LABEL_BYTES_MAX: usize = 200;

/// Arguments of `stele bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to send: logging-app writes, one-put KV transactions, the SmallBank
    /// mix, or receipt fetches; or, for comparisons, puts to etcd's JSON
    /// gateway (`etcd-put`: `--url http://host:port`, no token).
    #[arg(long, value_enum, default_value_t = WorkloadKind::Log)]
    pub workload: WorkloadKind,
    /// A node, `https://host:port` (repeatable: clients are spread over them).
    /// A follower's 307 is followed to the leader, which the client then
    /// keeps [default: https://127.0.0.1:8443; etcd-put: http://127.0.0.1:2379].
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// A node's data folder: the default of --token-file
    /// (`<dir>/user.token`) and --cacert (`<dir>/tls/node.crt`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The file holding the bearer token of a user.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A PEM certificate to trust (repeatable: in a cluster every node has its
    /// own self-signed certificate).
    #[arg(long = "cacert", value_name = "PEM")]
    pub cacerts: Vec<PathBuf>,
    /// Trust any certificate (loopback benchmarks only).
    #[arg(long)]
    pub insecure: bool,
    /// Concurrent clients, each with one keep-alive connection (writes are
    /// group-committed: more clients in flight, more per fdatasync).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Length of each phase (the workload, then the ceiling), in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Length of the ceiling phase, if not `--duration-s` (a short one when
    /// the load only fills a ledger for a later measurement).
    #[arg(long, value_name = "S")]
    pub ceiling_s: Option<u64>,
    /// Open loop: requests per second over all clients, at fixed intervals,
    /// latency timed from each request's scheduled start. Without it, a closed
    /// loop: each client sends its next request when the last is answered.
    #[arg(long, value_name = "PER_S")]
    pub rate: Option<f64>,
    /// Bytes of each value (kv-put) or log message (log, receipt).
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
    /// SmallBank accounts: 100,000 is the uncontended mix, 100 the contended.
    #[arg(long, default_value_t = 100_000)]
    pub accounts: u64,
    /// Threads of the client's runtime (the client shares the machine with a
    /// node on loopback: keep it below the cores).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// How long one request may take, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Seed of the SmallBank mix and receipt choices [default: random].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// A process (a node) whose CPU is reported with this client's over the
    /// workload phase, per committed operation (repeatable; Linux `/proc`).
    #[arg(long = "cpu-pid", value_name = "PID")]
    pub cpu_pids: Vec<u32>,
    /// A free-form tag copied into the report (`settings.label`), e.g.
    /// `workers=2` or `stele`, for the scripts that group runs.
    #[arg(long)]
    pub label: Option<String>,
}

/// Runs the benchmark and prints its report.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    check_limits(args)?;
    let etcd = args.workload.is_etcd();
    let (default_url, scheme) = if etcd {
        (ETCD_URL_DEFAULT, "http")
    } else {
        (URL_DEFAULT, "https")
    };
    let urls = if args.urls.is_empty() {
        vec![default_url.to_owned()]
    } else {
        args.urls
            .iter()
            .map(|url| parse_origin(url, scheme))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    let access = if etcd {
        Access::plain(timeout)
    } else {
        stele_access(args, timeout)?
    };
    let run_id = random_u64()?;
    let seed = match args.seed {
        Some(seed) => seed,
        None => random_u64()?,
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .thread_name("stele-bench")
            .enable_all()
            .build()
    }
    .context("starting the client's async runtime")?;
    let report = runtime.block_on(measure(args, urls, access, run_id, seed))?;
    if args.json {
        let text = serde_json::to_string(&report).context("encoding the report")?;
        println!("{text}");
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// How a Stele run trusts the nodes and authenticates: the token and
/// certificates from the flags, or from `--data-dir`.
fn stele_access(args: &BenchArgs, timeout: Duration) -> anyhow::Result<Access> {
    let token_file = match (&args.token_file, &args.data_dir) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => dir.join("user.token"),
        (None, None) => bail!("no token: pass --token-file FILE or --data-dir DIR"),
    };
    let cacerts = match (&args.data_dir, args.cacerts.is_empty() && !args.insecure) {
        (Some(dir), true) => vec![dir.join("tls").join(stele_api::tls::CERT_FILE)],
        _ => args.cacerts.clone(),
    };
    Access::new(&cacerts, args.insecure, &token_file, timeout)
}

/// Refuses arguments outside the limits, naming the argument.
fn check_limits(args: &BenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.clients > CLIENTS_MAX {
        bail!("--clients must be 1..={CLIENTS_MAX}");
    }
    if args.duration_s == 0 || args.duration_s > DURATION_S_MAX {
        bail!("--duration-s must be 1..={DURATION_S_MAX}");
    }
    if args
        .ceiling_s
        .is_some_and(|ceiling_s| ceiling_s == 0 || ceiling_s > DURATION_S_MAX)
    {
        bail!("--ceiling-s must be 1..={DURATION_S_MAX}");
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0 && rate <= RATE_PER_S_MAX) {
            bail!("--rate must be above 0 and at most {RATE_PER_S_MAX}");
        }
    }
    if args.value_bytes > stele_frontends::VALUE_BYTES_MAX {
        bail!(
            "--value-bytes must be at most {}",
            stele_frontends::VALUE_BYTES_MAX
        );
    }
    if args.workload == WorkloadKind::Smallbank && !(2..=ACCOUNTS_MAX).contains(&args.accounts) {
        bail!("--accounts must be 2..={ACCOUNTS_MAX}");
    }
    if args.urls.len() > URLS_MAX {
        bail!("at most {URLS_MAX} --url");
    }
    if args.threads == 0 || args.threads > THREADS_MAX {
        bail!("--threads must be 1..={THREADS_MAX}");
    }
    if args.timeout_ms == 0 || args.timeout_ms > TIMEOUT_MS_MAX {
        bail!("--timeout-ms must be 1..={TIMEOUT_MS_MAX}");
    }
    if args
        .label
        .as_ref()
        .is_some_and(|label| label.len() > LABEL_BYTES_MAX)
    {
        bail!("--label must be at most {LABEL_BYTES_MAX} bytes");
    }
    Ok(())
}

/// The run itself, on the client's runtime.
async fn measure(
    args: &BenchArgs,
    urls: Vec<String>,
    access: Access,
    run_id: u64,
    seed: u64,
) -> anyhow::Result<Report> {
    let mut connections = (0..args.clients)
        .map(|client| access.connect(&urls[client % urls.len()]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut plan = Plan::new(args.workload, args.value_bytes, args.accounts, run_id);
    let first = connections
        .first_mut()
        .context("a run has at least one client")?;
    plan.prepare(first)
        .await
        .with_context(|| format!("preparing the {} workload", args.workload.name()))?;
    send_expecting_success(first, &plan.probe())
        .await
        .context("the probe request before the run (check --url, the token and the certificate)")?;
    let connections = warm_up(connections, &plan).await?;
    let plan = Arc::new(plan);
    let duration = Duration::from_secs(args.duration_s);
    let workload = Phase {
        kind: PhaseKind::Workload,
        label: args.workload.name().to_owned(),
        duration,
        rate_per_s: args.rate,
    };
    let cpu_start = if args.cpu_pids.is_empty() {
        None
    } else {
        Some(cpu::CpuSample::take(&args.cpu_pids)?)
    };
    let (connections, result) = run_phase(connections, &plan, &workload, seed).await?;
    let cpu = match cpu_start {
        Some(start) => {
            let end = cpu::CpuSample::take(&args.cpu_pids)?;
            Some(start.report(&end, result.succeeded))
        }
        None => None,
    };
    let ceiling_phase = Phase {
        kind: PhaseKind::Ceiling,
        label: "ceiling".to_owned(),
        duration: args.ceiling_s.map_or(duration, Duration::from_secs),
        rate_per_s: None,
    };
    let (connections, ceiling) = run_phase(connections, &plan, &ceiling_phase, seed).await?;
    let mut final_urls: Vec<String> = connections
        .iter()
        .map(|connection| connection.base().to_owned())
        .collect();
    final_urls.sort_unstable();
    final_urls.dedup();
    let result = PhaseReport::new(args.workload.route(), &result);
    let ceiling = PhaseReport::new(&args.workload.ceiling_route(), &ceiling);
    let ratio = Ratios::new(&result, &ceiling);
    Ok(Report {
        stele_version: env!("CARGO_PKG_VERSION"),
        settings: Settings {
            workload: args.workload.name().to_owned(),
            target: if args.workload.is_etcd() {
                "etcd"
            } else {
                "stele"
            },
            label: args.label.clone(),
            urls,
            final_urls,
            clients: args.clients,
            threads: args.threads,
            duration_s: args.duration_s,
            loop_kind: if args.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            rate_per_s: args.rate,
            value_bytes: args.value_bytes,
            accounts: (args.workload == WorkloadKind::Smallbank).then_some(args.accounts),
            leader_redirects: connections.iter().map(|c| c.redirects()).sum(),
            seed,
        },
        result,
        ceiling,
        ratio,
        cpu,
    })
}

/// 64 bits from the operating system's generator.
fn random_u64() -> anyhow::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(u64::from_le_bytes(bytes))
}
