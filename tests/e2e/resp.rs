//! End-to-end tests (RESP): the Redis-protocol front end of a real `stele start`,
//! driven by clients nobody here wrote: redis-rs, `redis-cli` and
//! `redis-benchmark` (Debian's `redis-tools`; `scripts/setup.sh` installs them).
//!
//! Every command of the issue, with the replies Redis 7.0 gives; binary-safe keys
//! and values; pipelines; MULTI/EXEC/DISCARD with WATCH conflicts from a second
//! connection (and redis-rs's own optimistic `transaction` helper under
//! contention); auth refusals; expiry refused; limits; `STELE.TXID`,
//! `STELE.STATUS` and `STELE.RECEIPT` (checked with `stele receipt verify`); writes
//! on a cluster follower answered `READONLY`; kill -9 under pipelined load with no
//! acknowledged write lost.
//!
//! The checks whose replies are plain Redis semantics (strings, hashes, SCAN/KEYS,
//! transactions, pipelines, binary safety, redis-cli, redis-benchmark) run against
//! a [`Target`]: a Stele node, or, with `STELE_RESP_TARGET=redis-server`, a
//! throwaway `redis-server --requirepass` instead, which checks the expectations
//! themselves against the real thing:
//!
//! ```text
//! STELE_RESP_TARGET=redis-server cargo test -p stele --test resp
//! ```
//!
//! (the Stele-only tests then still run against a node).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used)]

#[path = "resp_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use stele_history::{Receipt, TransactionId};
use stele_tests::cluster::{Cluster, ClusterOptions};
use stele_tests::redis_server::require_tool;
use stele_tests::{describe_output, run_cli, RedisServer, TestNode};
use support::{
    bulk, bulks, call, connect, connect_anonymous, error_text, expect_error, ok, show, status,
    try_call, try_connect,
};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// The token of the `redis-server --requirepass` target.
const REDIS_TOKEN: &str = "stele-resp-test-token";
/// Redis's answers to a command before `AUTH` and to a wrong token.
const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// The answer to a write on a follower (Redis replicas' own).
const READONLY: &str = "READONLY You can't write against a read only replica.";
/// What every refused expiry command or option says (the spec's wording).
const NO_EXPIRY: &str = "a ledger does not forget";
/// `stele_frontends::redis::REDIS_KEY_BYTES_MAX` and `REDIS_VALUE_BYTES_MAX`.
const REDIS_KEY_BYTES_MAX: usize = 1024;
const REDIS_VALUE_BYTES_MAX: usize = 512 * 1024;

// ---------------------------------------------------------------- targets

/// Where the Redis-compatible checks run (see the module documentation).
enum Target {
    Node {
        node: Box<TestNode>,
        _dir: tempfile::TempDir,
    },
    Redis(RedisServer),
}

impl Target {
    fn start() -> Target {
        match std::env::var("STELE_RESP_TARGET").as_deref() {
            Ok("redis-server") => {
                Target::Redis(RedisServer::start_with(&["--requirepass", REDIS_TOKEN]))
            }
            Ok("") | Ok("stele") | Err(_) => {
                let (node, dir) = start_node();
                Target::Node {
                    node: Box::new(node),
                    _dir: dir,
                }
            }
            Ok(other) => panic!("STELE_RESP_TARGET={other:?}: use stele or redis-server"),
        }
    }

    fn address(&self) -> SocketAddr {
        match self {
            Target::Node { node, .. } => node.resp_address(),
            Target::Redis(server) => server.address(),
        }
    }

    fn token(&self) -> String {
        match self {
            Target::Node { node, .. } => node.token().to_owned(),
            Target::Redis(_) => REDIS_TOKEN.to_owned(),
        }
    }

    fn connect(&self) -> redis::Connection {
        connect(self.address(), &self.token())
    }
}

/// A single node in a fresh folder (its RESP listener on `127.0.0.1:0`).
fn start_node() -> (TestNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(Path::new(BIN), &dir.path().join("data"));
    (node, dir)
}

/// Sends `args` and checks the reply.
#[track_caller]
fn expect<A: AsRef<[u8]>>(connection: &mut redis::Connection, args: &[A], want: Value) {
    let got = call(connection, args);
    assert_eq!(
        got,
        want,
        "{}: got {}, want {}",
        shown(args),
        show(&got),
        show(&want)
    );
}

/// Sends `args` and checks that the reply is exactly the error `want`.
#[track_caller]
fn expect_err<A: AsRef<[u8]>>(connection: &mut redis::Connection, args: &[A], want: &str) {
    let got = call(connection, args);
    assert_eq!(
        error_text(&got).as_deref(),
        Some(want),
        "{}: got {}",
        shown(args),
        show(&got)
    );
}

fn shown<A: AsRef<[u8]>>(args: &[A]) -> String {
    support::show_args(&args.iter().map(AsRef::as_ref).collect::<Vec<_>>())
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(number) => *number,
        other => panic!("expected an integer, got {}", show(other)),
    }
}

fn bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes.clone(),
        other => panic!("expected a bulk string, got {}", show(other)),
    }
}

fn text(value: &Value) -> String {
    String::from_utf8(bytes(value)).unwrap()
}

fn array(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => panic!("expected an array, got {}", show(other)),
    }
}

/// HGETALL's flat `[field, value, ...]` as a map (order is not compared: Redis
/// answers in insertion order, Stele sorted byte-wise).
fn pairs(value: &Value) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let items = array(value);
    assert!(
        items.len().is_multiple_of(2),
        "odd HGETALL reply {}",
        show(value)
    );
    items
        .chunks(2)
        .map(|pair| (bytes(&pair[0]), bytes(&pair[1])))
        .collect()
}

fn key_set(value: &Value) -> BTreeSet<Vec<u8>> {
    array(value).iter().map(bytes).collect()
}

// ---------------------------------------------------------------- connection

