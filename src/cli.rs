//! The `stele` command line.

use clap::{Parser, Subcommand};

/// Stele: a verifiable transactional ledger.
#[derive(Debug, Parser)]
#[command(name = "stele", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `stele`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: HTTPS JSON API on 127.0.0.1:8443, data in ./stele-data, a
    /// self-signed certificate and a user token created on first start.
    Start(crate::start::StartArgs),
    /// Lay out an N-node cluster on one host: `node<i>/` data folders sharing
    /// one service identity and user token, and `node<i>.toml` for
    /// `stele start --config`.
    ClusterInit(crate::cluster_init::ClusterInitArgs),
    /// Print the build's version.
    Version,
    /// Verify a ledger folder offline: every frame, write-set digest, leaf, Merkle
    /// root and checkpoint signature. Exits 0 with a summary, or non-zero naming
    /// the file, byte offset and seqno of the first thing that does not match.
    Verify(crate::verify::VerifyArgs),
    /// Receipts: `stele receipt verify <receipt.json> --key <public key>`
    /// (or, in BFT mode, `--validators <validators.json>`).
    #[command(subcommand)]
    Receipt(ReceiptCommand),
    /// Load a running node or cluster over HTTPS: committed tx/s and commit
    /// latency (p50/p90/p99/p99.9) of a workload, then the same clients on
    /// `GET /node/commit` (the ceiling), and every figure as a ratio to it.
    Bench(stele_bench::BenchArgs),
}

/// `stele receipt ...`.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Verify a receipt offline: its leaf, inclusion proof, root and the
    /// checkpoint signature (in BFT mode, the validators' certificate). Exits
    /// non-zero naming what failed.
    Verify(crate::receipt::ReceiptVerifyArgs),
}

/// Runs one parsed command line; the process exit code is its result.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("stele {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Start(args) => crate::start::run(&args),
        Command::ClusterInit(args) => crate::cluster_init::run(&args),
        Command::Verify(args) => crate::verify::run(&args),
        Command::Receipt(ReceiptCommand::Verify(args)) => crate::receipt::run(&args),
        Command::Bench(args) => stele_bench::run(&args),
    }
}
