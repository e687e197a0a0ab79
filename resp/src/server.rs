//! [`serve`]: the accept loop. Plain TCP on loopback only, TLS otherwise;
//! connections capped; each connection a task ([`crate::connection`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stele_api::Node;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::limits::{RESP_BUFFERED_BYTES_MAX, RESP_HANDSHAKE_TIMEOUT_MS, RESP_WALKS_IN_FLIGHT_MAX};
use crate::session::Counted;
use crate::{RespConfig, RespError};

/// What every connection shares.
pub(crate) struct Shared<N: Node> {
    pub(crate) node: Arc<N>,
    pub(crate) config: RespConfig,
    /// The cap in force (the configured one).
    pub(crate) connections_max: usize,
    /// Open connections, for INFO.
    pub(crate) connected: AtomicUsize,
    next_client_id: AtomicU64,
    /// Request bytes buffered beyond each connection's first chunk, in KiB.
    pub(crate) buffer_budget: Arc<Semaphore>,
    /// Turns to walk the key space.
    pub(crate) walks: Arc<Semaphore>,
}

/// KiB permits in [`Shared::buffer_budget`].
pub(crate) const BUDGET_UNIT_BYTES: usize = 1024;

/// Refusals (over the cap) being written at once; beyond, a refused client
/// is simply closed, so a flood cannot hold descriptors in refusals.
const REFUSALS_IN_FLIGHT_MAX: usize = 64;

/// How long accepting pauses after an error (e.g. no file descriptors left).
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// True if a plain-TCP listener may bind `addr`.
pub fn plain_allowed(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Serves RESP on `listener` until `shutdown` resolves. Refuses plain TCP off
/// loopback ([`RespError::PlainOffLoopback`]).
pub async fn serve<N: Node>(
    node: Arc<N>,
    listener: TcpListener,
    config: RespConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RespError> {
    let addr = listener.local_addr().map_err(RespError::Accept)?;
    if config.tls.is_none() && !plain_allowed(&addr) {
        return Err(RespError::PlainOffLoopback { addr });
    }
    let tls = config.tls.clone().map(TlsAcceptor::from);
    let connections_max = config.connections_max.max(1);
    let slots = Arc::new(Semaphore::new(connections_max));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT_MAX));
    let shared = Shared::new(node, config);
    tracing::info!(%addr, tls = tls.is_some(), connections_max, "serving RESP");
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a RESP connection");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                let tls = tls.clone();
                tokio::spawn(async move {
                    refuse(stream, tls).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_one(shared, stream).await,
                Some(acceptor) => {
                    let handshake = Duration::from_millis(RESP_HANDSHAKE_TIMEOUT_MS);
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_one(shared, stream).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "RESP TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "RESP TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tracing::info!("RESP listener stopped");
    Ok(())
}

/// Serves one connection on any byte stream (a test's or a fuzzer's in-memory
/// pipe), with `config`'s users and limits, until the client leaves; the
/// connection cap and TLS are [`serve`]'s, not applied here.
pub async fn serve_connection<N, S>(node: Arc<N>, stream: S, config: RespConfig)
where
    N: Node,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    serve_one(Shared::new(node, config), stream).await;
}

impl<N: Node> Shared<N> {
    fn new(node: Arc<N>, config: RespConfig) -> Arc<Self> {
        let connections_max = config.connections_max.max(1);
        Arc::new(Shared {
            node,
            config,
            connections_max,
            connected: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            buffer_budget: Arc::new(Semaphore::new(RESP_BUFFERED_BYTES_MAX / BUDGET_UNIT_BYTES)),
            walks: Arc::new(Semaphore::new(RESP_WALKS_IN_FLIGHT_MAX)),
        })
    }
}

/// One connection, counted (for INFO) while it lives, with the next client id.
async fn serve_one<N, S>(shared: Arc<Shared<N>>, stream: S)
where
    N: Node,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let _counted = Counted(Arc::clone(&shared));
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    crate::connection::run(stream, shared, id).await;
}

/// Answers a client over the cap as Redis does at `maxclients`, then closes.
async fn refuse(stream: TcpStream, tls: Option<TlsAcceptor>) {
    const REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";
    let handshake = Duration::from_millis(RESP_HANDSHAKE_TIMEOUT_MS);
    let _ = tokio::time::timeout(handshake, async {
        match tls {
            None => {
                let mut stream = stream;
                let _ = stream.write_all(REFUSAL).await;
                let _ = stream.shutdown().await;
            }
            Some(acceptor) => {
                if let Ok(mut stream) = acceptor.accept(stream).await {
                    let _ = stream.write_all(REFUSAL).await;
                    let _ = stream.shutdown().await;
                }
            }
        }
    })
    .await;
}