#[test]
fn connection_and_server_commands() {
    let (node, _dir) = start_node();
    let mut con = connect(node.resp_address(), node.token());
    expect(&mut con, &["PING"], status("PONG"));
    expect(&mut con, &["PING", "hello"], bulk("hello"));
    expect(&mut con, &["ECHO", "a b\r\nc"], bulk("a b\r\nc"));
    expect(&mut con, &["SELECT", "0"], ok());
    expect_error(&call(&mut con, &["SELECT", "1"]), "SELECT 1 (one database)");

    expect(&mut con, &["CLIENT", "SETNAME", "tester"], ok());
    expect(&mut con, &["CLIENT", "GETNAME"], bulk("tester"));
    let id = int(&call(&mut con, &["CLIENT", "ID"]));
    let mut other = connect(node.resp_address(), node.token());
    expect(&mut other, &["CLIENT", "GETNAME"], Value::Nil);
    let other_id = int(&call(&mut other, &["CLIENT", "ID"]));
    assert_ne!(id, other_id, "two connections with one CLIENT ID");

    let info = bytes(&call(&mut con, &["INFO"]));
    assert!(!info.is_empty(), "INFO is empty");
    expect(&mut con, &["DBSIZE"], Value::Int(0));
    expect(&mut con, &["SET", "a", "1"], ok());
    expect(&mut con, &["HSET", "h", "f", "v"], Value::Int(1));
    expect(&mut con, &["DBSIZE"], Value::Int(2));
    // redis-benchmark asks these: Stele answers its durability as Redis
    // would name it, and nothing for any other setting.
    expect(
        &mut con,
        &["CONFIG", "GET", "save"],
        Value::Array(vec![bulk("save"), bulk("")]),
    );
    expect(
        &mut con,
        &["CONFIG", "GET", "appendonly"],
        Value::Array(vec![bulk("appendonly"), bulk("yes")]),
    );
    expect(
        &mut con,
        &["CONFIG", "GET", "maxmemory"],
        Value::Array(vec![]),
    );
    assert!(int(&call(&mut con, &["COMMAND", "COUNT"])) >= 0);
    expect(&mut con, &["COMMAND", "DOCS"], Value::Array(vec![]));
    expect(&mut con, &["COMMAND", "DOCS", "get"], Value::Array(vec![]));

    expect(&mut con, &["QUIT"], ok());
    assert!(
        try_call(&mut con, &["PING"]).is_err(),
        "the connection still answers after QUIT"
    );
    // The other connection is untouched.
    expect(&mut other, &["GET", "a"], bulk("1"));
}

// ---------------------------------------------------------------- strings

#[test]
fn string_commands() {
    let target = Target::start();
    let mut con = target.connect();
    let c = &mut con;
    expect(c, &["GET", "s"], Value::Nil);
    expect(c, &["SET", "s", "v"], ok());
    expect(c, &["GET", "s"], bulk("v"));
    expect(c, &["SET", "s", "w", "NX"], Value::Nil);
    expect(c, &["SET", "s", "w", "XX"], ok());
    expect(c, &["GET", "s"], bulk("w"));
    expect(c, &["SET", "n", "v", "XX"], Value::Nil);
    expect(c, &["EXISTS", "n"], Value::Int(0));
    expect(c, &["SET", "n", "v", "NX"], ok());
    expect(c, &["SET", "s", "x", "GET"], bulk("w"));
    expect(c, &["GET", "s"], bulk("x"));
    expect(c, &["SET", "fresh", "y", "NX", "GET"], Value::Nil);
    expect(c, &["GET", "fresh"], bulk("y"));
    expect(c, &["SET", "s", "z", "XX", "GET"], bulk("x"));
    expect(c, &["SET", "s", "q", "NX", "GET"], bulk("z"));
    expect(c, &["GET", "s"], bulk("z"));
    expect(c, &["SET", "absent", "q", "XX", "GET"], Value::Nil);
    expect(c, &["EXISTS", "absent"], Value::Int(0));

    expect(c, &["SETNX", "s", "a"], Value::Int(0));
    expect(c, &["SETNX", "t", "a"], Value::Int(1));
    expect(c, &["GETSET", "t", "b"], bulk("a"));
    expect(c, &["GET", "t"], bulk("b"));
    expect(c, &["GETSET", "u", "c"], Value::Nil);
    expect(c, &["GET", "u"], bulk("c"));
    expect(c, &["GETDEL", "t"], bulk("b"));
    expect(c, &["GETDEL", "t"], Value::Nil);
    expect(c, &["EXISTS", "t"], Value::Int(0));

    expect(c, &["MSET", "a", "1", "b", "2", "c", "3"], ok());
    expect(
        c,
        &["MGET", "a", "b", "nope", "c"],
        Value::Array(vec![bulk("1"), bulk("2"), Value::Nil, bulk("3")]),
    );
    expect(c, &["MSETNX", "a", "9", "d", "4"], Value::Int(0));
    expect(c, &["GET", "d"], Value::Nil);
    expect(c, &["GET", "a"], bulk("1"));
    expect(c, &["MSETNX", "d", "4", "e", "5"], Value::Int(1));
    expect(c, &["MGET", "d", "e"], bulks(&["4", "5"]));
    // DEL counts each distinct key once; EXISTS counts repeats.
    expect(c, &["DEL", "a", "b", "nope", "a"], Value::Int(2));
    expect(c, &["EXISTS", "c", "c", "nope", "e"], Value::Int(3));
    expect(c, &["UNLINK", "c", "nope"], Value::Int(1));
    expect(c, &["EXISTS", "a", "b", "c"], Value::Int(0));

    expect(c, &["TYPE", "d"], status("string"));
    expect(c, &["TYPE", "nope"], status("none"));
    expect(c, &["STRLEN", "d"], Value::Int(1));
    expect(c, &["STRLEN", "nope"], Value::Int(0));
    expect(c, &["APPEND", "d", "xyz"], Value::Int(4));
    expect(c, &["APPEND", "new", "abc"], Value::Int(3));
    expect(c, &["GET", "d"], bulk("4xyz"));
    expect(c, &["GET", "new"], bulk("abc"));

    expect(c, &["INCR", "cnt"], Value::Int(1));
    expect(c, &["INCRBY", "cnt", "10"], Value::Int(11));
    expect(c, &["DECR", "cnt"], Value::Int(10));
    expect(c, &["DECRBY", "cnt", "20"], Value::Int(-10));
    expect(c, &["INCRBY", "cnt", "-5"], Value::Int(-15));
    expect(c, &["GET", "cnt"], bulk("-15"));
    expect(c, &["DECR", "neg"], Value::Int(-1));

    let not_integer = "ERR value is not an integer or out of range";
    let overflow = "ERR increment or decrement would overflow";
    expect_err(c, &["INCR", "d"], not_integer);
    expect_err(c, &["INCRBY", "cnt", "x"], not_integer);
    expect_err(c, &["INCRBY", "cnt", "1.5"], not_integer);
    // Redis's string2ll: no spaces, no `+`, no leading zeros, no `-0`.
    for odd in [" 1", "1 ", "+1", "01", "-0", "", "99999999999999999999"] {
        expect(c, &["SET", "odd", odd], ok());
        expect_err(c, &["INCR", "odd"], not_integer);
    }
    expect(c, &["SET", "big", "9223372036854775807"], ok());
    expect_err(c, &["INCR", "big"], overflow);
    expect(c, &["SET", "small", "-9223372036854775808"], ok());
    expect_err(c, &["DECR", "small"], overflow);
    // Redis: `ERR decrement would overflow` (its negation overflows); any ERR will do.
    let text = expect_error(
        &call(c, &["DECRBY", "cnt", "-9223372036854775808"]),
        "DECRBY i64::MIN",
    );
    assert!(text.starts_with("ERR "), "{text}");
    expect(c, &["GET", "cnt"], bulk("-15"));
    expect(c, &["GET", "big"], bulk("9223372036854775807"));

    // A hash key: string reads answer WRONGTYPE, MGET nil, SET overwrites it.
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    expect(c, &["HSET", "h", "f", "v"], Value::Int(1));
    expect(c, &["TYPE", "h"], status("hash"));
    for args in [
        vec!["GET", "h"],
        vec!["STRLEN", "h"],
        vec!["APPEND", "h", "x"],
        vec!["INCR", "h"],
        vec!["GETDEL", "h"],
        vec!["GETSET", "h", "x"],
        vec!["SET", "h", "x", "GET"],
    ] {
        expect_err(c, &args, wrongtype);
    }
    expect(
        c,
        &["MGET", "h", "d"],
        Value::Array(vec![Value::Nil, bulk("4xyz")]),
    );
    expect(c, &["EXISTS", "h"], Value::Int(1));
    expect(c, &["SET", "h", "now a string"], ok());
    expect(c, &["TYPE", "h"], status("string"));
    expect(c, &["GET", "h"], bulk("now a string"));
    expect(c, &["MSET", "h", "again"], ok());
    expect(c, &["GET", "h"], bulk("again"));
}

