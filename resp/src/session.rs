//! [`Session`]: one connection's state (authentication, name, MULTI queue,
//! WATCHed keys, last write) and what each [`Request`] does with it.
//!
//! A request yields a [`Step`]: a reply now, a write to answer at its commit,
//! or a reply that closes the connection. The connection keeps the replies
//! in request order; requests that read state ([`Request::reads_state`]) run
//! only once every earlier write of the connection has been answered, so a
//! connection reads its own writes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use stele_api::auth::token_matches;
use stele_api::{Node, NodeError, Submitted, TxStatus};
use stele_frontends::redis::{
    execute_read, key_name, replies_from_response, watch_digest, RedisCommand, RedisOp, Watch,
    HASHES_MAP, REDIS_KEY_BYTES_MAX, STRINGS_MAP,
};
use stele_frontends::{AbortReason, Command};
use stele_history::TransactionId;

use tokio::sync::OwnedSemaphorePermit;

use crate::limits::{
    RESP_BUDGET_WAIT_MS, RESP_CLIENT_NAME_BYTES_MAX, RESP_KEYS_REPLY_MAX, RESP_MULTI_COMMANDS_MAX,
    RESP_READ_CHUNK_BYTES, RESP_REPLY_BYTES_MAX, RESP_WALK_TIME_MAX_MS, RESP_WATCHED_KEYS_MAX,
};
use crate::reply::{self, Reply};
use crate::request::{CommandQuery, Request, COMMANDS};
use crate::server::{Shared, BUDGET_UNIT_BYTES};
use crate::{info, keyspace};

/// A write on its way to commit.
pub(crate) type PendingWrite = Pin<Box<dyn Future<Output = Result<Submitted, NodeError>> + Send>>;

/// What a request yields.
pub(crate) enum Step {
    /// Answer this, in order.
    Reply(Reply),
    /// A read's reply, holding `budget` (if large) until it is encoded.
    Read {
        reply: Reply,
        budget: Option<OwnedSemaphorePermit>,
    },
    /// Answer when the write commits; `exec`: the reply is EXEC's array.
    Write { write: PendingWrite, exec: bool },
    /// Answer this, then close the connection.
    Close(Reply),
}

/// The connection's MULTI block.
#[derive(Debug, Default)]
struct Multi {
    ops: Vec<RedisOp>,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    failed: bool,
}

/// One connection's state.
#[derive(Debug)]
pub(crate) struct Session {
    id: u64,
    authenticated: bool,
    name: Option<Vec<u8>>,
    multi: Option<Multi>,
    watches: Vec<Watch>,
    last_write: Option<TransactionId>,
}

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

impl Request {
    /// True if the request reads the state (or this connection's writes), so
    /// it must wait for the connection's earlier writes to be answered.
    pub(crate) fn reads_state(&self) -> bool {
        match self {
            Request::Op(op) => !op.is_write(),
            Request::Watch(_)
            | Request::Scan(_)
            | Request::Keys(_)
            | Request::DbSize
            | Request::SteleTxid
            | Request::SteleStatus(_)
            | Request::SteleReceipt(_) => true,
            _ => false,
        }
    }
}

impl Session {
    /// A new, unauthenticated session.
    pub(crate) fn new(id: u64) -> Self {
        Session {
            id,
            authenticated: false,
            name: None,
            multi: None,
            watches: Vec::new(),
            last_write: None,
        }
    }

    /// True while a MULTI block is open.
    pub(crate) fn in_multi(&self) -> bool {
        self.multi.is_some()
    }

    /// A request that could not be parsed: inside MULTI it also dooms the
    /// block, as in Redis.
    pub(crate) fn refused(&mut self, error: Reply) -> Step {
        if let Some(multi) = &mut self.multi {
            if self.authenticated {
                multi.failed = true;
            }
        }
        Step::Reply(error)
    }

    /// True if `name` (the first argument) may run before AUTH.
    pub(crate) fn allowed_before_auth(name: &[u8]) -> bool {
        [&b"auth"[..], b"hello", b"quit"]
            .iter()
            .any(|allowed| name.eq_ignore_ascii_case(allowed))
    }

    /// True once the client has authenticated.
    pub(crate) fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// The refusal of anything but AUTH, HELLO and QUIT before AUTH.
    pub(crate) fn noauth() -> Reply {
        reply::error(NOAUTH)
    }

    /// Records the id of a write answered to this connection.
    pub(crate) fn wrote(&mut self, id: TransactionId) {
        self.last_write = Some(id);
    }

