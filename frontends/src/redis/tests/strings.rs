//! String ops, and the type rules between strings and hashes.

use super::*;

#[test]
fn get_set_and_overwrite() {
    let mut store = Store::new();
    assert_eq!(run_one(&mut store, get("k")), Reply::Nil);
    assert_eq!(run_one(&mut store, set("k", "v1")), Reply::ok());
    assert_eq!(string_in(&store, "k"), Some(bytes("v1")));
    assert_eq!(
        run(&mut store, vec![set("k", "v2"), get("k")]),
        vec![Reply::ok(), bulk("v2")]
    );
    assert_eq!(string_in(&store, "k"), Some(bytes("v2")));
    // Empty keys and values are Redis keys and values like any other.
    assert_eq!(
        run(&mut store, vec![set("", ""), get("")]),
        vec![Reply::ok(), bulk("")]
    );
    assert_eq!(string_in(&store, ""), Some(Vec::new()));
}

#[test]
fn binary_keys_are_stored_under_escaped_names() {
    let mut store = Store::new();
    let key = vec![0xff, 0x00];
    let reply = run_one(
        &mut store,
        RedisOp::Set {
            key: key.clone(),
            value: vec![0x80],
            condition: SetCondition::Always,
            get: false,
        },
    );
    assert_eq!(reply, Reply::ok());
    assert_eq!(store.get(STRINGS_MAP, "\u{0}hex:ff00"), Some(&[0x80][..]));
    assert_eq!(
        run_one(&mut store, RedisOp::Get { key }),
        Reply::Bulk(vec![0x80])
    );
}

#[test]
fn set_conditions_and_get_match_redis_7() {
    // Each case on a fresh store holding `s` = "v" and hash `h`: (op, reply, `s`
    // afterwards). Replies observed on redis-server 7.0.
    use SetCondition::{Always, IfAbsent, IfPresent};
    let cases = [
        (set_with("s", "x", IfAbsent, false), Reply::Nil, "v"),
        (set_with("s", "x", IfAbsent, true), bulk("v"), "v"),
        (set_with("s", "x", IfPresent, false), Reply::ok(), "x"),
        (set_with("s", "x", IfPresent, true), bulk("v"), "x"),
        (set_with("s", "x", Always, true), bulk("v"), "x"),
    ];
    for (op, reply, after) in cases {
        let mut store = store_with_both_types();
        assert_eq!(run_one(&mut store, op.clone()), reply, "{op:?}");
        assert_eq!(string_in(&store, "s"), Some(bytes(after)), "{op:?}");
    }
    let absent = [
        (set_with("n", "x", IfAbsent, false), Reply::ok(), Some("x")),
        (set_with("n", "x", IfAbsent, true), Reply::Nil, Some("x")),
        (set_with("n", "x", IfPresent, false), Reply::Nil, None),
        (set_with("n", "x", IfPresent, true), Reply::Nil, None),
    ];
    for (op, reply, after) in absent {
        let mut store = store_with_both_types();
        assert_eq!(run_one(&mut store, op.clone()), reply, "{op:?}");
        assert_eq!(string_in(&store, "n"), after.map(bytes), "{op:?}");
    }
    // On a hash: GET makes it WRONGTYPE (nothing written); NX sees it exists.
    for (op, reply) in [
        (set_with("h", "x", Always, true), wrongtype()),
        (set_with("h", "x", IfAbsent, true), wrongtype()),
        (set_with("h", "x", IfAbsent, false), Reply::Nil),
    ] {
        let mut store = store_with_both_types();
        assert_eq!(run_one(&mut store, op.clone()), reply, "{op:?}");
        assert_eq!(hash_in(&store, "h"), Some(encoded(&[("f", "1")])), "{op:?}");
        assert_eq!(string_in(&store, "h"), None, "{op:?}");
    }
}

#[test]
fn set_without_get_and_mset_overwrite_a_hash() {
    for op in [
        set("h", "x"),
        set_with("h", "x", SetCondition::IfPresent, false),
        RedisOp::MSet {
            pairs: pairs(&[("h", "x")]),
        },
    ] {
        let mut store = store_with_both_types();
        run_one(&mut store, op.clone());
        assert_eq!(string_in(&store, "h"), Some(bytes("x")), "{op:?}");
        assert_eq!(
            hash_in(&store, "h"),
            None,
            "{op:?}: the hash entry is deleted"
        );
        assert_eq!(
            run_one(&mut store, RedisOp::Type { key: bytes("h") }),
            Reply::Status("string".into())
        );
    }
}

