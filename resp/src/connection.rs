//! One connection: requests in (RESP2 frames, or inline commands typed in a
//! terminal), replies out in request order.
//!
//! Pipelining: every complete request in the buffer is taken before the
//! replies are written. A write is submitted at once and answered at its
//! commit, so a pipeline of writes shares batches; a request that reads
//! waits for the connection's earlier writes first (read-your-writes).
//! Bounds: a request must complete within [`RESP_REQUEST_BYTES_MAX`] (else
//! the one closing refusal); buffers beyond [`RESP_READ_CHUNK_BYTES`] draw
//! on a budget shared by all connections; at most [`RESP_PIPELINE_DEPTH_MAX`]
//! writes wait per connection (then it stops reading); idle and slow
//! connections are closed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use stele_api::Node;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

use crate::limits::{
    RESP_ARGS_MAX, RESP_BUDGET_WAIT_MS, RESP_BULK_BYTES_MAX, RESP_PIPELINE_DEPTH_MAX,
    RESP_READ_CHUNK_BYTES, RESP_REQUEST_BYTES_MAX, RESP_REQUEST_READ_TIMEOUT_MS,
    RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX, RESP_WRITE_TIMEOUT_MS,
};
use crate::reply::{self, Reply};
use crate::request;
use crate::server::{Shared, BUDGET_UNIT_BYTES};
use crate::session::{write_reply, PendingWrite, Session, Step};

/// What a refused connection may still send, read and dropped, before the
/// close: at most this many bytes, for at most [`DRAIN_MS`].
const DRAIN_BYTES_MAX: usize = 4 * RESP_REQUEST_BYTES_MAX;
const DRAIN_MS: u64 = 1_000;

/// Replies are written once this many bytes are waiting, even mid-pipeline.
const OUT_FLUSH_BYTES: usize = 1 << 20;

/// A reply in the order of its request: ready, or a write's commit.
enum Pending {
    Ready(Reply),
    /// A read's reply with the budget it holds until encoded.
    Read(Reply, Option<OwnedSemaphorePermit>),
    Write {
        write: PendingWrite,
        exec: bool,
    },
}

/// What the next bytes of the buffer hold.
enum Next {
    /// A complete request's arguments.
    Request(Vec<Bytes>),
    /// A complete frame that is not a request, or crosses a limit: answer
    /// this error and go on (the frame is consumed).
    Refused(Reply),
    /// A complete request that asks nothing (an empty array or line).
    Empty,
    /// Nothing complete yet.
    Incomplete,
    /// Unreadable: answer this and close (RESP cannot skip what it cannot
    /// parse).
    Fatal(Reply),
}

/// The connection's state, with its stream.
struct Connection<N: Node, S> {
    stream: S,
    shared: Arc<Shared<N>>,
    session: Session,
    input: BytesMut,
    out: BytesMut,
    pending: VecDeque<Pending>,
    /// Budget held for `input` beyond one chunk.
    budget: Vec<OwnedSemaphorePermit>,
    /// When an unauthenticated connection is closed.
    auth_deadline: Instant,
    /// When the incomplete request at the head of `input` started to arrive.
    request_since: Option<Instant>,
    /// Budget of large replies encoded into `out`, held until written.
    reply_budget: Vec<OwnedSemaphorePermit>,
}

/// Serves one connection until the client leaves, QUITs, idles, or breaks
/// the protocol.
pub(crate) async fn run<N, S>(stream: S, shared: Arc<Shared<N>>, id: u64)
where
    N: Node,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let auth_timeout_ms = shared.config.auth_timeout_ms;
    let mut connection = Connection {
        stream,
        shared,
        session: Session::new(id),
        input: BytesMut::with_capacity(RESP_READ_CHUNK_BYTES),
        out: BytesMut::new(),
        pending: VecDeque::new(),
        budget: Vec::new(),
        auth_deadline: Instant::now() + Duration::from_millis(auth_timeout_ms),
        request_since: None,
        reply_budget: Vec::new(),
    };
    if let Err(reason) = connection.serve().await {
        tracing::debug!(client = id, %reason, "RESP connection closed");
    }
}