    /// Runs `request`.
    pub(crate) async fn execute<N: Node>(
        &mut self,
        request: Request,
        shared: &Arc<Shared<N>>,
    ) -> Step {
        if self.multi.is_some() {
            return self.queue(request, &shared.node);
        }
        let node = &shared.node;
        let answer = match request {
            Request::Op(op) if op.is_write() => {
                return self.submit(
                    node,
                    RedisCommand {
                        ops: vec![op],
                        watches: Vec::new(),
                    },
                    false,
                );
            }
            Request::Op(op) => {
                let bytes = match read_size(node.as_ref(), &op) {
                    Ok(bytes) => bytes,
                    Err(refusal) => return Step::Reply(refusal),
                };
                // A large reply holds budget until it is encoded.
                let budget = if bytes > RESP_READ_CHUNK_BYTES {
                    match reserve_reply(shared, bytes).await {
                        Some(permit) => Some(permit),
                        None => {
                            return Step::Reply(reply::error(
                                "ERR the node is holding too many large replies (RESP_BUFFERED_BYTES_MAX); retry later",
                            ))
                        }
                    }
                } else {
                    None
                };
                let answer = node.read_committed(|view| execute_read(&op, view));
                return Step::Read {
                    reply: answer,
                    budget,
                };
            }
            Request::Auth { user, token } => {
                if self.check_token(shared, user.as_deref(), &token) {
                    reply::ok()
                } else {
                    reply::error(WRONGPASS)
                }
            }
            Request::Hello {
                protocol,
                auth,
                name,
            } => return Step::Reply(self.hello(shared, protocol, auth, name)),
            Request::Quit => return Step::Close(reply::ok()),
            Request::Ping(None) => Reply::Status("PONG".to_owned()),
            Request::Ping(Some(message)) | Request::Echo(message) => Reply::Bulk(message),
            Request::Select(index) => {
                match stele_frontends::redis::integer::parse_integer(&index) {
                    Some(0) => reply::ok(),
                    Some(_) => reply::error("ERR DB index is out of range"),
                    None => reply::error("ERR value is not an integer or out of range"),
                }
            }
            Request::ClientSetName(name) => self.set_name(name),
            Request::ClientGetName => self.name.clone().map_or(Reply::Nil, Reply::Bulk),
            Request::ClientId => Reply::Int(i64::try_from(self.id).unwrap_or(i64::MAX)),
            Request::ClientSetInfo => reply::ok(),
            Request::Info => Reply::Bulk(info::info(shared).into_bytes()),
            Request::ConfigGet(patterns) => info::config_get(&patterns),
            Request::Command(CommandQuery::Count) => Reply::Int(COMMANDS.len() as i64),
            Request::Command(CommandQuery::List | CommandQuery::Docs) => Reply::Array(Vec::new()),
            Request::DbSize => {
                let node = Arc::clone(node);
                walk(shared, move || {
                    Reply::Int(keyspace::count(&node.frozen_committed()) as i64)
                })
                .await
            }
            Request::Keys(pattern) => {
                // The most a KEYS reply can take, held while it is built.
                let bytes = RESP_KEYS_REPLY_MAX * (REDIS_KEY_BYTES_MAX + 16);
                let Some(budget) = reserve_reply(shared, bytes).await else {
                    return Step::Reply(reply::error(
                        "ERR the node is holding too many large replies (RESP_BUFFERED_BYTES_MAX); retry later",
                    ));
                };
                let node = Arc::clone(node);
                let answer = walk(shared, move || {
                    let mut deadline = keyspace::Deadline::after(walk_time_max());
                    match keyspace::matching(&node.frozen_committed(), &pattern, RESP_KEYS_REPLY_MAX, &mut deadline) {
                        Ok(keys) => bounded(Reply::Array(keys.into_iter().map(Reply::Bulk).collect())),
                        Err(keyspace::WalkStopped::TooManyKeys) => reply::error(format!(
                            "ERR KEYS would answer more than RESP_KEYS_REPLY_MAX ({RESP_KEYS_REPLY_MAX}) keys: use SCAN"
                        )),
                        Err(keyspace::WalkStopped::TooLong) => walk_too_long(),
                    }
                })
                .await;
                return Step::Read {
                    reply: answer,
                    budget: Some(budget),
                };
            }
            Request::Scan(scan) => {
                let bytes = scan.count * (REDIS_KEY_BYTES_MAX + 16);
                let budget = if bytes > RESP_READ_CHUNK_BYTES {
                    let Some(budget) = reserve_reply(shared, bytes).await else {
                        return Step::Reply(reply::error(
                            "ERR the node is holding too many large replies (RESP_BUFFERED_BYTES_MAX); retry later",
                        ));
                    };
                    Some(budget)
                } else {
                    None
                };
                let node = Arc::clone(node);
                let answer = walk(shared, move || {
                    let mut deadline = keyspace::Deadline::after(walk_time_max());
                    let Ok((next, keys)) =
                        keyspace::scan(&node.frozen_committed(), &scan, &mut deadline)
                    else {
                        return walk_too_long();
                    };
                    Reply::Array(vec![
                        Reply::Bulk(next.to_string().into_bytes()),
                        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
                    ])
                })
                .await;
                return Step::Read {
                    reply: answer,
                    budget,
                };
            }
            Request::Multi => {
                self.multi = Some(Multi::default());
                reply::ok()
            }
            Request::Exec => reply::error("ERR EXEC without MULTI"),
            Request::Discard => reply::error("ERR DISCARD without MULTI"),
            Request::Watch(keys) => self.watch(node.as_ref(), keys),
            Request::Unwatch => {
                self.watches.clear();
                reply::ok()
            }
            Request::SteleTxid => self
                .last_write
                .map_or(Reply::Nil, |id| Reply::Bulk(id.to_string().into_bytes())),
            Request::SteleStatus(id) => Reply::Status(
                match node.tx_status(id) {
                    TxStatus::Unknown => "Unknown",
                    TxStatus::Pending => "Pending",
                    TxStatus::Committed => "Committed",
                    TxStatus::Invalid => "Invalid",
                }
                .to_owned(),
            ),
            Request::SteleReceipt(id) => match node.receipt(id) {
                Ok(receipt) => match serde_json::to_vec(&receipt) {
                    Ok(json) => Reply::Bulk(json),
                    Err(error) => reply::error(format!("ERR cannot encode the receipt: {error}")),
                },
                Err(error) => node_error(error),
            },
        };
        Step::Reply(answer)
    }