#[test]
fn setnx_getset_getdel() {
    let mut store = store_with_both_types();
    let setnx = |key: &str| RedisOp::SetNx {
        key: bytes(key),
        value: bytes("new"),
    };
    assert_eq!(run_one(&mut store, setnx("s")), Reply::Int(0));
    assert_eq!(run_one(&mut store, setnx("h")), Reply::Int(0));
    assert_eq!(run_one(&mut store, setnx("n")), Reply::Int(1));
    assert_eq!(string_in(&store, "n"), Some(bytes("new")));

    let getset = |key: &str| RedisOp::GetSet {
        key: bytes(key),
        value: bytes("gs"),
    };
    assert_eq!(run_one(&mut store, getset("s")), bulk("v"));
    assert_eq!(string_in(&store, "s"), Some(bytes("gs")));
    assert_eq!(run_one(&mut store, getset("absent")), Reply::Nil);
    assert_eq!(string_in(&store, "absent"), Some(bytes("gs")));
    assert_eq!(run_one(&mut store, getset("h")), wrongtype());
    assert_eq!(string_in(&store, "h"), None);

    let getdel = |key: &str| RedisOp::GetDel { key: bytes(key) };
    assert_eq!(run_one(&mut store, getdel("s")), bulk("gs"));
    assert_eq!(string_in(&store, "s"), None);
    assert_eq!(run_one(&mut store, getdel("s")), Reply::Nil);
    assert_eq!(run_one(&mut store, getdel("h")), wrongtype());
    assert!(hash_in(&store, "h").is_some());
}

#[test]
fn mget_answers_nil_for_hashes_and_absent_keys() {
    let mut store = store_with_both_types();
    let reply = run_one(
        &mut store,
        RedisOp::MGet {
            keys: list(&["s", "h", "x", "s"]),
        },
    );
    assert_eq!(
        reply,
        Reply::Array(vec![bulk("v"), Reply::Nil, Reply::Nil, bulk("v")])
    );
}

#[test]
fn mset_last_value_wins_and_msetnx_is_all_or_nothing() {
    let mut store = store_with_both_types();
    let mset = RedisOp::MSet {
        pairs: pairs(&[("a", "1"), ("b", "2"), ("a", "3")]),
    };
    assert_eq!(run_one(&mut store, mset), Reply::ok());
    assert_eq!(string_in(&store, "a"), Some(bytes("3")));
    assert_eq!(string_in(&store, "b"), Some(bytes("2")));

    // One existing key (here a hash) and nothing is written.
    let blocked = RedisOp::MSetNx {
        pairs: pairs(&[("c", "1"), ("h", "2")]),
    };
    assert_eq!(run_one(&mut store, blocked), Reply::Int(0));
    assert_eq!(string_in(&store, "c"), None);
    let free = RedisOp::MSetNx {
        pairs: pairs(&[("c", "1"), ("d", "2"), ("c", "3")]),
    };
    assert_eq!(run_one(&mut store, free), Reply::Int(1));
    assert_eq!(string_in(&store, "c"), Some(bytes("3")));
    assert_eq!(string_in(&store, "d"), Some(bytes("2")));
}

#[test]
fn del_counts_distinct_keys_and_exists_counts_repeats() {
    let mut store = store_with_both_types();
    let exists = RedisOp::Exists {
        keys: list(&["s", "s", "h", "x"]),
    };
    assert_eq!(run_one(&mut store, exists.clone()), Reply::Int(3));
    let del = RedisOp::Del {
        keys: list(&["s", "s", "h", "x"]),
    };
    assert_eq!(run_one(&mut store, del.clone()), Reply::Int(2));
    assert_eq!((string_in(&store, "s"), hash_in(&store, "h")), (None, None));
    assert_eq!(run_one(&mut store, exists), Reply::Int(0));
    // Deleting nothing writes nothing.
    let execution = execute(&store, command(vec![del]));
    assert!(execution.write_set.is_empty());
}

