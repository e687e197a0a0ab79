//! [`RespError`]: why the RESP front door could not start or serve.

use std::net::SocketAddr;

/// What can go wrong starting or running the RESP listener (per-connection
/// problems are answered on the connection and logged, never returned).
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The listen address could not be bound. Fatal: fix the configuration.
    #[error("cannot listen for RESP on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A plain-TCP listener on an address other than loopback. Fatal: RESP
    /// carries tokens, so it needs TLS off loopback.
    #[error("RESP on {addr} needs TLS: plain TCP is allowed on loopback addresses only")]
    PlainOffLoopback {
        /// The address.
        addr: SocketAddr,
    },
    /// Accepting a connection failed (e.g. out of file descriptors).
    /// Retryable: the server keeps accepting after a pause.
    #[error("accepting a RESP connection: {0}")]
    Accept(std::io::Error),
}

impl RespError {
    /// True if retrying (later) can succeed without a change of configuration.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RespError::Accept(_))
    }
}