// ---------------------------------------------------------------- hashes

#[test]
fn hash_commands() {
    let target = Target::start();
    let mut con = target.connect();
    let c = &mut con;
    expect(c, &["HSET", "h", "f1", "v1", "f2", "v2"], Value::Int(2));
    expect(c, &["HSET", "h", "f1", "x", "f3", "y"], Value::Int(1));
    expect(c, &["HGET", "h", "f1"], bulk("x"));
    expect(c, &["HGET", "h", "nope"], Value::Nil);
    expect(c, &["HGET", "missing", "f"], Value::Nil);
    let all = pairs(&call(c, &["HGETALL", "h"]));
    let want: BTreeMap<Vec<u8>, Vec<u8>> = [("f1", "x"), ("f2", "v2"), ("f3", "y")]
        .iter()
        .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    assert_eq!(all, want);
    expect(c, &["HGETALL", "missing"], Value::Array(vec![]));
    expect(c, &["HEXISTS", "h", "f2"], Value::Int(1));
    expect(c, &["HEXISTS", "h", "nope"], Value::Int(0));
    expect(c, &["HEXISTS", "missing", "f"], Value::Int(0));
    expect(c, &["HLEN", "h"], Value::Int(3));
    expect(c, &["HLEN", "missing"], Value::Int(0));
    expect(
        c,
        &["HMGET", "h", "f1", "nope", "f3"],
        Value::Array(vec![bulk("x"), Value::Nil, bulk("y")]),
    );
    expect(
        c,
        &["HMGET", "missing", "a", "b"],
        Value::Array(vec![Value::Nil, Value::Nil]),
    );
    expect(c, &["HINCRBY", "h", "n", "5"], Value::Int(5));
    expect(c, &["HINCRBY", "h", "n", "-7"], Value::Int(-2));
    expect(c, &["HGET", "h", "n"], bulk("-2"));
    expect(c, &["HINCRBY", "fresh", "n", "3"], Value::Int(3));
    expect_err(
        c,
        &["HINCRBY", "h", "f1", "1"],
        "ERR hash value is not an integer",
    );
    expect_err(
        c,
        &["HINCRBY", "h", "n", "x"],
        "ERR value is not an integer or out of range",
    );
    expect(
        c,
        &["HSET", "h2", "n", "9223372036854775807"],
        Value::Int(1),
    );
    expect_err(
        c,
        &["HINCRBY", "h2", "n", "1"],
        "ERR increment or decrement would overflow",
    );

    expect(c, &["HDEL", "h", "f1", "nope"], Value::Int(1));
    expect(c, &["HLEN", "h"], Value::Int(3));
    // Removing the last field removes the key.
    expect(c, &["HDEL", "h", "f2", "f3", "n"], Value::Int(3));
    expect(c, &["EXISTS", "h"], Value::Int(0));
    expect(c, &["TYPE", "h"], status("none"));
    expect(c, &["HDEL", "h", "f"], Value::Int(0));

    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    expect(c, &["SET", "s", "v"], ok());
    for args in [
        vec!["HSET", "s", "f", "v"],
        vec!["HGET", "s", "f"],
        vec!["HGETALL", "s"],
        vec!["HDEL", "s", "f"],
        vec!["HEXISTS", "s", "f"],
        vec!["HLEN", "s"],
        vec!["HMGET", "s", "f"],
        vec!["HINCRBY", "s", "f", "1"],
    ] {
        expect_err(c, &args, wrongtype);
    }
    expect(c, &["GET", "s"], bulk("v"));
}