#[test]
fn type_and_strlen() {
    let mut store = store_with_both_types();
    let type_of = |key: &str| RedisOp::Type { key: bytes(key) };
    let replies = run(&mut store, vec![type_of("s"), type_of("h"), type_of("x")]);
    let expected = ["string", "hash", "none"].map(|name| Reply::Status(name.into()));
    assert_eq!(replies, expected.to_vec());
    let strlen = |key: &str| RedisOp::StrLen { key: bytes(key) };
    let replies = run(&mut store, vec![strlen("s"), strlen("x"), strlen("h")]);
    assert_eq!(replies, vec![Reply::Int(1), Reply::Int(0), wrongtype()]);
}

#[test]
fn append_creates_extends_and_refuses_hashes() {
    let mut store = store_with_both_types();
    let append = |key: &str, value: &str| RedisOp::Append {
        key: bytes(key),
        value: bytes(value),
    };
    let replies = run(
        &mut store,
        vec![append("n", "ab"), append("n", "cd"), append("h", "x")],
    );
    assert_eq!(replies, vec![Reply::Int(2), Reply::Int(4), wrongtype()]);
    assert_eq!(string_in(&store, "n"), Some(bytes("abcd")));
    assert_eq!(string_in(&store, "h"), None);
}

#[test]
fn append_past_the_value_bound_is_an_error_that_writes_nothing() {
    let mut store = Store::new();
    let half = vec![b'x'; REDIS_VALUE_BYTES_MAX / 2];
    let append = |value: Vec<u8>| RedisOp::Append {
        key: bytes("k"),
        value,
    };
    let replies = run(&mut store, vec![append(half.clone()), append(half.clone())]);
    assert_eq!(
        replies,
        vec![
            Reply::Int(half.len() as i64),
            Reply::Int(REDIS_VALUE_BYTES_MAX as i64)
        ]
    );
    assert_eq!(
        run_one(&mut store, append(vec![b'y'])),
        error(ERROR_STRING_TOO_LARGE)
    );
    assert_eq!(
        string_in(&store, "k").map(|value| value.len()),
        Some(REDIS_VALUE_BYTES_MAX)
    );
}

#[test]
fn incr_by_counts_from_zero_and_stores_decimal() {
    let mut store = Store::new();
    let replies = run(
        &mut store,
        vec![incr_by("c", 1), incr_by("c", 41), incr_by("c", -50)],
    );
    assert_eq!(replies, vec![Reply::Int(1), Reply::Int(42), Reply::Int(-8)]);
    assert_eq!(string_in(&store, "c"), Some(bytes("-8")));
    assert_eq!(
        run_one(&mut store, incr_by("m", i64::MIN)),
        Reply::Int(i64::MIN)
    );
    assert_eq!(string_in(&store, "m"), Some(bytes("-9223372036854775808")));
}

#[test]
fn incr_by_refuses_what_redis_refuses() {
    for (stored, by, reply) in [
        ("007", 1, error(ERROR_NOT_INTEGER)),
        (" 1", 1, error(ERROR_NOT_INTEGER)),
        ("+1", 1, error(ERROR_NOT_INTEGER)),
        ("-0", 1, error(ERROR_NOT_INTEGER)),
        ("1.5", 1, error(ERROR_NOT_INTEGER)),
        ("", 1, error(ERROR_NOT_INTEGER)),
        ("abc", 1, error(ERROR_NOT_INTEGER)),
        ("9223372036854775808", 1, error(ERROR_NOT_INTEGER)),
        ("9223372036854775807", 1, error(ERROR_OVERFLOW)),
        ("-9223372036854775808", -1, error(ERROR_OVERFLOW)),
        ("1", i64::MAX, error(ERROR_OVERFLOW)),
        ("9223372036854775807", 0, Reply::Int(i64::MAX)),
        ("-9223372036854775808", 1, Reply::Int(i64::MIN + 1)),
    ] {
        let mut store = Store::new();
        run_one(&mut store, set("k", stored));
        assert_eq!(
            run_one(&mut store, incr_by("k", by)),
            reply,
            "{stored:?} + {by}"
        );
        if let Reply::Int(value) = reply {
            assert_eq!(string_in(&store, "k"), Some(value.to_string().into_bytes()));
        } else {
            assert_eq!(
                string_in(&store, "k"),
                Some(bytes(stored)),
                "an error writes nothing"
            );
        }
    }
    let mut store = store_with_both_types();
    assert_eq!(run_one(&mut store, incr_by("h", 1)), wrongtype());
}
