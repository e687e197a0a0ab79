//! `stele`: the node — configuration, command line and wiring.
//!
//! Modules:
//! - [`cli`]: the `stele` command line (clap derive); `main.rs` only parses and
//!   calls [`cli::run`].
//!
//! The service itself (`stele start`) arrives with issue P4; the offline
//! ledger verifier (`stele verify`) with issue P3.

pub mod cli;