// ---------------------------------------------------------------- SCAN, KEYS

#[test]
fn scan_visits_every_key_once_and_keys_lists_them() {
    let target = Target::start();
    let mut con = target.connect();
    let mut want = BTreeSet::new();
    let mut mset: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
    for index in 0..250 {
        let key = format!("scan:{index}");
        mset.push(key.clone().into_bytes());
        mset.push(b"v".to_vec());
        want.insert(key.into_bytes());
    }
    expect(&mut con, &mset, ok());
    for index in 0..5 {
        let key = format!("hash:{index}");
        expect(&mut con, &["HSET", &key, "f", "v"], Value::Int(1));
        want.insert(key.into_bytes());
    }
    expect(&mut con, &["DBSIZE"], Value::Int(255));

    for count in [None, Some("1"), Some("17"), Some("1000")] {
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut cursor = "0".to_owned();
        for round in 0.. {
            assert!(round < 2_000, "SCAN did not come back to cursor 0");
            let mut args = vec!["SCAN".to_owned(), cursor.clone()];
            if let Some(count) = count {
                args.extend(["COUNT".to_owned(), count.to_owned()]);
            }
            let reply = array(&call(&mut con, &args));
            assert_eq!(reply.len(), 2, "SCAN reply {reply:?}");
            cursor = text(&reply[0]);
            assert!(cursor.parse::<u64>().is_ok(), "cursor {cursor:?}");
            seen.extend(array(&reply[1]).iter().map(bytes));
            if cursor == "0" {
                break;
            }
        }
        let distinct: BTreeSet<Vec<u8>> = seen.iter().cloned().collect();
        assert_eq!(
            distinct.len(),
            seen.len(),
            "SCAN (COUNT {count:?}) returned a key twice"
        );
        assert_eq!(distinct, want, "SCAN (COUNT {count:?})");
    }

    assert_eq!(key_set(&call(&mut con, &["KEYS", "*"])), want);
    let prefix: BTreeSet<Vec<u8>> = want
        .iter()
        .filter(|key| key.starts_with(b"scan:1"))
        .cloned()
        .collect();
    assert_eq!(key_set(&call(&mut con, &["KEYS", "scan:1*"])), prefix);
    assert_eq!(
        key_set(&call(&mut con, &["KEYS", "hash:?"])).len(),
        5,
        "KEYS hash:?"
    );
    expect(&mut con, &["KEYS", "nothing*"], Value::Array(vec![]));
}

// ---------------------------------------------------------------- transactions

#[test]
fn multi_exec_discard_watch() {
    let target = Target::start();
    let mut con = target.connect();
    let mut other = target.connect();
    let queued = || status("QUEUED");
    let c = &mut con;

    expect(c, &["MULTI"], ok());
    expect(c, &["SET", "t:a", "1"], queued());
    expect(c, &["INCR", "t:a"], queued());
    expect(c, &["GET", "t:a"], queued());
    expect(c, &["HSET", "t:h", "f", "v"], queued());
    expect(
        c,
        &["EXEC"],
        Value::Array(vec![ok(), Value::Int(2), bulk("2"), Value::Int(1)]),
    );

    expect(c, &["MULTI"], ok());
    expect(c, &["SET", "t:b", "1"], queued());
    expect(c, &["DISCARD"], ok());
    expect(c, &["GET", "t:b"], Value::Nil);
    expect_error(&call(c, &["EXEC"]), "EXEC without MULTI");
    expect_error(&call(c, &["DISCARD"]), "DISCARD without MULTI");

    // A runtime error inside the block answers for that command only.
    expect(c, &["MULTI"], ok());
    expect(c, &["SET", "t:c", "text"], queued());
    expect(c, &["INCR", "t:c"], queued());
    expect(c, &["SET", "t:d", "done"], queued());
    let replies = array(&call(c, &["EXEC"]));
    assert_eq!(replies.len(), 3);
    assert_eq!(replies[0], ok());
    assert_eq!(
        error_text(&replies[1]).as_deref(),
        Some("ERR value is not an integer or out of range")
    );
    assert_eq!(replies[2], ok());
    expect(c, &["GET", "t:d"], bulk("done"));

    // WATCH: a change by another connection makes EXEC answer nil, and nothing
    // of the block is applied.
    expect(c, &["SET", "t:w", "start"], ok());
    expect(c, &["WATCH", "t:w"], ok());
    expect(&mut other, &["SET", "t:w", "changed"], ok());
    expect(c, &["MULTI"], ok());
    expect(c, &["SET", "t:w", "mine"], queued());
    expect(c, &["SET", "t:side", "effect"], queued());
    expect(c, &["EXEC"], Value::Nil);
    expect(c, &["GET", "t:w"], bulk("changed"));
    expect(c, &["GET", "t:side"], Value::Nil);

    // The watch ends with EXEC: the next block runs.
    expect(c, &["MULTI"], ok());
    expect(c, &["SET", "t:w", "mine"], queued());
    expect(c, &["EXEC"], Value::Array(vec![ok()]));

    // UNWATCH forgets the watched keys.
    expect(c, &["WATCH", "t:w"], ok());
    expect(c, &["UNWATCH"], ok());
    expect(&mut other, &["SET", "t:w", "again"], ok());
    expect(c, &["MULTI"], ok());
    expect(c, &["GET", "t:w"], queued());
    expect(c, &["EXEC"], Value::Array(vec![bulk("again")]));

    // A watched absent key created meanwhile; a watched hash changed meanwhile.
    expect(c, &["WATCH", "t:absent", "t:h"], ok());
    expect(&mut other, &["SET", "t:absent", "now"], ok());
    expect(c, &["MULTI"], ok());
    expect(c, &["SET", "t:x", "1"], queued());
    expect(c, &["EXEC"], Value::Nil);
    expect(c, &["WATCH", "t:h"], ok());
    expect(&mut other, &["HSET", "t:h", "g", "w"], Value::Int(1));
    expect(c, &["MULTI"], ok());
    expect(c, &["SET", "t:x", "1"], queued());
    expect(c, &["EXEC"], Value::Nil);
    expect(c, &["EXISTS", "t:x"], Value::Int(0));
    // DISCARD ends a watch too.
    expect(c, &["WATCH", "t:h"], ok());
    expect(c, &["MULTI"], ok());
    expect(c, &["DISCARD"], ok());
    expect(&mut other, &["HSET", "t:h", "g", "changed"], Value::Int(0));
    expect(c, &["MULTI"], ok());
    expect(c, &["SET", "t:x", "1"], queued());
    expect(c, &["EXEC"], Value::Array(vec![ok()]));

    // redis-rs's own pipeline transaction (MULTI ... EXEC).
    let replies: Vec<Value> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("t:p")
        .arg("5")
        .cmd("INCRBY")
        .arg("t:p")
        .arg("5")
        .query(c)
        .unwrap();
    assert_eq!(replies, vec![ok(), Value::Int(10)]);
}

