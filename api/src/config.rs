//! [`ApiConfig`]: the bounds and credentials of the HTTP layer.

/// Default [`ApiConfig::body_bytes_max`]: the largest command the frontends accept.
pub const BODY_BYTES_MAX_DEFAULT: usize = stele_frontends::COMMAND_BYTES_MAX;

/// Default [`ApiConfig::requests_in_flight_max`]. Requests that wait for commit
/// hold their slot for a batch interval or two, so this is sized for thousands
/// of concurrent clients, not for CPU cores.
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 4096;

/// Default [`ApiConfig::request_timeout_ms`]: 30 seconds.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// The bounds and credentials of the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Largest request body, in bytes; larger ones get 413 `PayloadTooLarge`.
    pub body_bytes_max: usize,
    /// SHA-256 of each valid bearer token for `/app/*` (see
    /// [`crate::token_hash`]). Empty: every `/app/*` request gets 401.
    pub user_token_hashes: Vec<[u8; 32]>,
    /// Most requests served at once; beyond it requests get 503 `Busy` at once
    /// (load shedding) rather than queueing. 0 is taken as 1.
    pub requests_in_flight_max: usize,
    /// Longest a request may take, in milliseconds; then 503 `Timeout` (a
    /// submitted transaction may still commit: check `GET /node/tx`). It
    /// bounds `wait=true` submissions too, so keep it well above the commit
    /// latency.
    pub request_timeout_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            user_token_hashes: Vec::new(),
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
        }
    }
}
