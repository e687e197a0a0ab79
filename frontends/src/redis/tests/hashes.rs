//! Hash ops and the stored hash.

use super::*;

#[test]
fn hset_counts_new_fields_and_stores_them_sorted() {
    let mut store = Store::new();
    assert_eq!(
        run_one(&mut store, hset("h", &[("b", "2"), ("a", "1")])),
        Reply::Int(2)
    );
    assert_eq!(
        hash_in(&store, "h"),
        Some(encoded(&[("a", "1"), ("b", "2")]))
    );
    // `a` updated, `c` new, `c` repeated: one added.
    assert_eq!(
        run_one(&mut store, hset("h", &[("a", "9"), ("c", "3"), ("c", "4")])),
        Reply::Int(1)
    );
    assert_eq!(
        hash_in(&store, "h"),
        Some(encoded(&[("a", "9"), ("b", "2"), ("c", "4")]))
    );
    assert_eq!(string_in(&store, "h"), None);
}

#[test]
fn the_stored_hash_does_not_depend_on_write_order() {
    let (mut first, mut second) = (Store::new(), Store::new());
    run(
        &mut first,
        vec![hset("h", &[("a", "1")]), hset("h", &[("b", "2")])],
    );
    run(&mut second, vec![hset("h", &[("b", "2"), ("a", "1")])]);
    assert_eq!(hash_in(&first, "h"), hash_in(&second, "h"));
    // And executing twice gives the same write-set digest.
    let again = command(vec![hset("x", &[("z", "1"), ("y", "2"), ("x", "3")])]);
    assert_eq!(execute(&first, again.clone()), execute(&first, again));
}

#[test]
fn hash_reads() {
    let mut store = Store::new();
    run_one(
        &mut store,
        hset("h", &[("b", "2"), ("a", "1"), ("\u{ff}", "3")]),
    );
    let key = bytes("h");
    let replies = run(
        &mut store,
        vec![
            hget("h", "a"),
            hget("h", "zz"),
            hget("absent", "a"),
            RedisOp::HExists {
                key: key.clone(),
                field: bytes("b"),
            },
            RedisOp::HExists {
                key: key.clone(),
                field: bytes("zz"),
            },
            RedisOp::HLen { key: key.clone() },
            RedisOp::HLen {
                key: bytes("absent"),
            },
            RedisOp::HMGet {
                key: key.clone(),
                fields: list(&["b", "zz", "a"]),
            },
            RedisOp::HMGet {
                key: bytes("absent"),
                fields: list(&["a", "b"]),
            },
            RedisOp::HGetAll { key },
            RedisOp::HGetAll {
                key: bytes("absent"),
            },
        ],
    );
    let expected = vec![
        bulk("1"),
        Reply::Nil,
        Reply::Nil,
        Reply::Int(1),
        Reply::Int(0),
        Reply::Int(3),
        Reply::Int(0),
        Reply::Array(vec![bulk("2"), Reply::Nil, bulk("1")]),
        Reply::Array(vec![Reply::Nil, Reply::Nil]),
        // Byte-wise: "ÿ" (c3 bf) after "b".
        Reply::Array(["a", "1", "b", "2", "\u{ff}", "3"].map(bulk).to_vec()),
        Reply::Array(Vec::new()),
    ];
    assert_eq!(replies, expected);
}

#[test]
fn hdel_counts_removed_fields_and_the_last_one_deletes_the_key() {
    let mut store = Store::new();
    run_one(&mut store, hset("h", &[("a", "1"), ("b", "2")]));
    let hdel = |fields: &[&str]| RedisOp::HDel {
        key: bytes("h"),
        fields: list(fields),
    };
    assert_eq!(run_one(&mut store, hdel(&["a", "a", "zz"])), Reply::Int(1));
    assert_eq!(hash_in(&store, "h"), Some(encoded(&[("b", "2")])));
    assert_eq!(run_one(&mut store, hdel(&["zz"])), Reply::Int(0));
    assert_eq!(run_one(&mut store, hdel(&["b"])), Reply::Int(1));
    assert_eq!(hash_in(&store, "h"), None);
    assert_eq!(
        run_one(&mut store, RedisOp::Exists { keys: list(&["h"]) }),
        Reply::Int(0)
    );
    assert_eq!(run_one(&mut store, hdel(&["b"])), Reply::Int(0));
}

