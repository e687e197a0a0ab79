//! `stele`: the node — configuration, command line and wiring.
//!
//! Modules:
//! - [`cli`]: the `stele` command line (clap derive); `main.rs` only parses and
//!   calls [`cli::run`].
//! - [`verify`]: `stele verify`, the offline ledger check (progress bar on a
//!   terminal, plain lines otherwise).
//!
//! The service itself (`stele start`) arrives with issue P4.

pub mod cli;
pub mod verify;
