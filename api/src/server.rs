//! [`serve`] and [`serve_listener`]: the router over HTTPS (never plain HTTP),
//! until a shutdown future completes, then a graceful shutdown.
//!
//! Every connection is bounded ([`serve_listener_with`]): a cap on open
//! connections and an idle timeout ([`crate::connections`]), a timeout on the
//! TLS handshake and on each request head (hyper's, with a timer), a timeout on
//! each request body and limits on the URI and headers ([`crate::limits`]) on
//! every route of the router given, peer and admin routes included.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::Router;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use hyper_util::rt::TokioTimer;

use crate::config::ApiConfig;
use crate::connections::{connection_cap, raise_fd_limit, LimitedAcceptor};
use crate::error::ApiError;
use crate::limits::{RequestLimits, HYPER_HEADERS_MAX};
use crate::tls::{server_config, TlsFiles};

/// How long connections may take to finish their requests once shutdown
/// begins; then they are closed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// HTTP/2's header-list limit over ours: hyper counts 32 bytes more per field,
/// and our limits must refuse first (with the envelope).
const H2_HEADER_FIELD_OVERHEAD_BYTES: usize = 32;

/// Serves `router` over HTTPS on `addr` until `shutdown` completes, then
/// stops accepting, lets requests in flight finish (at most
/// [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    tls: TlsFiles,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    let listener = TcpListener::bind(addr).map_err(|source| ApiError::Bind { addr, source })?;
    serve_listener(router, listener, tls, shutdown).await
}

/// [`serve`] on a listener already bound (e.g. to `127.0.0.1:0` in tests),
/// with the default connection bounds.
pub async fn serve_listener(
    router: Router,
    listener: TcpListener,
    tls: TlsFiles,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    serve_listener_with(router, listener, tls, &ApiConfig::default(), shutdown).await
}

/// [`serve_listener`] with the connection and request bounds of `config`. It
/// raises the soft open-file limit to the hard limit first (see
/// [`crate::connections`]).
pub async fn serve_listener_with(
    router: Router,
    listener: TcpListener,
    tls: TlsFiles,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    let rustls = RustlsConfig::from_config(server_config(&tls)?);
    let fd_limit = raise_fd_limit();
    let cap = connection_cap(config.connections_max, fd_limit);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, connections_max = cap, fd_limit, "serving HTTPS");
    }
    let header_read_timeout = Duration::from_millis(config.header_read_timeout_ms);
    let limits = RequestLimits {
        uri_bytes_max: config.uri_bytes_max,
        headers_max: config.headers_max.min(HYPER_HEADERS_MAX),
        header_bytes_max: config.header_bytes_max,
        body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
    };
    // Outermost first: HTTP/2's header rule, the head checks, then the body
    // deadline.
    let router = router
        .layer(from_fn_with_state(limits, crate::limits::read_deadline))
        .layer(from_fn_with_state(limits, crate::limits::check_head))
        .layer(axum::middleware::from_fn(
            crate::limits::http2_without_connection_header,
        ));
    let handle = Handle::new();
    // TCP_NODELAY: a response goes out as several TLS records; with Nagle on,
    // the second waits for the client's delayed ACK of the first (40-200 ms on
    // Linux), which stalled requests on idle keep-alive connections.
    let limited = LimitedAcceptor::new(
        NoDelayAcceptor::new(),
        cap,
        Duration::from_millis(config.idle_timeout_ms),
    );
    let acceptor = RustlsAcceptor::new(rustls)
        .handshake_timeout(header_read_timeout)
        .acceptor(limited);
    let mut server = axum_server::from_tcp(listener)
        .acceptor(acceptor)
        .handle(handle.clone());
    let builder = server.http_builder();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_headers(HYPER_HEADERS_MAX);
    let h2_header_list_bytes = limits.header_bytes_max
        + limits.headers_max * H2_HEADER_FIELD_OVERHEAD_BYTES
        + limits.uri_bytes_max;
    builder
        .http2()
        .max_header_list_size(u32::try_from(h2_header_list_bytes * 2).unwrap_or(u32::MAX));
    let server = server.serve(router.into_make_service());
    tokio::pin!(server);
    tokio::pin!(shutdown);
    tokio::select! {
        result = &mut server => return result.map_err(ApiError::Serve),
        () = &mut shutdown => {
            tracing::info!(grace = ?SHUTDOWN_GRACE, "shutting down the HTTPS server");
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        }
    }
    server.await.map_err(ApiError::Serve)
}