    /// Inside MULTI: data commands queue; EXEC submits the block as one
    /// transaction; DISCARD drops it.
    fn queue<N: Node>(&mut self, request: Request, node: &Arc<N>) -> Step {
        let multi = self.multi.as_mut().expect("queue is called inside MULTI");
        let answer = match request {
            Request::Op(op) if multi.ops.len() < RESP_MULTI_COMMANDS_MAX => {
                multi.ops.push(op);
                Reply::Status("QUEUED".to_owned())
            }
            Request::Op(_) => {
                multi.failed = true;
                reply::error(format!(
                    "ERR a MULTI block holds at most RESP_MULTI_COMMANDS_MAX ({RESP_MULTI_COMMANDS_MAX}) commands"
                ))
            }
            Request::Exec => {
                let multi = self.multi.take().expect("inside MULTI");
                let watches = std::mem::take(&mut self.watches);
                if multi.failed {
                    return Step::Reply(reply::error(
                        "EXECABORT Transaction discarded because of previous errors.",
                    ));
                }
                if multi.ops.is_empty() && watches.is_empty() {
                    return Step::Reply(Reply::Array(Vec::new()));
                }
                return self.submit(
                    node,
                    RedisCommand {
                        ops: multi.ops,
                        watches,
                    },
                    true,
                );
            }
            Request::Discard => {
                self.multi = None;
                self.watches.clear();
                reply::ok()
            }
            Request::Multi => reply::error("ERR MULTI calls can not be nested"),
            Request::Watch(_) => reply::error("ERR WATCH inside MULTI is not allowed"),
            Request::Quit => return Step::Close(reply::ok()),
            other => {
                multi.failed = true;
                reply::error(format!(
                    "ERR Stele runs only data commands inside MULTI, not {}",
                    other.name()
                ))
            }
        };
        Step::Reply(answer)
    }

    /// Submits `command` (after validating it: a refused command takes no
    /// seqno).
    fn submit<N: Node>(&mut self, node: &Arc<N>, command: RedisCommand, exec: bool) -> Step {
        if let Err(error) = command.validate() {
            return Step::Reply(reply::error(format!("ERR {error}")));
        }
        let node = Arc::clone(node);
        let mut write: PendingWrite =
            Box::pin(async move { node.submit(Command::Redis(command), true).await });
        // Poll once now: the submission is queued at this first poll (the
        // `Node` contract queues at the call), so the writes of a pipeline
        // are queued in request order and share batches, instead of each
        // waiting for the previous one's commit to be polled at all.
        let mut context = Context::from_waker(Waker::noop());
        if let Poll::Ready(result) = write.as_mut().poll(&mut context) {
            write = Box::pin(std::future::ready(result));
        }
        Step::Write { write, exec }
    }

