//! `stele-tests`: helpers for the end-to-end tests of the `stele` binary.
//!
//! The tests themselves are in `tests/e2e/` and are declared as `[[test]]` targets
//! of the root `stele` package, because only a package's own tests are told where
//! cargo built its binary (`CARGO_BIN_EXE_stele`). This crate will hold (issues P4
//! and P5) the helpers they share: starting real `stele` processes on 127.0.0.1,
//! talking to them over real HTTPS, killing them with SIGKILL, injecting
//! partitions.
