//! `stele-tests`: helpers for the end-to-end tests of the `stele` binary.
//!
//! The tests themselves are in `tests/e2e/` and are declared as `[[test]]` targets
//! of the root `stele` package, because only a package's own tests are told where
//! cargo built its binary (`CARGO_BIN_EXE_stele`). This crate holds what they share:
//!
//! - [`node`]: [`TestNode`], one real `stele start` process on `127.0.0.1:0` with its
//!   own data folder: start (waiting for its `listening on` line), SIGKILL, SIGTERM,
//!   restart on the same folder. Its stdout and stderr are drained on threads, and
//!   the tail of its log is printed if a test panics while it runs. Its Redis-protocol
//!   (RESP) listener is on `127.0.0.1:0` too ([`NodeConfig::resp_listen`], passed as
//!   `--resp-listen`); [`TestNode::resp_address`] is the address the node printed
//!   on its `resp listening on redis://<ip>:<port>` line (before `listening on`),
//!   new on every start.
//! - [`client`]: [`NodeClient`], a blocking HTTPS client that trusts the node's
//!   self-signed certificate and carries its bearer token, and [`Reply`], a response
//!   read whole, whose helpers panic with the method, path, status and body.
//! - [`cluster`]: [`cluster::Cluster`], N nodes laid out by `stele cluster-init`:
//!   the agreed leader, commits per node, partitions, `stele verify` of every ledger.
//! - [`bft`]: BFT-mode clusters: their options, writes that follow the
//!   proposer, `stele verify --validators` of every ledger.
//! - [`raw`]: one HTTP/1.1 exchange written by hand over TLS, for requests a
//!   normal client will not send (a `Content-Length` promising a body never sent).
//! - [`redis_server`]: [`RedisServer`], a throwaway `redis-server` on a free port
//!   (the oracle of the RESP differential test and the reference of the RESP
//!   benchmarks), and [`redis_server::require_tool`] for `redis-cli` and
//!   `redis-benchmark`; both fail the test with "run scripts/setup.sh" when
//!   Debian's `redis-server`/`redis-tools` are missing.
//! - [`tmpfs`]: a small tmpfs (root only; tests skip with the reason otherwise)
//!   and a filler file, for full-disk tests.
//! - [`run_cli`]: the binary's other subcommands (`stele verify`, `stele receipt
//!   verify`), as an operator or auditor runs them.
//!
//! Every wait here is bounded (a number of tries or a deadline) and fails the test
//! with what the node printed, so a broken node fails a test rather than hanging it.
//! Nothing here assumes a single node: a cluster test starts several [`TestNode`]s,
//! each with its own folder and extra arguments ([`NodeConfig::extra_args`]).

pub mod bft;
pub mod client;
pub mod cluster;
pub mod node;
pub mod raw;
pub mod redis_server;
pub mod tmpfs;

pub use client::{Auth, NodeClient, Reply};
pub use node::{NodeConfig, TestNode};
pub use redis_server::RedisServer;
pub use reqwest::Method;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `bin` with `args` to completion (no standard input) and returns its output.
pub fn run_cli(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {} {args:?}: {error}", bin.display()))
}

/// The output of a finished command as text, for failure messages.
pub fn describe_output(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
