//! [`serve`] and [`serve_listener`]: the router over HTTPS (never plain HTTP),
//! until a shutdown future completes, then a graceful shutdown.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use axum::Router;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;

use crate::error::ApiError;
use crate::tls::{server_config, TlsFiles};

/// How long connections may take to finish their requests once shutdown
/// begins; then they are closed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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

/// [`serve`] on a listener already bound (e.g. to `127.0.0.1:0` in tests).
pub async fn serve_listener(
    router: Router,
    listener: TcpListener,
    tls: TlsFiles,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    let config = RustlsConfig::from_config(server_config(&tls)?);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving HTTPS");
    }
    let handle = Handle::new();
    // TCP_NODELAY: a response goes out as several TLS records; with Nagle on,
    // the second waits for the client's delayed ACK of the first (40-200 ms on
    // Linux), which stalled requests on idle keep-alive connections.
    let acceptor = RustlsAcceptor::new(config).acceptor(NoDelayAcceptor::new());
    let server = axum_server::from_tcp(listener)
        .acceptor(acceptor)
        .handle(handle.clone())
        .serve(router.into_make_service());
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