    fn watch<N: Node>(&mut self, node: &N, keys: Vec<Vec<u8>>) -> Reply {
        if self.watches.len() + keys.len() > RESP_WATCHED_KEYS_MAX {
            return reply::error(format!(
                "ERR at most RESP_WATCHED_KEYS_MAX ({RESP_WATCHED_KEYS_MAX}) keys may be watched"
            ));
        }
        for key in keys {
            let digest = node.read_committed(|view| watch_digest(view, &key));
            self.watches.push(Watch { key, digest });
        }
        reply::ok()
    }

    fn check_token<N: Node>(
        &mut self,
        shared: &Shared<N>,
        user: Option<&[u8]>,
        token: &[u8],
    ) -> bool {
        let Ok(token) = std::str::from_utf8(token) else {
            return false;
        };
        let hashes: Vec<[u8; 32]> = shared
            .config
            .users
            .iter()
            .filter(|candidate| user.is_none_or(|user| user == candidate.name.as_bytes()))
            .map(|candidate| candidate.token_sha256)
            .collect();
        let valid = token_matches(token, &hashes);
        if valid {
            self.authenticated = true;
        } else {
            tracing::info!(client = self.id, "RESP AUTH refused");
        }
        valid
    }

    fn hello<N: Node>(
        &mut self,
        shared: &Shared<N>,
        protocol: Option<Vec<u8>>,
        auth: Option<(Vec<u8>, Vec<u8>)>,
        name: Option<Vec<u8>>,
    ) -> Reply {
        if let Some(protocol) = protocol {
            match stele_frontends::redis::integer::parse_integer(&protocol) {
                Some(2) => {}
                Some(_) => {
                    return reply::error("NOPROTO sorry, this protocol version is not supported.")
                }
                None => {
                    return reply::error("ERR Protocol version is not an integer or out of range")
                }
            }
        }
        if let Some((user, token)) = auth {
            if !self.check_token(shared, Some(&user), &token) {
                return reply::error(WRONGPASS);
            }
        }
        if !self.authenticated {
            return reply::error(HELLO_NOAUTH);
        }
        if let Some(name) = name {
            if let error @ Reply::Error(_) = self.set_name(name) {
                return error;
            }
        }
        let role = if shared.node.state().role == "Primary" {
            "master"
        } else {
            "replica"
        };
        let text = |text: &str| Reply::Bulk(text.as_bytes().to_vec());
        Reply::Array(vec![
            text("server"),
            text("stele"),
            text("version"),
            text(info::REDIS_VERSION),
            text("proto"),
            Reply::Int(2),
            text("id"),
            Reply::Int(i64::try_from(self.id).unwrap_or(i64::MAX)),
            text("mode"),
            text("standalone"),
            text("role"),
            text(role),
            text("modules"),
            Reply::Array(Vec::new()),
        ])
    }

    fn set_name(&mut self, name: Vec<u8>) -> Reply {
        if name.len() > RESP_CLIENT_NAME_BYTES_MAX {
            return reply::error(format!(
                "ERR client names are at most RESP_CLIENT_NAME_BYTES_MAX ({RESP_CLIENT_NAME_BYTES_MAX}) bytes"
            ));
        }
        if name.iter().any(|byte| !(b'!'..=b'~').contains(byte)) {
            return reply::error(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            );
        }
        self.name = (!name.is_empty()).then_some(name);
        reply::ok()
    }
}

/// Refuses a read whose stored values add up to more than
/// [`RESP_REPLY_BYTES_MAX`], before anything is copied (the sizes are read
/// in place).
fn read_size<N: Node>(node: &N, op: &RedisOp) -> Result<usize, Reply> {
    let bytes: usize = node.read_committed(|view| {
        op.keys()
            .into_iter()
            .map(|key| {
                let name = key_name(key);
                let stored = |map| view.read(map, &name).map_or(0, <[u8]>::len);
                stored(STRINGS_MAP) + stored(HASHES_MAP)
            })
            .sum()
    });
    if bytes > RESP_REPLY_BYTES_MAX {
        return Err(reply::error(format!(
            "ERR the reply would take {bytes} bytes, over RESP_REPLY_BYTES_MAX ({RESP_REPLY_BYTES_MAX})"
        )));
    }
    Ok(bytes)
}