impl<N, S> Connection<N, S>
where
    N: Node,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn serve(&mut self) -> Result<(), String> {
        loop {
            // Every complete request in the buffer.
            loop {
                let next = self.next();
                if !matches!(next, Next::Incomplete) {
                    // A request was taken: what follows starts its own clock.
                    self.request_since = None;
                }
                match next {
                    Next::Incomplete => break,
                    Next::Empty => continue,
                    Next::Fatal(refusal) => {
                        self.answer_all().await;
                        return self.refuse_and_close(refusal, "protocol error").await;
                    }
                    Next::Refused(refusal) => {
                        let step = self.session.refused(refusal);
                        if self.take(step).await {
                            return self.close().await;
                        }
                    }
                    Next::Request(args) => {
                        if self.request(args).await {
                            return self.close().await;
                        }
                    }
                }
                while self.pending.len() >= RESP_PIPELINE_DEPTH_MAX {
                    self.answer_oldest().await;
                }
                if self.out.len() >= OUT_FLUSH_BYTES {
                    self.flush().await?;
                }
            }
            self.answer_all().await;
            self.flush().await?;
            self.read().await?;
        }
    }

    /// Handles one request; true if the connection closes after it.
    async fn request(&mut self, args: Vec<Bytes>) -> bool {
        let name = args.first().cloned().unwrap_or_default();
        if !self.session.authenticated() && !Session::allowed_before_auth(&name) {
            return self.take(Step::Reply(Session::noauth())).await;
        }
        let step = match request::parse(args) {
            Err(refusal) => self.session.refused(refusal),
            Ok(parsed) => {
                if parsed.reads_state() && !self.session.in_multi() {
                    self.answer_all().await;
                }
                self.session.execute(parsed, &self.shared).await
            }
        };
        self.take(step).await
    }

    /// Queues a step's reply; true if the connection closes after it.
    async fn take(&mut self, step: Step) -> bool {
        match step {
            Step::Reply(answer) => self.pending.push_back(Pending::Ready(answer)),
            Step::Read { reply, budget } => self.pending.push_back(Pending::Read(reply, budget)),
            Step::Write { write, exec } => self.pending.push_back(Pending::Write { write, exec }),
            Step::Close(answer) => {
                self.pending.push_back(Pending::Ready(answer));
                return true;
            }
        }
        false
    }

    /// Answers everything, writes it, closes.
    async fn close(&mut self) -> Result<(), String> {
        self.answer_all().await;
        self.flush().await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    /// Answers `refusal` and closes. What the client is still sending is
    /// read and dropped for a moment first (bounded): closing a socket with
    /// unread bytes resets it, and the reset can destroy the refusal before
    /// the client reads it.
    async fn refuse_and_close(&mut self, refusal: Reply, why: &str) -> Result<(), String> {
        reply::encode(&refusal, &mut self.out);
        self.flush().await?;
        let _ = self.stream.shutdown().await;
        self.input.clear();
        self.budget.clear();
        let drain = async {
            let mut drained = 0;
            let mut chunk = vec![0u8; RESP_READ_CHUNK_BYTES];
            while drained < DRAIN_BYTES_MAX {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => drained += read,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(DRAIN_MS), drain).await;
        Err(why.to_owned())
    }

    async fn answer_all(&mut self) {
        while !self.pending.is_empty() {
            self.answer_oldest().await;
        }
    }

    async fn answer_oldest(&mut self) {
        let answer = match self.pending.pop_front() {
            None => return,
            Some(Pending::Ready(answer)) => answer,
            Some(Pending::Read(answer, budget)) => {
                reply::encode(&answer, &mut self.out);
                self.reply_budget.extend(budget);
                return;
            }
            Some(Pending::Write { write, exec }) => {
                let (id, answer) = write_reply(write.await, exec);
                if let Some(id) = id {
                    self.session.wrote(id);
                }
                answer
            }
        };
        reply::encode(&answer, &mut self.out);
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        let written =
            tokio::time::timeout(Duration::from_millis(RESP_WRITE_TIMEOUT_MS), write).await;
        self.out.clear();
        if self.out.capacity() > OUT_FLUSH_BYTES {
            self.out = BytesMut::new();
        }
        self.reply_budget.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("writing: {error}")),
            Err(_) => Err("the client did not read its replies in time".to_owned()),
        }
    }

    /// Reads more bytes, within the request limit, the shared budget and the
    /// timeouts.
    async fn read(&mut self) -> Result<(), String> {
        let authenticated = self.session.authenticated();
        let request_bytes_max = if authenticated {
            RESP_REQUEST_BYTES_MAX
        } else {
            RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX
        };
        if self.input.len() >= request_bytes_max {
            let refusal = if authenticated {
                reply::error(format!(
                    "ERR Protocol error: a request over RESP_REQUEST_BYTES_MAX ({RESP_REQUEST_BYTES_MAX} bytes)"
                ))
            } else {
                reply::error(format!(
                    "ERR Protocol error: a request over RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX ({RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX} bytes) before AUTH"
                ))
            };
            return self.refuse_and_close(refusal, "request too large").await;
        }
        if self.input.is_empty() {
            // Between requests: give back any budget and oversized buffer.
            self.budget.clear();
            if self.input.capacity() > 4 * RESP_READ_CHUNK_BYTES {
                self.input = BytesMut::with_capacity(RESP_READ_CHUNK_BYTES);
            }
        }
        let wanted = (self.input.len() + RESP_READ_CHUNK_BYTES).min(request_bytes_max);
        self.reserve(wanted).await?;
        self.input.reserve(wanted.saturating_sub(self.input.len()));
        let mut timeout = if self.input.is_empty() {
            Duration::from_millis(self.shared.config.idle_timeout_ms)
        } else {
            // One deadline for the whole request, not one per read.
            let since = *self.request_since.get_or_insert_with(Instant::now);
            Duration::from_millis(RESP_REQUEST_READ_TIMEOUT_MS).saturating_sub(since.elapsed())
        };
        if !authenticated {
            let left = self.auth_deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let refusal = reply::error(format!(
                    "ERR no AUTH within {} ms (RESP_AUTH_TIMEOUT_MS)",
                    self.shared.config.auth_timeout_ms
                ));
                return self.refuse_and_close(refusal, "no AUTH in time").await;
            }
            timeout = timeout.min(left);
        }
        let limit = wanted - self.input.len();
        let read = tokio::time::timeout(
            timeout,
            (&mut self.stream)
                .take(limit as u64)
                .read_buf(&mut self.input),
        )
        .await;
        match read {
            Err(_) if !authenticated => {
                let refusal = reply::error(format!(
                    "ERR no AUTH within {} ms (RESP_AUTH_TIMEOUT_MS)",
                    self.shared.config.auth_timeout_ms
                ));
                self.refuse_and_close(refusal, "no AUTH in time").await
            }
            Err(_) if self.input.is_empty() => Err("idle".to_owned()),
            Err(_) => {
                let refusal =
                    reply::error("ERR Protocol error: the request was not completed in time");
                self.refuse_and_close(refusal, "slow request").await
            }
            Ok(Ok(0)) => Err("closed by the client".to_owned()),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("reading: {error}")),
        }
    }

    /// Holds budget for `bytes` of input beyond the first chunk.
    async fn reserve(&mut self, bytes: usize) -> Result<(), String> {
        let units = bytes
            .saturating_sub(RESP_READ_CHUNK_BYTES)
            .div_ceil(BUDGET_UNIT_BYTES);
        let held: usize = self.budget.iter().map(|permit| permit.num_permits()).sum();
        if units <= held {
            return Ok(());
        }
        let more = u32::try_from(units - held).map_err(|_| "budget overflow".to_owned())?;
        let wait = Duration::from_millis(RESP_BUDGET_WAIT_MS);
        let budget = Arc::clone(&self.shared.buffer_budget);
        match tokio::time::timeout(wait, budget.acquire_many_owned(more)).await {
            Ok(Ok(permit)) => {
                self.budget.push(permit);
                Ok(())
            }
            _ => {
                let refusal = reply::error(
                    "ERR the node is buffering too many large requests (RESP_BUFFERED_BYTES_MAX); retry later",
                );
                self.refuse_and_close(refusal, "no buffer budget").await
            }
        }
    }

    /// The next request in the buffer, if complete.
    fn next(&mut self) -> Next {
        match self.input.first() {
            None => Next::Incomplete,
            Some(b'*') => self.next_frame(),
            Some(_) => self.next_inline(),
        }
    }

    fn next_frame(&mut self) -> Next {
        if let Err(refusal) = flat_request(&self.input) {
            return Next::Fatal(refusal);
        }
        let frame = match decode_bytes_mut(&mut self.input) {
            Ok(Some((frame, _, _))) => frame,
            Ok(None) => return Next::Incomplete,
            Err(error) => return Next::Fatal(reply::error(format!("ERR Protocol error: {error}"))),
        };
        let BytesFrame::Array(items) = frame else {
            return Next::Refused(reply::error(
                "ERR Protocol error: a request is an array of bulk strings",
            ));
        };
        if items.len() > RESP_ARGS_MAX {
            return Next::Refused(reply::error(format!(
                "ERR a request has at most RESP_ARGS_MAX ({RESP_ARGS_MAX}) arguments"
            )));
        }
        let mut args = Vec::with_capacity(items.len());
        for item in items {
            let (BytesFrame::BulkString(arg) | BytesFrame::SimpleString(arg)) = item else {
                return Next::Refused(reply::error(
                    "ERR Protocol error: a request is an array of bulk strings",
                ));
            };
            if arg.len() > RESP_BULK_BYTES_MAX {
                return Next::Refused(reply::error(format!(
                    "ERR an argument has at most RESP_BULK_BYTES_MAX ({RESP_BULK_BYTES_MAX}) bytes"
                )));
            }
            args.push(arg);
        }
        if args.is_empty() {
            // Redis ignores an empty array; so does Stele (no reply).
            return Next::Empty;
        }
        Next::Request(args)
    }

    /// A command typed as a line (`PING`, `SET k v`): split at spaces, as
    /// Redis does for inline commands (without its quoting).
    fn next_inline(&mut self) -> Next {
        let Some(end) = self.input.iter().position(|byte| *byte == b'\n') else {
            return Next::Incomplete;
        };
        let line = self.input.split_to(end + 1).freeze();
        let line = line.slice(..end);
        let line = line
            .strip_suffix(b"\r")
            .map_or(line.clone(), |trimmed| line.slice(..trimmed.len()));
        let args: Vec<Bytes> = line
            .split(|byte| *byte == b' ' || *byte == b'\t')
            .filter(|word| !word.is_empty())
            .map(|word| line.slice_ref(word))
            .collect();
        if args.is_empty() {
            return Next::Empty;
        }
        if args.len() > RESP_ARGS_MAX {
            return Next::Refused(reply::error(format!(
                "ERR a request has at most RESP_ARGS_MAX ({RESP_ARGS_MAX}) arguments"
            )));
        }
        Next::Request(args)
    }
}

