//! What the RESP tests (`resp.rs`, `resp_differential.rs`) share: redis-rs
//! connections to a node's RESP listener (or to a `redis-server`), commands made of
//! raw byte arguments, and replies read as they came (a server error is a value,
//! [`redis::Value::ServerError`], not a failed call, also inside an `EXEC` reply).
//!
//! Included by both test crates with `#[path]`; not every crate uses every helper.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use redis::{
    ConnectionAddr, ConnectionLike, IntoConnectionInfo, RedisConnectionInfo, RedisResult, Value,
};

/// Longest wait for one reply: a node that stopped answering fails the test.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A redis-rs client for `address`, authenticating with `AUTH [user] password`
/// when `password` is given.
pub fn client(address: SocketAddr, user: Option<&str>, password: Option<&str>) -> redis::Client {
    let mut settings = RedisConnectionInfo::default();
    if let Some(user) = user {
        settings = settings.set_username(user);
    }
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    let info = ConnectionAddr::Tcp(address.ip().to_string(), address.port())
        .into_connection_info()
        .unwrap()
        .set_redis_settings(settings);
    redis::Client::open(info).unwrap()
}

/// [`client`]'s connection, with bounded reads and writes; `Err` if it cannot
/// connect or authenticate.
pub fn try_connect(
    address: SocketAddr,
    user: Option<&str>,
    password: Option<&str>,
) -> RedisResult<redis::Connection> {
    let connection = client(address, user, password).get_connection_with_timeout(REPLY_TIMEOUT)?;
    connection.set_read_timeout(Some(REPLY_TIMEOUT))?;
    connection.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(connection)
}

/// A connection authenticated with `AUTH password`.
pub fn connect(address: SocketAddr, password: &str) -> redis::Connection {
    try_connect(address, None, Some(password))
        .unwrap_or_else(|error| panic!("cannot connect to {address} with a token: {error}"))
}

/// A connection that has not authenticated.
pub fn connect_anonymous(address: SocketAddr) -> redis::Connection {
    try_connect(address, None, None)
        .unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"))
}

/// A command of raw byte arguments (the first is its name).
pub fn command<A: AsRef<[u8]>>(args: &[A]) -> redis::Cmd {
    let mut command = redis::Cmd::new();
    for arg in args {
        command.arg(arg.as_ref());
    }
    command
}

/// Sends one command and returns its reply as it came; `Err` only for transport
/// and protocol failures (a server error is `Ok(Value::ServerError)`).
pub fn try_call<A: AsRef<[u8]>>(
    connection: &mut redis::Connection,
    args: &[A],
) -> RedisResult<Value> {
    connection.req_command(&command(args))
}

/// [`try_call`], failing the test on a transport failure.
pub fn call<A: AsRef<[u8]>>(connection: &mut redis::Connection, args: &[A]) -> Value {
    try_call(connection, args).unwrap_or_else(|error| {
        panic!(
            "{}: no reply: {error}",
            show_args(&args.iter().map(AsRef::as_ref).collect::<Vec<_>>())
        )
    })
}

/// `+OK`, as redis-rs reads it.
pub fn ok() -> Value {
    Value::Okay
}

/// A bulk string.
pub fn bulk(bytes: impl AsRef<[u8]>) -> Value {
    Value::BulkString(bytes.as_ref().to_vec())
}

/// A status reply other than `OK` (`+PONG`, `+QUEUED`, `+string`).
pub fn status(text: &str) -> Value {
    Value::SimpleString(text.to_owned())
}

/// An array of bulk strings.
pub fn bulks<B: AsRef<[u8]>>(items: &[B]) -> Value {
    Value::Array(items.iter().map(bulk).collect())
}

/// The whole error line (`CODE details`) of an error reply, `None` otherwise.
pub fn error_text(value: &Value) -> Option<String> {
    match value {
        Value::ServerError(error) => Some(match error.details() {
            Some(details) => format!("{} {details}", error.code()),
            None => error.code().to_owned(),
        }),
        _ => None,
    }
}

/// The error line of `value`, failing the test if it is not an error.
pub fn expect_error(value: &Value, what: &str) -> String {
    error_text(value).unwrap_or_else(|| panic!("{what}: expected an error, got {}", show(value)))
}

/// Arguments for failure messages: text where printable, `\xNN` escapes otherwise.
pub fn show_args(args: &[&[u8]]) -> String {
    args.iter()
        .map(|arg| show_bytes(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes as a quoted string with escapes.
pub fn show_bytes(bytes: &[u8]) -> String {
    const SHOWN_MAX: usize = 80;
    let mut text = String::from("\"");
    for &byte in bytes.iter().take(SHOWN_MAX) {
        text.extend(std::ascii::escape_default(byte).map(char::from));
    }
    if bytes.len() > SHOWN_MAX {
        text.push_str(&format!("...({} bytes)", bytes.len()));
    }
    text.push('"');
    text
}

/// A reply for failure messages.
pub fn show(value: &Value) -> String {
    match value {
        Value::Nil => "(nil)".to_owned(),
        Value::Int(number) => format!("(integer) {number}"),
        Value::BulkString(bytes) => show_bytes(bytes),
        Value::Okay => "+OK".to_owned(),
        Value::SimpleString(text) => format!("+{text}"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        Value::ServerError(_) => format!("-{}", error_text(value).unwrap_or_default()),
        other => format!("{other:?}"),
    }
}
