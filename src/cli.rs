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
    /// Print the build's version and the crates it is made of.
    Version,
}

/// Runs one parsed command line; the process exit code is its result.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("stele {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
