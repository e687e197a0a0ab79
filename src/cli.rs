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
    /// Print the build's version.
    Version,
    /// Verify a ledger folder offline: every frame, write-set digest, leaf, Merkle
    /// root and checkpoint signature. Exits 0 with a summary, or non-zero naming
    /// the file, byte offset and seqno of the first thing that does not match.
    Verify(crate::verify::VerifyArgs),
}

/// Runs one parsed command line; the process exit code is its result.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("stele {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Verify(args) => crate::verify::run(&args),
    }
}