#[test]
fn watch_transactions_of_a_client_library_under_contention() {
    const THREADS: usize = 2;
    const INCREMENTS: i64 = 25;
    let target = Target::start();
    let address = target.address();
    let token = target.token();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let token = token.clone();
            scope.spawn(move || {
                let mut con = connect(address, &token);
                for _ in 0..INCREMENTS {
                    // redis-rs's WATCH/GET/MULTI/SET/EXEC loop, retried on a nil EXEC.
                    let _: () = redis::transaction(&mut con, &["t:counter"], |con, pipe| {
                        let value: Option<i64> = redis::cmd("GET").arg("t:counter").query(con)?;
                        pipe.cmd("SET")
                            .arg("t:counter")
                            .arg(value.unwrap_or(0) + 1)
                            .ignore()
                            .query(con)
                    })
                    .unwrap();
                }
            });
        }
    });
    let mut con = target.connect();
    expect(
        &mut con,
        &["GET", "t:counter"],
        bulk((THREADS as i64 * INCREMENTS).to_string()),
    );
}

// ---------------------------------------------------------------- binary safety, pipelines

#[test]
fn keys_and_values_are_binary_safe() {
    let target = Target::start();
    let mut con = target.connect();
    let c = &mut con;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    // Not UTF-8; a UTF-8 key that looks like Stele's encoding of one; plain text
    // that looks like it too; the empty key; NUL and CR LF inside.
    let keys: Vec<Vec<u8>> = vec![
        vec![0xff],
        "\u{0}hex:ff".as_bytes().to_vec(),
        b"hex:ff".to_vec(),
        vec![],
        b"a\x00b\r\nc".to_vec(),
        every_byte.clone(),
        "clé ✓".as_bytes().to_vec(),
    ];
    for (index, key) in keys.iter().enumerate() {
        let mut value = every_byte.clone();
        value.push(u8::try_from(index).unwrap());
        expect(c, &[b"SET".as_slice(), key, &value], ok());
    }
    for (index, key) in keys.iter().enumerate() {
        let mut value = every_byte.clone();
        value.push(u8::try_from(index).unwrap());
        expect(c, &[b"GET".as_slice(), key], bulk(&value));
        expect(c, &[b"STRLEN".as_slice(), key], Value::Int(257));
    }
    let listed = key_set(&call(c, &["KEYS", "*"]));
    assert_eq!(listed, keys.iter().cloned().collect::<BTreeSet<_>>());
    expect(c, &["DBSIZE"], Value::Int(keys.len() as i64));

    // Hash fields and values too.
    let field = vec![0x80, 0x00, 0xc3];
    expect(
        c,
        &[b"HSET".as_slice(), &[0xfe], &field, &every_byte],
        Value::Int(1),
    );
    expect(c, &[b"HGET".as_slice(), &[0xfe], &field], bulk(&every_byte));
    let all = pairs(&call(c, &[b"HGETALL".as_slice(), &[0xfe]]));
    assert_eq!(all, BTreeMap::from([(field.clone(), every_byte.clone())]));
    expect(
        c,
        &[b"APPEND".as_slice(), &[0xff], &[0x00, 0xff]],
        Value::Int(259),
    );
    expect(c, &[b"DEL".as_slice(), &[0xff], &[0xfe]], Value::Int(2));
    expect(c, &["GET", "\u{0}hex:ff"], {
        let mut value = every_byte.clone();
        value.push(1);
        bulk(&value)
    });
}

#[test]
fn a_pipeline_of_a_thousand_commands_answers_in_order() {
    let target = Target::start();
    let mut con = target.connect();
    let mut pipe = redis::pipe();
    for _ in 0..1000 {
        pipe.cmd("INCR").arg("p:n");
    }
    pipe.cmd("GET").arg("p:n");
    let replies: Vec<Value> = pipe.query(&mut con).unwrap();
    assert_eq!(replies.len(), 1001);
    for (index, reply) in replies[..1000].iter().enumerate() {
        assert_eq!(*reply, Value::Int(index as i64 + 1), "reply {index}");
    }
    assert_eq!(replies[1000], bulk("1000"));

    // Mixed reads and writes of several keys, interleaved, keep their order.
    let mut pipe = redis::pipe();
    for index in 0..200 {
        pipe.cmd("SET").arg(format!("p:{}", index % 7)).arg(index);
        pipe.cmd("GET").arg(format!("p:{}", index % 7));
    }
    let replies: Vec<Value> = pipe.query(&mut con).unwrap();
    for index in 0..200 {
        assert_eq!(replies[2 * index], ok());
        assert_eq!(
            replies[2 * index + 1],
            bulk(index.to_string()),
            "GET {index}"
        );
    }
}

