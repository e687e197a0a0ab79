//! Bounds on connections, below HTTP: how many may be open at once (a
//! semaphore permit held by each connection's IO, with a file-descriptor
//! reserve that clients can never take) and how long one may sit idle.
//!
//! The cap exists because every connection holds a file descriptor and the
//! ledger, snapshots and meta files need descriptors of their own: when
//! clients exhausted them, the ledger failed to open its next chunk (`Too many
//! open files`) and the engine stopped for good. So at start the soft
//! `RLIMIT_NOFILE` is raised to the hard limit ([`raise_fd_limit`]) and the
//! cap is `min(configured, fd limit - FDS_RESERVED)` ([`connection_cap`]).
//! Above it, a new connection is accepted by the kernel and closed at once
//! (the listener keeps draining its backlog); refusals are logged at most once
//! per [`REFUSAL_LOG_INTERVAL_MS`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Instant as TokioInstant;

use axum_server::accept::Accept;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// File descriptors kept for everything but client connections: ledger
/// chunks, snapshots, meta files, the peers' outgoing connections, logs.
pub const FDS_RESERVED: u64 = 256;

/// The least cap [`connection_cap`] gives, however low the fd limit.
pub const CONNECTIONS_MIN: usize = 1;

/// Refused connections are logged at most once per this interval (with the
/// number refused since the last line).
pub const REFUSAL_LOG_INTERVAL_MS: u64 = 1_000;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit in force (unchanged if it cannot be raised: the error is logged).
pub fn raise_fd_limit() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the open-file limit");
                hard
            }
            Err(error) => {
                tracing::warn!(%error, soft, hard, "cannot raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit; assuming 1024");
            1024
        }
    }
}

/// The connection cap: `configured`, but never more than the fd limit minus
/// [`FDS_RESERVED`] (and at least [`CONNECTIONS_MIN`]).
pub fn connection_cap(configured: usize, fd_limit: u64) -> usize {
    let available = usize::try_from(fd_limit.saturating_sub(FDS_RESERVED)).unwrap_or(usize::MAX);
    configured.min(available).max(CONNECTIONS_MIN)
}

/// Counts refusals and logs them at most once per [`REFUSAL_LOG_INTERVAL_MS`].
#[derive(Debug)]
struct RefusalLog {
    start: Instant,
    /// Milliseconds after `start` of the last line; `u64::MAX`: none yet.
    last_ms: AtomicU64,
    unlogged: AtomicU64,
}

impl RefusalLog {
    fn new() -> Self {
        RefusalLog {
            start: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            unlogged: AtomicU64::new(0),
        }
    }

    fn refused(&self, cap: usize) {
        let refused = self.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let now_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last_ms = self.last_ms.load(Ordering::Relaxed);
        let due = last_ms == u64::MAX || now_ms.saturating_sub(last_ms) >= REFUSAL_LOG_INTERVAL_MS;
        if due
            && self
                .last_ms
                .compare_exchange(last_ms, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.unlogged.fetch_sub(refused, Ordering::Relaxed);
            tracing::warn!(
                refused,
                connections_max = cap,
                "connection cap reached: closing new connections"
            );
        }
    }
}

/// What a connection's IO and its service share: the requests in flight, so
/// that a connection waiting for an answer is not idle.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
}

/// An acceptor (under TLS) that holds a permit per connection and closes
/// connections above the cap, and closes connections idle for longer than
/// `idle_timeout` (no byte either way and no request in flight).
#[derive(Debug, Clone)]
pub struct LimitedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
    cap: usize,
    idle_timeout: Duration,
    refusals: Arc<RefusalLog>,
}

impl<A> LimitedAcceptor<A> {
    /// At most `cap` connections at once through `inner`.
    pub fn new(inner: A, cap: usize, idle_timeout: Duration) -> Self {
        debug_assert!(cap >= CONNECTIONS_MIN);
        LimitedAcceptor {
            inner,
            permits: Arc::new(Semaphore::new(cap)),
            cap,
            idle_timeout,
            refusals: Arc::new(RefusalLog::new()),
        }
    }
}

type AcceptFuture<S, T> = Pin<Box<dyn Future<Output = io::Result<(S, T)>> + Send>>;

