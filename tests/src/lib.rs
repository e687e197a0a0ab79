//! `stele-tests`: end-to-end tests of the `stele` binary.
//!
//! Will hold (issues P4 and P5): helpers that start real `stele` processes on
//! 127.0.0.1, talk to them over real HTTPS, kill them with SIGKILL and inject
//! partitions; the tests themselves live in `tests/tests/`.