/// Budget for a reply of `bytes` from the shared buffer budget (waits at
/// most [`RESP_BUDGET_WAIT_MS`]).
async fn reserve_reply<N: Node>(shared: &Shared<N>, bytes: usize) -> Option<OwnedSemaphorePermit> {
    let units = u32::try_from(bytes.div_ceil(BUDGET_UNIT_BYTES)).ok()?;
    let budget = Arc::clone(&shared.buffer_budget);
    let wait = std::time::Duration::from_millis(RESP_BUDGET_WAIT_MS);
    tokio::time::timeout(wait, budget.acquire_many_owned(units))
        .await
        .ok()?
        .ok()
}

/// A read's reply, unless it is larger than [`RESP_REPLY_BYTES_MAX`].
fn bounded(answer: Reply) -> Reply {
    let bytes = reply::encoded_len(&answer);
    if bytes > RESP_REPLY_BYTES_MAX {
        return reply::error(format!(
            "ERR the reply would take {bytes} bytes, over RESP_REPLY_BYTES_MAX ({RESP_REPLY_BYTES_MAX})"
        ));
    }
    answer
}

/// Runs a walk of the key space on the blocking pool (it is O(keys)), at
/// most [`RESP_WALKS_IN_FLIGHT_MAX`] at once.
async fn walk<N: Node>(shared: &Shared<N>, work: impl FnOnce() -> Reply + Send + 'static) -> Reply {
    let Ok(turn) = Arc::clone(&shared.walks).acquire_owned().await else {
        return reply::error("ERR the node is stopping");
    };
    tokio::task::spawn_blocking(move || {
        let answer = work();
        drop(turn);
        answer
    })
    .await
    .unwrap_or_else(|error| reply::error(format!("ERR the key space walk failed: {error}")))
}

fn walk_time_max() -> std::time::Duration {
    std::time::Duration::from_millis(RESP_WALK_TIME_MAX_MS)
}

fn walk_too_long() -> Reply {
    reply::error(format!(
        "ERR the walk of the key space took over RESP_WALK_TIME_MAX_MS ({RESP_WALK_TIME_MAX_MS} ms): use a simpler MATCH pattern or a smaller COUNT"
    ))
}

/// The reply to an answered write: the op's reply, or EXEC's array (nil if
/// a watched key changed).
pub(crate) fn write_reply(
    result: Result<Submitted, NodeError>,
    exec: bool,
) -> (Option<TransactionId>, Reply) {
    let submitted = match result {
        Ok(submitted) => submitted,
        Err(error) => return (None, node_error(error)),
    };
    let id = Some(submitted.transaction_id);
    let answer = match submitted.outcome {
        Ok(response) => match replies_from_response(&response) {
            Some(replies) if exec => Reply::Array(replies),
            Some(replies) => replies
                .into_iter()
                .next()
                .unwrap_or_else(|| reply::error("ERR internal: a write answered no reply")),
            None => reply::error("ERR internal: the response is not a Redis reply"),
        },
        Err(AbortReason::WatchedKeyChanged { .. }) if exec => Reply::NilArray,
        Err(AbortReason::InvalidCommand { message }) => reply::error(format!("ERR {message}")),
        Err(other) => reply::error(format!("ERR the transaction aborted: {other:?}")),
    };
    (id, answer)
}

/// A node refusal as a Redis error, with the kind a Redis client expects.
pub(crate) fn node_error(error: NodeError) -> Reply {
    match error {
        NodeError::NotLeader { .. } => {
            reply::error("READONLY You can't write against a read only replica.")
        }
        NodeError::Busy(message) => reply::error(format!("BUSY {message}; retry later")),
        NodeError::InsufficientStorage(message) => {
            reply::error(format!("MISCONF Errors writing to the ledger: {message}"))
        }
        NodeError::Unavailable(message) => reply::error(format!("ERR unavailable: {message}")),
        NodeError::Internal(message) => reply::error(format!("ERR internal error: {message}")),
        NodeError::NotFound(message) | NodeError::BadRequest { message, .. } => {
            reply::error(format!("ERR {message}"))
        }
    }
}

/// Counts a connection for INFO while it lives.
pub(crate) struct Counted<N: Node>(pub(crate) Arc<Shared<N>>);

impl<N: Node> Drop for Counted<N> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}
