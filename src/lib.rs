//! `stele`: the node — configuration, command line and wiring. `stele bench`,
//! the load generator, is its own crate (`stele-bench`, in `bench/`): the
//! command line below only parses its arguments and calls it.
//!
//! Modules:
//! - [`cli`]: the `stele` command line (clap derive); `main.rs` only parses and
//!   calls [`cli::run`].
//! - [`start`]: `stele start`, the node: data folder, engine, HTTPS, signals;
//!   it serves the peer routes (Raft RPCs between nodes) of
//!   `stele_consensus::raft::network::router` beside the client API.
//! - [`config`]: the TOML configuration and its validation.
//! - [`datadir`]: the data folder (identity, token, TLS, ledger), created on
//!   first start.
//! - [`node`]: the engine behind the HTTP layer's `Node` contract; metrics.
//! - [`verify`]: `stele verify`, the offline ledger check (progress bar on a
//!   terminal, plain lines otherwise).
//! - [`admin`]: the operator's routes (`[admin]`): partition injection.
//! - [`cluster_init`]: `stele cluster-init`, the files of an N-node cluster.
//! - [`receipt`]: `stele receipt verify`, the offline receipt check.

pub mod admin;
pub mod cli;
pub mod cluster_init;
pub mod config;
pub mod datadir;
pub mod node;
pub mod receipt;
pub mod start;
pub mod verify;
