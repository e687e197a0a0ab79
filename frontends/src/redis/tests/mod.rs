//! Every op through `Command::Redis` against a real `stele_kv::Store`: the write set
//! is applied and the state read back, so a test fails on a wrong reply and on a
//! wrong (or missing, or extra) write. The helpers are here; the tests are in
//! `strings`, `hashes` and `commands` (errors, watches, limits, serialization).

mod commands;
mod hashes;
mod strings;

use stele_kv::Store;

use super::hash::{encode_hash, Fields};
use super::*;
use crate::command::{AbortReason, Command, Execution, Outcome};
use crate::transaction::{Op, Transaction};
use crate::FrontendError;

fn bytes(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn list(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|item| bytes(item)).collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items.iter().map(|(a, b)| (bytes(a), bytes(b))).collect()
}

fn get(key: &str) -> RedisOp {
    RedisOp::Get { key: bytes(key) }
}

fn set(key: &str, value: &str) -> RedisOp {
    set_with(key, value, SetCondition::Always, false)
}

fn set_with(key: &str, value: &str, condition: SetCondition, get: bool) -> RedisOp {
    RedisOp::Set {
        key: bytes(key),
        value: bytes(value),
        condition,
        get,
    }
}

fn incr_by(key: &str, by: i64) -> RedisOp {
    RedisOp::IncrBy {
        key: bytes(key),
        by,
    }
}

fn hset(key: &str, fields: &[(&str, &str)]) -> RedisOp {
    RedisOp::HSet {
        key: bytes(key),
        pairs: pairs(fields),
    }
}

fn hget(key: &str, field: &str) -> RedisOp {
    RedisOp::HGet {
        key: bytes(key),
        field: bytes(field),
    }
}

fn hincr_by(key: &str, field: &str, by: i64) -> RedisOp {
    RedisOp::HIncrBy {
        key: bytes(key),
        field: bytes(field),
        by,
    }
}

fn command(ops: Vec<RedisOp>) -> RedisCommand {
    RedisCommand {
        ops,
        watches: Vec::new(),
    }
}

fn execute(store: &Store, command: RedisCommand) -> Execution {
    Command::Redis(command)
        .execute(store)
        .expect("every key is declared")
}

fn commit(store: &mut Store, execution: &Execution) {
    execution
        .write_set
        .check_limits()
        .expect("a valid command writes within the store's limits");
    store
        .apply(store.version() + 1, &execution.write_set)
        .expect("the next version applies");
}

/// Runs `ops` as one command, commits it, and answers its replies.
fn run(store: &mut Store, ops: Vec<RedisOp>) -> Vec<Reply> {
    let execution = execute(store, command(ops));
    let Outcome::Completed(response) = &execution.outcome else {
        panic!("aborted: {:?}", execution.outcome);
    };
    commit(store, &execution);
    replies_from_response(response).expect("a response of replies")
}

fn run_one(store: &mut Store, op: RedisOp) -> Reply {
    let mut replies = run(store, vec![op]);
    assert_eq!(replies.len(), 1);
    replies.remove(0)
}

fn string_in(store: &Store, key: &str) -> Option<Vec<u8>> {
    store
        .get(STRINGS_MAP, &key_name(key.as_bytes()))
        .map(<[u8]>::to_vec)
}

fn hash_in(store: &Store, key: &str) -> Option<Vec<u8>> {
    store
        .get(HASHES_MAP, &key_name(key.as_bytes()))
        .map(<[u8]>::to_vec)
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(bytes(text))
}

fn error(text: &str) -> Reply {
    Reply::Error(text.to_owned())
}

fn wrongtype() -> Reply {
    error(ERROR_WRONGTYPE)
}

fn encoded(fields: &[(&str, &str)]) -> Vec<u8> {
    let fields: Fields = pairs(fields).into_iter().collect();
    encode_hash(&fields)
}

/// A store holding string `s` = "v" and hash `h` = {f: 1}.
fn store_with_both_types() -> Store {
    let mut store = Store::new();
    run(&mut store, vec![set("s", "v"), hset("h", &[("f", "1")])]);
    store
}
