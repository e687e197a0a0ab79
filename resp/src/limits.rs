//! Every bound of the RESP front door, as named constants. Refusals name the
//! constant they hit, so a client's error message says which limit it crossed.

/// Most bytes one request (one RESP frame) may take. A frame not complete
/// within this many buffered bytes cannot be skipped (RESP has no frame
/// length), so the connection gets `-ERR Protocol error` and is closed: the one
/// refusal that closes. Above the largest valid command
/// (`stele_frontends::COMMAND_BYTES_MAX`) plus RESP framing.
pub const RESP_REQUEST_BYTES_MAX: usize = stele_frontends::COMMAND_BYTES_MAX + 64 * 1024;

/// Most bytes of one request before AUTH: enough for AUTH and HELLO, and
/// within one read chunk, so a client without credentials never makes the
/// node buffer more (Redis bounds unauthenticated requests the same way).
pub const RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX: usize = 4 * 1024;

/// How long a connection may stay unauthenticated (then it is closed): a
/// client without credentials cannot sit on a connection slot.
pub const RESP_AUTH_TIMEOUT_MS: u64 = 10_000;

/// Most arguments (the command name included) in one request.
pub const RESP_ARGS_MAX: usize = 2 * stele_frontends::redis::REDIS_KEYS_PER_TX_MAX + 2;

/// Largest single argument, in bytes (a key, a value, a field).
pub const RESP_BULK_BYTES_MAX: usize = stele_frontends::redis::REDIS_VALUE_BYTES_MAX;

/// Most requests of one connection answered late (writes waiting for their
/// commit). Beyond it the connection stops reading until the oldest is
/// answered: backpressure, not an error (a client pipelining deeper simply
/// waits; TCP holds the rest).
pub const RESP_PIPELINE_DEPTH_MAX: usize = 1024;

/// Most commands queued in one MULTI block (its EXEC is one transaction).
pub const RESP_MULTI_COMMANDS_MAX: usize = stele_frontends::redis::REDIS_OPS_PER_TX_MAX;

/// Most keys one WATCH set may hold (checked at EXEC in the transaction).
pub const RESP_WATCHED_KEYS_MAX: usize = 256;

/// Default cap on open RESP connections (`[resp] connections_max`); further
/// clients get `-ERR max number of clients reached` and are closed, as Redis
/// does at `maxclients`.
pub const RESP_CONNECTIONS_MAX_DEFAULT: usize = 1024;

/// Bytes of requests buffered by all connections together, beyond the first
/// [`RESP_READ_CHUNK_BYTES`] each: a connection whose request outgrows that
/// waits for budget (it stops reading) instead of growing the heap.
pub const RESP_BUFFERED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// What a connection reads at a time, and buffers without drawing on
/// [`RESP_BUFFERED_BYTES_MAX`].
pub const RESP_READ_CHUNK_BYTES: usize = 16 * 1024;

/// How long a connection may wait for buffer budget before it is closed with
/// an error (the node is swamped with large requests).
pub const RESP_BUDGET_WAIT_MS: u64 = 10_000;

/// Most keys `KEYS` answers; beyond, it answers an error that points to SCAN.
pub const RESP_KEYS_REPLY_MAX: usize = 10_000;

/// Largest `COUNT` of a SCAN step (larger counts are clamped to it).
pub const RESP_SCAN_COUNT_MAX: usize = 10_000;

/// Default idle timeout (`[resp] idle_timeout_ms`): a connection that sends
/// nothing for this long is closed (Redis's `timeout`; pools reconnect).
pub const RESP_IDLE_TIMEOUT_MS_DEFAULT: u64 = 600_000;

/// How long the rest of a started request may take to arrive, in all (a slow
/// sender trickling bytes holds a connection and a buffer).
pub const RESP_REQUEST_READ_TIMEOUT_MS: u64 = 30_000;

/// How long replies may wait for the client to read them: a client that
/// pipelines requests but never reads is closed after this, and its buffered
/// replies freed.
pub const RESP_WRITE_TIMEOUT_MS: u64 = 30_000;

/// How long one walk of the key space (SCAN, KEYS, DBSIZE) may run before
/// it stops with an error (a pathological MATCH pattern over long keys).
pub const RESP_WALK_TIME_MAX_MS: u64 = 5_000;

/// Walks of the key space running at once; further ones wait their turn (a
/// walk is O(keys) of CPU on the blocking pool).
pub const RESP_WALKS_IN_FLIGHT_MAX: usize = 2;

/// Longest MATCH or KEYS pattern, in bytes (the glob is O(key x pattern)).
pub const RESP_PATTERN_BYTES_MAX: usize = 256;

/// How long the TLS handshake may take.
pub const RESP_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Largest reply, in bytes: a read whose stored values add up to more (MGET
/// of many large values, a huge HGETALL) answers an error instead, before
/// copying anything. Replies over [`RESP_READ_CHUNK_BYTES`] also draw on
/// [`RESP_BUFFERED_BYTES_MAX`] until they are encoded.
pub const RESP_REPLY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Longest client name (`CLIENT SETNAME`).
pub const RESP_CLIENT_NAME_BYTES_MAX: usize = 256;

const _: () = assert!(RESP_BULK_BYTES_MAX < RESP_REQUEST_BYTES_MAX);
const _: () = assert!(RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX <= RESP_READ_CHUNK_BYTES);
const _: () = assert!(RESP_READ_CHUNK_BYTES < RESP_REQUEST_BYTES_MAX);
const _: () = assert!(RESP_REQUEST_BYTES_MAX <= RESP_BUFFERED_BYTES_MAX);