#[test]
fn hincr_by_counts_and_refuses_what_redis_refuses() {
    let mut store = Store::new();
    let replies = run(
        &mut store,
        vec![hincr_by("h", "n", 5), hincr_by("h", "n", -7)],
    );
    assert_eq!(replies, vec![Reply::Int(5), Reply::Int(-2)]);
    assert_eq!(hash_in(&store, "h"), Some(encoded(&[("n", "-2")])));
    for (stored, by, reply) in [
        ("007", 1, error(ERROR_HASH_NOT_INTEGER)),
        ("-0", 1, error(ERROR_HASH_NOT_INTEGER)),
        (" 1", 1, error(ERROR_HASH_NOT_INTEGER)),
        ("+1", 1, error(ERROR_HASH_NOT_INTEGER)),
        ("9223372036854775807", 1, error(ERROR_OVERFLOW)),
        ("-9223372036854775808", -1, error(ERROR_OVERFLOW)),
    ] {
        let mut store = Store::new();
        run_one(&mut store, hset("h", &[("f", stored)]));
        assert_eq!(
            run_one(&mut store, hincr_by("h", "f", by)),
            reply,
            "{stored:?}"
        );
        assert_eq!(
            hash_in(&store, "h"),
            Some(encoded(&[("f", stored)])),
            "unchanged"
        );
    }
}

#[test]
fn hash_ops_on_a_string_are_wrongtype_and_write_nothing() {
    let store = store_with_both_types();
    let key = bytes("s");
    let ops = vec![
        hset("s", &[("f", "1")]),
        hget("s", "f"),
        RedisOp::HDel {
            key: key.clone(),
            fields: list(&["f"]),
        },
        RedisOp::HGetAll { key: key.clone() },
        RedisOp::HExists {
            key: key.clone(),
            field: bytes("f"),
        },
        RedisOp::HLen { key: key.clone() },
        RedisOp::HMGet {
            key,
            fields: list(&["f"]),
        },
        hincr_by("s", "f", 1),
    ];
    let count = ops.len();
    let execution = execute(&store, command(ops));
    let Outcome::Completed(response) = &execution.outcome else {
        panic!("a runtime error does not abort");
    };
    assert_eq!(
        replies_from_response(response),
        Some(vec![wrongtype(); count])
    );
    assert!(execution.write_set.is_empty());
}

#[test]
fn string_ops_on_a_hash_are_wrongtype_and_write_nothing() {
    let store = store_with_both_types();
    let ops = vec![
        get("h"),
        set_with("h", "x", SetCondition::Always, true),
        RedisOp::GetSet {
            key: bytes("h"),
            value: bytes("x"),
        },
        RedisOp::GetDel { key: bytes("h") },
        RedisOp::StrLen { key: bytes("h") },
        RedisOp::Append {
            key: bytes("h"),
            value: bytes("x"),
        },
        incr_by("h", 1),
    ];
    let count = ops.len();
    let execution = execute(&store, command(ops));
    let Outcome::Completed(response) = &execution.outcome else {
        panic!("a runtime error does not abort");
    };
    assert_eq!(
        replies_from_response(response),
        Some(vec![wrongtype(); count])
    );
    assert!(execution.write_set.is_empty());
}

#[test]
fn a_hash_past_its_bound_is_an_error_that_writes_nothing() {
    let mut store = Store::new();
    let big = "x".repeat(REDIS_VALUE_BYTES_MAX);
    assert_eq!(
        run_one(&mut store, hset("h", &[("a", &big)])),
        Reply::Int(1)
    );
    let before = hash_in(&store, "h");
    assert_eq!(
        run_one(&mut store, hset("h", &[("b", &big)])),
        error(ERROR_HASH_TOO_LARGE)
    );
    assert_eq!(hash_in(&store, "h"), before);
}
