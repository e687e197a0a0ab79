//! [`ApiConfig`]: the bounds and credentials of the HTTP layer, and of the
//! server's connections.

/// Default [`ApiConfig::body_bytes_max`]: the largest command the frontends accept.
pub const BODY_BYTES_MAX_DEFAULT: usize = stele_frontends::COMMAND_BYTES_MAX;

/// Default [`ApiConfig::requests_in_flight_max`]. Requests that wait for commit
/// hold their slot for a batch interval or two, so this is sized for thousands
/// of concurrent clients, not for CPU cores.
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 4096;

/// Default [`ApiConfig::request_timeout_ms`]: 30 seconds.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Default [`ApiConfig::connections_max`]; the server lowers it to the
/// open-file limit minus a reserve (see [`crate::connections`]).
pub const CONNECTIONS_MAX_DEFAULT: usize = 8192;

/// Default [`ApiConfig::header_read_timeout_ms`]: 10 seconds.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Default [`ApiConfig::idle_timeout_ms`]: 60 seconds.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;

/// Default [`ApiConfig::body_read_timeout_ms`]: 30 seconds (a 1 MiB body at
/// 35 KiB/s; peer snapshot chunks too).
pub const BODY_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Default [`ApiConfig::uri_bytes_max`]: room for the longest key and map
/// name, percent-encoded three times over.
pub const URI_BYTES_MAX_DEFAULT: usize = 8192;

/// Default [`ApiConfig::headers_max`] (below hyper's own 100, see
/// [`crate::limits`]).
pub const HEADERS_MAX_DEFAULT: usize = 64;

/// Default [`ApiConfig::header_bytes_max`].
pub const HEADER_BYTES_MAX_DEFAULT: usize = 16 * 1024;

/// The bounds and credentials of the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Largest request body, in bytes; larger ones get 413 `PayloadTooLarge`.
    pub body_bytes_max: usize,
    /// SHA-256 of each valid bearer token for `/app/*` (see
    /// [`crate::token_hash`]). Empty: every `/app/*` request gets 401.
    pub user_token_hashes: Vec<[u8; 32]>,
    /// SHA-256 of each auditor's bearer token: an auditor reads receipts (as
    /// users do) but gets 403 on `/app/*`.
    pub auditor_token_hashes: Vec<[u8; 32]>,
    /// Most requests served at once; beyond it requests get 503 `Busy` at once
    /// (load shedding) rather than queueing. 0 is taken as 1.
    pub requests_in_flight_max: usize,
    /// Longest a request may take, in milliseconds; then 503 `Timeout` (a
    /// submitted transaction may still commit: check `GET /node/tx`). It
    /// bounds `wait=true` submissions too, so keep it well above the commit
    /// latency.
    pub request_timeout_ms: u64,
    /// Most connections open at once (all routes); beyond it new connections
    /// are closed at once. Lowered to the open-file limit minus a reserve.
    pub connections_max: usize,
    /// Longest time to receive a request head (and the TLS handshake), in
    /// milliseconds; then the connection is closed. hyper also runs this timer
    /// while an HTTP/1 connection waits for its next request.
    pub header_read_timeout_ms: u64,
    /// Longest a connection may stay without a byte either way and without a
    /// request in flight, in milliseconds (HTTP/1 and HTTP/2); then it is closed.
    pub idle_timeout_ms: u64,
    /// Longest time to receive a request's body (every route), in
    /// milliseconds; then 408 and the connection is closed.
    pub body_read_timeout_ms: u64,
    /// Longest request target (path and query), in bytes; 414 beyond.
    pub uri_bytes_max: usize,
    /// Most header fields in a request; 431 beyond.
    pub headers_max: usize,
    /// Most bytes of header names and values in a request; 431 beyond.
    pub header_bytes_max: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            user_token_hashes: Vec::new(),
            auditor_token_hashes: Vec::new(),
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            body_read_timeout_ms: BODY_READ_TIMEOUT_MS_DEFAULT,
            uri_bytes_max: URI_BYTES_MAX_DEFAULT,
            headers_max: HEADERS_MAX_DEFAULT,
            header_bytes_max: HEADER_BYTES_MAX_DEFAULT,
        }
    }
}