// ---------------------------------------------------------------- auth

#[test]
fn auth_is_required_and_checked() {
    let (node, _dir) = start_node();
    let address = node.resp_address();
    let token = node.token().to_owned();

    let mut con = connect_anonymous(address);
    for args in [
        vec!["PING"],
        vec!["GET", "k"],
        vec!["SET", "k", "v"],
        vec!["MULTI"],
        vec!["STELE.TXID"],
        vec!["CLIENT", "ID"],
    ] {
        expect_err(&mut con, &args, NOAUTH);
    }
    expect_err(&mut con, &["AUTH", "not-the-token"], WRONGPASS);
    expect_err(&mut con, &["PING"], NOAUTH);
    // RESP2 only: HELLO 3 is refused, before and after AUTH.
    expect_error_kind(&call(&mut con, &["HELLO", "3"]), "NOPROTO");
    expect(&mut con, &["AUTH", &token], ok());
    expect(&mut con, &["PING"], status("PONG"));
    expect(&mut con, &["SET", "k", "v"], ok());
    expect_error_kind(&call(&mut con, &["HELLO", "3"]), "NOPROTO");
    let hello = call(&mut con, &["HELLO", "2"]);
    assert!(error_text(&hello).is_none(), "HELLO 2: {}", show(&hello));
    expect(&mut con, &["GET", "k"], bulk("v"));

    // AUTH <user> <token>.
    let mut con = connect_anonymous(address);
    expect_err(&mut con, &["AUTH", "default", "not-the-token"], WRONGPASS);
    expect(&mut con, &["AUTH", "default", &token], ok());
    expect(&mut con, &["GET", "k"], bulk("v"));

    // QUIT needs no AUTH.
    let mut con = connect_anonymous(address);
    expect(&mut con, &["QUIT"], ok());

    // redis-rs with the token, with a user name, and with a wrong token.
    let mut con = try_connect(address, Some("default"), Some(&token)).unwrap();
    expect(&mut con, &["GET", "k"], bulk("v"));
    assert!(try_connect(address, None, Some("wrong")).is_err());
}

#[track_caller]
fn expect_error_kind(value: &Value, kind: &str) {
    let text = expect_error(value, kind);
    assert_eq!(text.split(' ').next(), Some(kind), "{text}");
}

// ---------------------------------------------------------------- Stele semantics

#[test]
fn expiry_is_refused_because_a_ledger_does_not_forget() {
    let (node, _dir) = start_node();
    let mut con = connect(node.resp_address(), node.token());
    expect(&mut con, &["SET", "k", "v"], ok());
    for args in [
        vec!["SET", "k", "w", "EX", "10"],
        vec!["SET", "k", "w", "PX", "10000"],
        vec!["SET", "k", "w", "EXAT", "4102444800"],
        vec!["SET", "k", "w", "PXAT", "4102444800000"],
        vec!["SET", "k", "w", "KEEPTTL"],
        vec!["SETEX", "k", "10", "w"],
        vec!["PSETEX", "k", "10000", "w"],
        vec!["EXPIRE", "k", "10"],
        vec!["PEXPIRE", "k", "10000"],
        vec!["EXPIREAT", "k", "4102444800"],
        vec!["PEXPIREAT", "k", "4102444800000"],
        vec!["TTL", "k"],
        vec!["PTTL", "k"],
    ] {
        let text = expect_error(&call(&mut con, &args), &args.join(" "));
        assert!(
            text.contains(NO_EXPIRY),
            "{}: {text:?} does not say {NO_EXPIRY:?}",
            args.join(" ")
        );
    }
    // Nothing was written by the refused commands.
    expect(&mut con, &["GET", "k"], bulk("v"));
}

#[test]
fn limits_answer_errors_and_an_oversized_request_closes_the_connection() {
    let (node, _dir) = start_node();
    let address = node.resp_address();
    let mut con = connect(address, node.token());

    let long_key = vec![b'k'; REDIS_KEY_BYTES_MAX + 1];
    expect_error(
        &call(&mut con, &[b"SET".as_slice(), &long_key, b"v"]),
        "SET with an over-long key",
    );
    expect(&mut con, &["PING"], status("PONG"));
    let key = vec![b'k'; REDIS_KEY_BYTES_MAX];
    expect(&mut con, &[b"SET".as_slice(), &key, b"v"], ok());
    expect(&mut con, &[b"GET".as_slice(), &key], bulk("v"));

    let long_value = vec![b'v'; REDIS_VALUE_BYTES_MAX + 1];
    let text = expect_error(
        &call(&mut con, &[b"SET".as_slice(), b"big", &long_value]),
        "SET with an over-long value",
    );
    assert!(text.starts_with("ERR"), "{text}");
    expect(&mut con, &["EXISTS", "big"], Value::Int(0));
    expect(&mut con, &["APPEND", "big", "x"], Value::Int(1));
    expect(&mut con, &["PING"], status("PONG"));
    let value = vec![b'v'; REDIS_VALUE_BYTES_MAX];
    expect(&mut con, &[b"SET".as_slice(), b"big", &value], ok());
    expect_error(
        &call(&mut con, &["APPEND", "big", "x"]),
        "APPEND beyond the value limit",
    );
    expect(
        &mut con,
        &["STRLEN", "big"],
        Value::Int(REDIS_VALUE_BYTES_MAX as i64),
    );

    // A request larger than any limit: the connection is closed (with a protocol
    // error first, when the client still reads it); the node serves on.
    let outcome = send_oversized_request(address, node.token());
    assert!(
        outcome.closed,
        "the connection stayed open after {} bytes: {outcome:?}",
        outcome.sent
    );
    if !outcome.received.is_empty() {
        let received = String::from_utf8_lossy(&outcome.received);
        assert!(
            received.starts_with("-ERR Protocol error"),
            "the node answered {received:?}"
        );
    }
    expect(&mut con, &["PING"], status("PONG"));
    let mut fresh = connect(address, node.token());
    expect(
        &mut fresh,
        &["STRLEN", "big"],
        Value::Int(REDIS_VALUE_BYTES_MAX as i64),
    );
}