/// Checks, before `redis-protocol` decodes it, that the frame at the start of
/// `input` is what a request is: one array whose elements are all bulk
/// strings. The decoder recurses into nested arrays without a depth bound,
/// so `*1\r\n` repeated thousands of times would overflow the stack: a
/// nested array (or any non-bulk element) is refused here, as Redis refuses
/// it (`Protocol error: expected '$'`), and the connection is closed. Only
/// the headers are read (each element's length is skipped); `Ok` for a frame
/// not complete yet. Not a decoder: `decode_bytes_mut` still parses the
/// frame.
fn flat_request(input: &[u8]) -> Result<(), Reply> {
    /// The number on the header line starting at `at` (after its type
    /// byte) and where the next line starts; `None` if the line is not
    /// complete yet.
    fn header(input: &[u8], at: usize) -> Result<Option<(i64, usize)>, Reply> {
        let Some(end) = input[at..].iter().position(|byte| *byte == b'\n') else {
            return Ok(None);
        };
        let line = &input[at + 1..at + end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let number = std::str::from_utf8(line)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or_else(|| reply::error("ERR Protocol error: invalid length"))?;
        Ok(Some((number, at + end + 1)))
    }
    debug_assert_eq!(input.first(), Some(&b'*'));
    let Some((count, mut at)) = header(input, 0)? else {
        return Ok(());
    };
    for _ in 0..count.max(0) {
        match input.get(at) {
            None => return Ok(()),
            Some(b'$') => {}
            Some(other) => {
                return Err(reply::error(format!(
                    "ERR Protocol error: expected '$', got '{}'",
                    char::from(*other).escape_default()
                )))
            }
        }
        let Some((length, next)) = header(input, at)? else {
            return Ok(());
        };
        at = match usize::try_from(length) {
            // Skip the bytes and their CRLF (a null bulk string has none).
            Ok(length) => next.saturating_add(length).saturating_add(2),
            Err(_) => next,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flat_arrays_of_bulk_strings_reach_the_decoder() {
        assert!(flat_request(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n").is_ok());
        assert!(flat_request(b"*2\r\n$4\r\nEC").is_ok(), "incomplete");
        assert!(flat_request(b"*2\r\n$-1\r\n$1\r\na\r\n").is_ok());
        assert!(flat_request(b"*2\r\n$4\r\nECHO\r\n*1\r\n").is_err());
        assert!(flat_request(&b"*1\r\n".repeat(100_000)).is_err());
        assert!(flat_request(b"*1\r\n:5\r\n").is_err());
        assert!(flat_request(b"*1\r\n$x\r\n").is_err());
    }
}
