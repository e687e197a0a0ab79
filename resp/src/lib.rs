//! `stele-resp`: Stele's RESP2 front door, so that `redis-cli`, `redis-benchmark`
//! and Redis client libraries work against the ledger. Like `stele-api` (HTTPS
//! JSON), it calls the node through the [`stele_api::Node`] contract; what a
//! command does to the state is the frontend's (`stele_frontends::redis`), so
//! replicas re-execute it like any transaction.
//!
//! The modules, in the order a request flows:
//!
//! - [`server`] — [`serve`]: the accept loop (plain TCP on loopback only, TLS
//!   with the node certificate otherwise; connections capped);
//!   [`serve_connection`]: one connection on any stream (tests, fuzzing).
//! - `connection` — one connection: RESP2 frames (decoded by `redis-protocol`)
//!   or inline lines in, replies out in request order; pipelining, buffers
//!   and timeouts.
//! - `request` — a frame's arguments parsed into a typed `Request` (arity,
//!   options, integers) before anything runs.
//! - `session` — the connection's state (AUTH, MULTI queue, WATCHed keys,
//!   last write) and what each request does: reads run against the committed
//!   state, writes and EXEC are submitted as one transaction each.
//! - `keyspace` — SCAN (a hash-ordered cursor), KEYS, DBSIZE over a frozen
//!   copy of the committed state.
//! - `reply` — replies written as RESP2.
//! - `info` — the text of INFO.
//! - [`limits`] — every bound, as named constants.
//! - [`config`] — [`RespConfig`]; [`error`] — [`RespError`].
//!
//! Invariants kept:
//!
//! - Before AUTH only AUTH, HELLO and QUIT run; everything else is `-NOAUTH`.
//! - Replies go out in request order. A request that reads runs after every
//!   earlier write of its connection is answered (a connection reads its own
//!   writes); a write is answered at its commit (durable, replicated).
//! - A MULTI..EXEC block is one transaction: all its commands or none (a
//!   failed WATCH check aborts it whole and EXEC answers nil).
//! - Every buffer is bounded: a request by [`limits::RESP_REQUEST_BYTES_MAX`],
//!   all connections' large requests together by
//!   [`limits::RESP_BUFFERED_BYTES_MAX`], replies waiting for commits by
//!   [`limits::RESP_PIPELINE_DEPTH_MAX`], connections by the cap. A refusal
//!   is a RESP error naming the limit; only an unparseable or over-long frame
//!   closes the connection (RESP cannot skip it).
//! - No `unwrap()` on a connection's path: a client cannot crash the node.

pub mod config;
mod connection;
pub mod error;
mod info;
mod keyspace;
pub mod limits;
mod reply;
mod request;
pub mod server;
mod session;

pub use config::{RespConfig, RespUser};
pub use error::RespError;
pub use server::{plain_allowed, serve, serve_connection};
