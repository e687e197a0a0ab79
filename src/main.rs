//! The `stele` binary: parse the command line, then hand over to the library.

use clap::Parser;

/// mimalloc rather than glibc malloc: on batch-sized allocation churn glibc's main
/// arena trims and regrows the heap, which measured 2-4x slower execution on the
/// main thread (see the dispatcher benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = stele::cli::Cli::parse();
    match stele::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
