//! `stele-api`: the wire types and HTTPS routes of Stele.
//!
//! No business logic lives here: handlers turn HTTP into typed calls on a
//! [`Node`] and typed results back into HTTP. The modules:
//!
//! - [`node`] — the contract with the node: the [`Node`] trait and the wire
//!   types both sides speak ([`TxStatus`], [`Submitted`], [`KvValue`], ...).
//! - [`config`] — [`ApiConfig`] (body size, bearer-token hashes, in-flight and
//!   time bounds) and its default constants.
//! - [`routes`] — [`router`] and [`ROUTES`], the table of every route; the
//!   handlers live in `routes/app.rs` (`/app/*`) and `routes/node.rs`
//!   (`/node/*`).
//! - [`extract`] — the body and query extractors, which report every rejection
//!   in the error envelope.
//! - [`error`] — [`HttpError`] (the `{"error":{"code","message"}}` envelope and
//!   the mapping of every error kind to a status and code, see [`codes`]) and
//!   [`ApiError`], this crate's own error type.
//! - [`auth`] — bearer tokens (users on `/app/*`, users and auditors on
//!   receipts), compared by SHA-256 in constant time.
//! - [`layers`] — the middleware: body-size precheck, load shedding, timeout,
//!   early refusals that read the body first, and the last-resort conversion
//!   of any non-JSON error into the envelope.
//! - [`limits`] — server-wide (every route): URI and header limits (414, 431
//!   in the envelope) and the body-read deadline (408).
//! - [`connections`] — below HTTP: the connection cap (with a file-descriptor
//!   reserve) and the idle timeout.
//! - `fake` — `FakeNode`, the in-memory twin of [`Node`] for front-door
//!   tests (feature `fake-node` only).
//! - [`metrics`] — HTTP request counters and latency histograms, `/metrics`.
//! - [`openapi`] — the hand-written OpenAPI 3.1 document at `/openapi.json`.
//! - [`server`] — [`serve`] / [`serve_listener`] / [`serve_listener_with`]:
//!   HTTPS only (rustls with the `ring` provider), bounded connections,
//!   graceful shutdown.
//! - [`tls`] — [`TlsFiles`] and [`ensure_self_signed`] (rcgen certificate on
//!   first start).
//!
//! Invariants kept:
//!
//! - Every 4xx/5xx response body is `{"error":{"code","message",...}}` with
//!   `Content-Type: application/json`, including the framework's own
//!   rejections (the [`layers`] safety net converts anything that slips by).
//!   Only what hyper refuses before any of our code runs has an empty body
//!   (see [`limits`]).
//! - Connections are bounded: at most the cap open (a file-descriptor reserve
//!   is never given to clients), none idle, none slow in its head or body.
//! - A request that is refused (bad body, bad query, no token, too large, shed)
//!   never reaches [`Node::submit`]: validation happens before the call.
//! - A body larger than [`ApiConfig::body_bytes_max`] is refused with 413
//!   before it is read (Content-Length), or as soon as the limit is crossed
//!   while streaming.
//! - Tokens are never logged or stored: only their SHA-256 is configured.
//! - Nothing in a request path panics; there is no `unwrap()` outside tests.
//! - The router serves exactly the routes of [`ROUTES`] (checked in debug
//!   builds), and [`ROUTES`] is exactly the set of operations of
//!   `/openapi.json` (checked by a test).

pub mod auth;
pub mod config;
pub mod connections;
pub mod error;
pub mod extract;
#[cfg(feature = "fake-node")]
pub mod fake;
pub mod layers;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod tls;

pub use auth::token_hash;
pub use config::ApiConfig;
pub use error::{codes, ApiError, HttpError};
pub use node::{
    KvValue, Node, NodeError, NodeState, PublicKeyInfo, Submitted, TxStatus, ValidatorInfo,
    ValidatorsInfo,
};
pub use routes::{router, ROUTES};
pub use server::{serve, serve_listener, serve_listener_with, SHUTDOWN_GRACE};
pub use tls::{ensure_self_signed, write_peer_certificate, TlsFiles};

/// The `prometheus-client` crate this API encodes metrics with: register the
/// node's metrics with this very version in the registry given to [`router`].
pub use prometheus_client;