impl<I, S, A> Accept<I, S> for LimitedAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = ConnectionIo<A::Stream>;
    type Service = InFlight<A::Service>;
    type Future = AcceptFuture<Self::Stream, Self::Service>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            // Dropping the stream closes it: the descriptor is back at once.
            drop(stream);
            self.refusals.refused(self.cap);
            return Box::pin(std::future::ready(Err(io::Error::other(
                "connection cap reached",
            ))));
        };
        let inner = self.inner.accept(stream, service);
        let idle_timeout = self.idle_timeout;
        Box::pin(async move {
            let (stream, service) = inner.await?;
            let activity = Arc::new(Activity::default());
            let io = ConnectionIo {
                stream,
                _permit: permit,
                activity: Arc::clone(&activity),
                idle_timeout,
                last_active: TokioInstant::now(),
                idle: Box::pin(tokio::time::sleep(idle_timeout)),
            };
            Ok((
                io,
                InFlight {
                    inner: service,
                    activity,
                },
            ))
        })
    }
}

/// A connection's IO: the stream, its permit (released when the connection
/// ends) and its idle deadline.
#[derive(Debug)]
pub struct ConnectionIo<S> {
    stream: S,
    _permit: OwnedSemaphorePermit,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    /// On tokio's clock, the idle timer's own.
    last_active: TokioInstant,
    /// Fires at the earliest time the connection may be idle; checked (and
    /// pushed back) only then, so a byte costs a clock read, not a timer reset.
    idle: Pin<Box<Sleep>>,
}

impl<S> ConnectionIo<S> {
    /// `Ready(Err)` once the connection has been idle for `idle_timeout`.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        while self.idle.as_mut().poll(cx).is_ready() {
            let now = TokioInstant::now();
            let deadline = if self.activity.in_flight.load(Ordering::Relaxed) > 0 {
                now + self.idle_timeout
            } else {
                self.last_active + self.idle_timeout
            };
            if deadline <= now {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle for too long",
                ));
            }
            self.idle.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnectionIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_active = TokioInstant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            // hyper always keeps a read pending, so this is where the idle
            // deadline is watched.
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnectionIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = written {
            if written > 0 {
                this.last_active = TokioInstant::now();
            }
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = written {
            if written > 0 {
                this.last_active = TokioInstant::now();
            }
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A connection's service, counting its requests in flight (see [`Activity`]).
#[derive(Debug, Clone)]
pub struct InFlight<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// Decrements the in-flight count when the request's future ends or is dropped.
struct InFlightGuard(Arc<Activity>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, R> tower::Service<R> for InFlight<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlightGuard(Arc::clone(&self.activity));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(guard);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::AsyncReadExt as _;

    use super::*;

    /// A connection's IO over one end of an in-memory pipe.
    fn io_over(
        stream: tokio::io::DuplexStream,
        idle_timeout: Duration,
    ) -> ConnectionIo<tokio::io::DuplexStream> {
        ConnectionIo {
            stream,
            _permit: Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap(),
            activity: Arc::new(Activity::default()),
            idle_timeout,
            last_active: TokioInstant::now(),
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_bytes_and_requests() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = io_over(server, Duration::from_secs(1));
        let mut buffer = [0u8; 8];
        // Bytes keep it open.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            tokio::io::AsyncWriteExt::write_all(&mut client, b"x")
                .await
                .unwrap();
            assert_eq!(io.read(&mut buffer).await.unwrap(), 1);
        }
        // So does a request in flight, however long.
        io.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let waited = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buffer)).await;
        assert!(
            waited.is_err(),
            "closed with a request in flight: {waited:?}"
        );
        // Without either, it is closed.
        io.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        let error = io.read(&mut buffer).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);
    }

    #[test]
    fn the_cap_leaves_the_reserve() {
        assert_eq!(connection_cap(8192, 1_048_576), 8192);
        assert_eq!(connection_cap(8192, 1024), 1024 - FDS_RESERVED as usize);
        assert_eq!(connection_cap(8192, 10), CONNECTIONS_MIN);
        assert_eq!(connection_cap(0, 1024), CONNECTIONS_MIN);
    }
}
