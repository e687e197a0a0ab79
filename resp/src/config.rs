//! [`RespConfig`]: what the RESP listener needs from the node's configuration.

use std::sync::Arc;

use crate::limits::{
    RESP_AUTH_TIMEOUT_MS, RESP_CONNECTIONS_MAX_DEFAULT, RESP_IDLE_TIMEOUT_MS_DEFAULT,
};

/// One user who may `AUTH`: a name (for `AUTH <user> <token>`) and the
/// SHA-256 of the token, the same `[[users]]` as HTTPS bearer tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespUser {
    /// The `[[users]] name`.
    pub name: String,
    /// SHA-256 of the user's token.
    pub token_sha256: [u8; 32],
}

/// The listener's settings.
#[derive(Clone)]
pub struct RespConfig {
    /// Who may `AUTH`.
    pub users: Arc<[RespUser]>,
    /// TLS (the node's certificate); `None` serves plain TCP, which
    /// [`crate::serve`] allows on loopback only.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Cap on open connections.
    pub connections_max: usize,
    /// A connection idle this long is closed.
    pub idle_timeout_ms: u64,
    /// A connection not authenticated this long after it opened is closed.
    pub auth_timeout_ms: u64,
    /// This node's id for `INFO` (the first 16 hex digits of its key).
    pub node_id: String,
}

impl std::fmt::Debug for RespConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RespConfig")
            .field("users", &self.users.len())
            .field("tls", &self.tls.is_some())
            .field("connections_max", &self.connections_max)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("auth_timeout_ms", &self.auth_timeout_ms)
            .finish()
    }
}

impl Default for RespConfig {
    fn default() -> Self {
        RespConfig {
            users: Arc::new([]),
            tls: None,
            connections_max: RESP_CONNECTIONS_MAX_DEFAULT,
            idle_timeout_ms: RESP_IDLE_TIMEOUT_MS_DEFAULT,
            auth_timeout_ms: RESP_AUTH_TIMEOUT_MS,
            node_id: String::new(),
        }
    }
}