#[derive(Debug)]
struct Oversized {
    /// What the node sent after `+OK` (of AUTH).
    received: Vec<u8>,
    /// Whether the node closed the connection (EOF or reset).
    closed: bool,
    /// Bytes of the bulk string sent before the node closed.
    sent: usize,
}

/// Authenticates on a raw TCP connection, then sends `ECHO` with a bulk string
/// announced as 600 MiB, 1 MiB at a time, until the node closes the connection
/// (or 256 MiB were sent).
fn send_oversized_request(address: SocketAddr, token: &str) -> Oversized {
    const ANNOUNCED: usize = 600 << 20;
    const SENT_MAX: usize = 256 << 20;
    const CHUNK: usize = 1 << 20;
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(support::REPLY_TIMEOUT))
        .unwrap();
    stream
        .set_write_timeout(Some(support::REPLY_TIMEOUT))
        .unwrap();
    let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{token}\r\n", token.len());
    stream.write_all(auth.as_bytes()).unwrap();
    let mut ok_line = [0u8; 5];
    stream.read_exact(&mut ok_line).unwrap();
    assert_eq!(&ok_line, b"+OK\r\n");

    let closed = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let mut stream = stream.try_clone().unwrap();
        let (closed, received) = (Arc::clone(&closed), Arc::clone(&received));
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(count) => received.lock().unwrap().extend_from_slice(&buffer[..count]),
                }
            }
            closed.store(true, Ordering::SeqCst);
        })
    };
    let head = format!("*2\r\n$4\r\nECHO\r\n${ANNOUNCED}\r\n");
    let mut sent = 0;
    if stream.write_all(head.as_bytes()).is_ok() {
        let chunk = vec![b'x'; CHUNK];
        while sent < SENT_MAX && !closed.load(Ordering::SeqCst) {
            if stream.write_all(&chunk).is_err() {
                break;
            }
            sent += CHUNK;
        }
    }
    // Either the node closed it, or the reader times out (REPLY_TIMEOUT) on an
    // open connection and reports it closed too: `sent == SENT_MAX` then tells.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    reader.join().unwrap();
    let received = received.lock().unwrap().clone();
    Oversized {
        closed: closed.load(Ordering::SeqCst) && sent < SENT_MAX,
        received,
        sent,
    }
}

#[test]
fn stele_txid_status_and_a_verifiable_receipt() {
    let (node, dir) = start_node();
    let mut con = connect(node.resp_address(), node.token());
    expect(&mut con, &["STELE.TXID"], Value::Nil);
    expect(&mut con, &["SET", "k", "v"], ok());
    let first: TransactionId = text(&call(&mut con, &["STELE.TXID"])).parse().unwrap();
    // Reads leave it alone.
    expect(&mut con, &["GET", "k"], bulk("v"));
    expect(&mut con, &["STELE.TXID"], bulk(first.to_string()));
    expect(
        &mut con,
        &["STELE.STATUS", &first.to_string()],
        status("Committed"),
    );
    assert_eq!(node.tx_status(first), "Committed");

    // A MULTI block is one transaction, after the first.
    expect(&mut con, &["MULTI"], ok());
    expect(&mut con, &["SET", "a", "1"], status("QUEUED"));
    expect(&mut con, &["HSET", "h", "f", "v"], status("QUEUED"));
    call(&mut con, &["EXEC"]);
    let block: TransactionId = text(&call(&mut con, &["STELE.TXID"])).parse().unwrap();
    assert!(block > first, "{block} after {first}");
    // Another connection has its own last write.
    let mut other = connect(node.resp_address(), node.token());
    expect(&mut other, &["STELE.TXID"], Value::Nil);

    let unknown = format!("{}.{}", block.view, block.seqno + 1_000_000);
    expect(&mut con, &["STELE.STATUS", &unknown], status("Unknown"));
    expect_error(
        &call(&mut con, &["STELE.STATUS", "not-an-id"]),
        "STELE.STATUS of a malformed id",
    );

    let receipt_json = bytes(&call(&mut con, &["STELE.RECEIPT", &block.to_string()]));
    let receipt: Receipt = serde_json::from_slice(&receipt_json).unwrap();
    assert_eq!(receipt.transaction_id, block);
    receipt.verify(&node.public_key()).unwrap();
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, &receipt_json).unwrap();
    let key = node.public_key_hex();
    let output = run_cli(
        Path::new(BIN),
        &["receipt", "verify", file.to_str().unwrap(), "--key", &key],
    );
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&format!("transaction {block}")),
        "{}",
        describe_output(&output)
    );
}

// ---------------------------------------------------------------- cluster

#[test]
fn a_follower_answers_readonly_to_writes_and_serves_reads() {
    let cluster = Cluster::start(Path::new(BIN), &ClusterOptions::default());
    let leader = cluster.leader(&cluster.all());
    let follower = (leader + 1) % cluster.nodes.len();
    let token = cluster.nodes[leader].token().to_owned();
    let mut on_leader = connect(cluster.nodes[leader].resp_address(), &token);
    let mut on_follower = connect(cluster.nodes[follower].resp_address(), &token);

    expect(&mut on_leader, &["SET", "k", "v"], ok());
    let id: TransactionId = text(&call(&mut on_leader, &["STELE.TXID"]))
        .parse()
        .unwrap();
    for args in [
        vec!["SET", "k", "w"],
        vec!["INCR", "n"],
        vec!["HSET", "h", "f", "v"],
        vec!["DEL", "k"],
    ] {
        expect_err(&mut on_follower, &args, READONLY);
    }
    cluster.wait_committed(follower, id);
    expect(&mut on_follower, &["GET", "k"], bulk("v"));
    expect(
        &mut on_follower,
        &["STELE.STATUS", &id.to_string()],
        status("Committed"),
    );
    expect(&mut on_leader, &["GET", "k"], bulk("v"));
}

// ---------------------------------------------------------------- crash

#[test]
fn kill9_loses_no_acknowledged_write() {
    const CLIENTS: usize = 4;
    const PIPELINE: usize = 16;
    const ACKED_BEFORE_KILL: usize = 2_000;
    const POLLS_MAX: usize = 6_000;
    let (mut node, _dir) = start_node();
    let address = node.resp_address();
    let token = node.token().to_owned();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (acked, count, problems) = (
                Arc::clone(&acked),
                Arc::clone(&count),
                Arc::clone(&problems),
            );
            let token = token.clone();
            std::thread::spawn(move || {
                let mut con = connect(address, &token);
                for round in 0.. {
                    let writes: Vec<(String, String)> = (0..PIPELINE)
                        .map(|index| {
                            let n = round * PIPELINE + index;
                            (format!("crash:{client}:{n}"), format!("value {n}"))
                        })
                        .collect();
                    let mut pipe = redis::pipe();
                    for (key, value) in &writes {
                        pipe.cmd("SET").arg(key).arg(value);
                    }
                    match pipe.query::<Vec<Value>>(&mut con) {
                        Ok(replies) => {
                            if replies.iter().any(|reply| *reply != ok()) {
                                problems.lock().unwrap().push(format!("{replies:?}"));
                                return;
                            }
                            acked.lock().unwrap().extend(writes);
                            count.fetch_add(PIPELINE, Ordering::SeqCst);
                        }
                        // The node is gone.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    for _ in 0..POLLS_MAX {
        if count.load(Ordering::SeqCst) >= ACKED_BEFORE_KILL || !problems.lock().unwrap().is_empty()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        count.load(Ordering::SeqCst) > 0,
        "no write acknowledged before the kill"
    );
    node.kill9();
    for client in clients {
        client.join().unwrap();
    }
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "unexpected replies: {problems:?}");

    node.restart();
    let mut con = connect(node.resp_address(), node.token());
    let acked = acked.lock().unwrap().clone();
    let mut lost = Vec::new();
    for chunk in acked.chunks(500) {
        let mut args = vec!["MGET".to_owned()];
        args.extend(chunk.iter().map(|(key, _)| key.clone()));
        let values = array(&call(&mut con, &args));
        for ((key, value), got) in chunk.iter().zip(values) {
            if got != bulk(value) {
                lost.push(format!("{key}: {}", show(&got)));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
}

// ---------------------------------------------------------------- redis-cli, redis-benchmark

/// Runs `redis-cli -p PORT -a TOKEN --no-auth-warning ARGS` with `stdin`.
fn redis_cli(target: &Target, args: &[&str], stdin: &str) -> String {
    let cli = require_tool("redis-cli");
    let port = target.address().port().to_string();
    let token = target.token();
    let mut child = Command::new(cli)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-a",
            &token,
            "--no-auth-warning",
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "redis-cli {args:?}: {}",
        describe_output(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_scripted_redis_cli_session() {
    let target = Target::start();
    assert_eq!(redis_cli(&target, &["set", "k", "v"], ""), "OK\n");
    assert_eq!(redis_cli(&target, &["get", "k"], ""), "v\n");
    assert_eq!(redis_cli(&target, &["incrby", "n", "41"], ""), "41\n");
    assert_eq!(redis_cli(&target, &["hset", "h", "f", "x"], ""), "1\n");
    assert_eq!(redis_cli(&target, &["get", "missing"], ""), "\n");
    // A session on standard input (one connection): MULTI/EXEC, then reads.
    let session = "MULTI\nSET a 1\nINCR a\nINCR n\nEXEC\nGET a\nHGET h f\nTYPE h\nDBSIZE\n";
    assert_eq!(
        redis_cli(&target, &[], session),
        "OK\nQUEUED\nQUEUED\nQUEUED\nOK\n2\n42\n2\nx\nhash\n4\n"
    );
    // An error is printed, and the session goes on.
    let output = redis_cli(&target, &[], "GET h\nPING\n");
    assert!(
        output.starts_with("WRONGTYPE") && output.ends_with("PONG\n"),
        "{output:?}"
    );
}

/// Runs `redis-benchmark -q` with `args`; returns the requests per second of
/// each test, by name.
fn redis_benchmark(target: &Target, args: &[&str]) -> BTreeMap<String, f64> {
    let benchmark = require_tool("redis-benchmark");
    let port = target.address().port().to_string();
    let token = target.token();
    let mut all_args = vec!["-h", "127.0.0.1", "-p", &port, "-a", &token];
    all_args.extend(args);
    all_args.push("-q");
    let output = Command::new(benchmark)
        .args(&all_args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "redis-benchmark {args:?}: {}",
        describe_output(&output)
    );
    // Progress lines end in \r; results are `NAME: 12345.67 requests per second, ...`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .split(['\r', '\n'])
        .filter_map(|line| {
            let (name, rest) = line.split_once(": ")?;
            let rate = rest.strip_suffix(" requests per second").or_else(|| {
                rest.split_once(" requests per second")
                    .map(|(rate, _)| rate)
            })?;
            Some((name.trim().to_owned(), rate.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn redis_benchmark_runs_with_and_without_pipelining() {
    let target = Target::start();
    for pipeline in ["1", "16"] {
        let rates = redis_benchmark(
            &target,
            &[
                "-t",
                "set,get,incr",
                "-n",
                "2000",
                "-c",
                "8",
                "-P",
                pipeline,
            ],
        );
        let names: BTreeSet<&str> = rates.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            BTreeSet::from(["GET", "INCR", "SET"]),
            "-P {pipeline}: {rates:?}"
        );
        for (name, rate) in &rates {
            assert!(*rate > 0.0, "-P {pipeline}: {name} at {rate}/s");
        }
    }
    // Every INCR of both runs landed on one key (redis-benchmark's `counter:__rand_int__`
    // without -r is `counter:__rand_int__` itself).
    let mut con = target.connect();
    expect(&mut con, &["GET", "counter:__rand_int__"], bulk("4000"));
}
