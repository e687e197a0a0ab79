//! Whole commands: runtime errors, watches, the write budget, key sets,
//! serialization, validation, and reads outside a transaction.

use super::*;

#[test]
fn a_runtime_error_does_not_stop_the_other_ops() {
    let mut store = store_with_both_types();
    let replies = run(
        &mut store,
        vec![
            set("t", "abc"),
            incr_by("t", 1),
            set("u", "1"),
            hget("s", "f"),
            incr_by("u", 1),
        ],
    );
    let expected = vec![
        Reply::ok(),
        error(ERROR_NOT_INTEGER),
        Reply::ok(),
        wrongtype(),
        Reply::Int(2),
    ];
    assert_eq!(replies, expected);
    assert_eq!(string_in(&store, "t"), Some(bytes("abc")));
    assert_eq!(string_in(&store, "u"), Some(bytes("2")));
}

#[test]
fn watches_pass_when_unchanged_and_abort_with_no_writes_when_changed() {
    let mut store = store_with_both_types();
    let watch = |store: &Store, key: &str| Watch {
        key: bytes(key),
        digest: watch_digest(store, key.as_bytes()),
    };
    let watches = vec![
        watch(&store, "s"),
        watch(&store, "h"),
        watch(&store, "absent"),
    ];
    assert_eq!(watches[2].digest, None);
    let transaction = RedisCommand {
        ops: vec![set("s", "mine")],
        watches,
    };

    // Unchanged (a value rewritten equal counts as unchanged): committed.
    run_one(&mut store, set("s", "v"));
    let execution = execute(&store, transaction.clone());
    assert!(matches!(execution.outcome, Outcome::Completed(_)));

    // Each watched key changed in turn: aborted, naming it, writing nothing.
    for (change, key) in [
        (set("s", "other"), "s"),
        (hset("h", &[("g", "2")]), "h"),
        (set("absent", "now"), "absent"),
    ] {
        let mut changed = store.clone();
        run_one(&mut changed, change);
        let execution = execute(&changed, transaction.clone());
        let reason = AbortReason::WatchedKeyChanged {
            key: key.to_owned(),
        };
        assert_eq!(execution.outcome, Outcome::Aborted(reason));
        assert!(execution.write_set.is_empty());
    }
}

#[test]
fn watch_digests_tell_types_and_values_apart() {
    let mut store = Store::new();
    run(&mut store, vec![set("s", "v"), hset("h", &[("f", "v")])]);
    let s = watch_digest(&store, b"s").expect("present");
    let h = watch_digest(&store, b"h").expect("present");
    assert_ne!(s, h);
    // The documented formula: SHA-256 of the tag byte and the stored value.
    use sha2::{Digest, Sha256};
    let expected: [u8; 32] = Sha256::new()
        .chain_update(b"s")
        .chain_update(b"v")
        .finalize()
        .into();
    assert_eq!(s, expected);
    // A string "v" and a hash whose encoding is "v" differ by their tag.
    let mut other = Store::new();
    let mut write_set = stele_kv::WriteSet::new();
    write_set.put(HASHES_MAP, "s", b"v".to_vec());
    other.apply(1, &write_set).expect("applies");
    assert_ne!(watch_digest(&other, b"s"), Some(s));
}

#[test]
fn the_write_budget_bounds_a_command() {
    let mut store = Store::new();
    // Five hashes of about 1 MiB each: two half-MiB fields, one command per field
    // (the arguments of one command are bounded by COMMAND_BYTES_MAX).
    let half = "x".repeat(REDIS_VALUE_BYTES_MAX - 64);
    let names = ["h0", "h1", "h2", "h3", "h4"];
    for name in names {
        run_one(&mut store, hset(name, &[("a", &half)]));
        run_one(&mut store, hset(name, &[("b", &half)]));
    }
    // One small field into each rewrites each whole hash: 4 fit in 4 MiB, not 5.
    let ops: Vec<RedisOp> = names.iter().map(|name| hset(name, &[("c", "1")])).collect();
    let replies = run(&mut store, ops);
    let mut expected = vec![Reply::Int(1); 4];
    expected.push(error(ERROR_WRITES_TOO_LARGE));
    assert_eq!(replies, expected);
    assert!(hash_in(&store, "h4").is_some_and(|hash| !hash.ends_with(b"c\x00\x00\x00\x011")));
    // Rewriting a key already written costs only the difference.
    let again: Vec<RedisOp> = (0..8).map(|_| hset("h0", &[("c", "2")])).collect();
    assert_eq!(run(&mut store, again), vec![Reply::Int(0); 8]);
}

#[test]
fn a_hash_entry_the_generic_language_corrupted_is_an_error_not_a_panic() {
    let mut store = Store::new();
    let corrupt = Command::Transaction(Transaction {
        ops: vec![
            Op::Put {
                map: HASHES_MAP.into(),
                key: "h".into(),
                value: "not a hash".into(),
            },
            // A name in both maps reads as the string.
            Op::Put {
                map: STRINGS_MAP.into(),
                key: "both".into(),
                value: "s".into(),
            },
            Op::Put {
                map: HASHES_MAP.into(),
                key: "both".into(),
                value: "x".into(),
            },
        ],
        claims: None,
    });
    let execution = corrupt.execute(&store).expect("declared");
    commit(&mut store, &execution);
    let replies = run(
        &mut store,
        vec![
            hget("h", "f"),
            hset("h", &[("f", "1")]),
            RedisOp::Type { key: bytes("h") },
            get("both"),
            RedisOp::Type { key: bytes("both") },
            RedisOp::Del {
                keys: list(&["both"]),
            },
            set("h", "fresh"),
        ],
    );
    let expected = vec![
        error(ERROR_CORRUPT_HASH),
        error(ERROR_CORRUPT_HASH),
        Reply::Status("hash".into()),
        bulk("s"),
        Reply::Status("string".into()),
        Reply::Int(1),
        Reply::ok(),
    ];
    assert_eq!(replies, expected);
    assert_eq!(
        (string_in(&store, "both"), hash_in(&store, "both")),
        (None, None)
    );
    assert_eq!(
        (string_in(&store, "h"), hash_in(&store, "h")),
        (Some(bytes("fresh")), None)
    );
}

#[test]
fn the_key_set_declares_both_maps_of_every_key_and_watch() {
    let transaction = RedisCommand {
        ops: vec![
            get("a"),
            RedisOp::MSet {
                pairs: pairs(&[("b", "1"), ("a", "2")]),
            },
        ],
        watches: vec![Watch {
            key: vec![0xff],
            digest: None,
        }],
    };
    let key_set = Command::Redis(transaction).key_set();
    assert_eq!(key_set.len(), 6);
    for name in ["a", "b", "\u{0}hex:ff"] {
        assert!(key_set.contains(STRINGS_MAP, name), "{name:?}");
        assert!(key_set.contains(HASHES_MAP, name), "{name:?}");
    }
}

#[test]
fn commands_round_trip_through_cbor_with_byte_strings_and_through_json() {
    let original = Command::Redis(RedisCommand {
        ops: vec![
            RedisOp::Set {
                key: vec![0xff, 0x00],
                value: vec![0x80],
                condition: SetCondition::IfPresent,
                get: true,
            },
            RedisOp::MSetNx {
                pairs: vec![(vec![1], vec![2])],
            },
            RedisOp::HMGet {
                key: bytes("h"),
                fields: vec![vec![0xfe], Vec::new()],
            },
            hincr_by("h", "f", i64::MIN),
        ],
        watches: vec![
            Watch {
                key: bytes("w"),
                digest: Some([7; 32]),
            },
            Watch {
                key: bytes("x"),
                digest: None,
            },
        ],
    });
    let mut cbor = Vec::new();
    ciborium::into_writer(&original, &mut cbor).expect("serializes");
    let decoded: Command = ciborium::from_reader(cbor.as_slice()).expect("deserializes");
    assert_eq!(decoded, original);
    // Bytes are CBOR byte strings: 0x42 = a 2-byte string, then ff 00.
    assert!(cbor.windows(3).any(|window| window == [0x42, 0xff, 0x00]));
    // The digest too: 0x58 0x20 = a 32-byte string.
    assert!(cbor.windows(3).any(|window| window == [0x58, 0x20, 7]));

    let json = serde_json::to_vec(&original).expect("serializes");
    assert_eq!(Command::from_json(&json), Ok(original));
}

#[test]
fn an_empty_block_commits_with_no_replies() {
    let mut store = Store::new();
    assert_eq!(run(&mut store, Vec::new()), Vec::<Reply>::new());
}

#[test]
fn validation_enforces_every_limit() {
    let key = |len: usize| vec![b'k'; len];
    let ok = |ops: Vec<RedisOp>| command(ops).validate();
    let many = |count: usize| (0..count).map(|_| get("k")).collect::<Vec<_>>();
    assert_eq!(ok(many(REDIS_OPS_PER_TX_MAX)), Ok(()));
    assert_eq!(
        ok(many(REDIS_OPS_PER_TX_MAX + 1)),
        Err(FrontendError::TooManyOps {
            ops: REDIS_OPS_PER_TX_MAX + 1,
            max: REDIS_OPS_PER_TX_MAX
        })
    );
    // Keys: ops and watches together, repeats included.
    let keys = vec![bytes("k"); REDIS_KEYS_PER_TX_MAX];
    assert_eq!(ok(vec![RedisOp::MGet { keys: keys.clone() }]), Ok(()));
    let with_watch = RedisCommand {
        ops: vec![RedisOp::MGet { keys }],
        watches: vec![Watch {
            key: bytes("k"),
            digest: None,
        }],
    };
    assert_eq!(
        with_watch.validate(),
        Err(FrontendError::TooManyKeys {
            keys: REDIS_KEYS_PER_TX_MAX + 1,
            max: REDIS_KEYS_PER_TX_MAX
        })
    );
    // Sizes of keys, fields, values, watches.
    let too_long = |field: &str, bytes: usize, max: usize| {
        Err(FrontendError::FieldTooLong {
            field: field.to_owned(),
            bytes,
            max,
        })
    };
    let long_key = key(REDIS_KEY_BYTES_MAX + 1);
    assert_eq!(
        ok(vec![RedisOp::Get {
            key: key(REDIS_KEY_BYTES_MAX)
        }]),
        Ok(())
    );
    assert_eq!(
        ok(vec![
            get("k"),
            RedisOp::Get {
                key: long_key.clone()
            }
        ]),
        too_long("ops[1].key", REDIS_KEY_BYTES_MAX + 1, REDIS_KEY_BYTES_MAX)
    );
    assert_eq!(
        ok(vec![RedisOp::HGet {
            key: bytes("h"),
            field: long_key.clone()
        }]),
        too_long("ops[0].field", REDIS_KEY_BYTES_MAX + 1, REDIS_KEY_BYTES_MAX)
    );
    let long_value = vec![b'v'; REDIS_VALUE_BYTES_MAX + 1];
    assert_eq!(
        ok(vec![RedisOp::MSet {
            pairs: vec![(bytes("a"), bytes("1")), (bytes("b"), long_value.clone())]
        }]),
        too_long(
            "ops[0].pairs[1].value",
            REDIS_VALUE_BYTES_MAX + 1,
            REDIS_VALUE_BYTES_MAX
        )
    );
    assert_eq!(
        ok(vec![RedisOp::HSet {
            key: bytes("h"),
            pairs: vec![(long_key.clone(), bytes("v"))]
        }]),
        too_long(
            "ops[0].pairs[0].field",
            REDIS_KEY_BYTES_MAX + 1,
            REDIS_KEY_BYTES_MAX
        )
    );
    let long_watch = RedisCommand {
        ops: Vec::new(),
        watches: vec![Watch {
            key: long_key,
            digest: None,
        }],
    };
    assert_eq!(
        long_watch.validate(),
        too_long(
            "watches[0].key",
            REDIS_KEY_BYTES_MAX + 1,
            REDIS_KEY_BYTES_MAX
        )
    );
    // Total argument bytes: three values that fit one by one, not together.
    let value = vec![b'v'; REDIS_VALUE_BYTES_MAX];
    let three = (0..3).map(|_| RedisOp::Set {
        key: bytes("k"),
        value: value.clone(),
        condition: SetCondition::Always,
        get: false,
    });
    let bytes_in_all = 3 * (1 + REDIS_VALUE_BYTES_MAX);
    assert_eq!(
        ok(three.collect()),
        Err(FrontendError::ArgumentsTooLarge {
            bytes: bytes_in_all,
            max: crate::COMMAND_BYTES_MAX
        })
    );
    // Empty lists.
    let empty = |field: &str| {
        Err(FrontendError::EmptyArguments {
            field: field.to_owned(),
        })
    };
    assert_eq!(
        ok(vec![RedisOp::MSet { pairs: Vec::new() }]),
        empty("ops[0].pairs")
    );
    assert_eq!(
        ok(vec![RedisOp::MSetNx { pairs: Vec::new() }]),
        empty("ops[0].pairs")
    );
    assert_eq!(
        ok(vec![RedisOp::MGet { keys: Vec::new() }]),
        empty("ops[0].keys")
    );
    assert_eq!(
        ok(vec![RedisOp::Del { keys: Vec::new() }]),
        empty("ops[0].keys")
    );
    assert_eq!(
        ok(vec![RedisOp::Exists { keys: Vec::new() }]),
        empty("ops[0].keys")
    );
    assert_eq!(
        ok(vec![RedisOp::HSet {
            key: bytes("h"),
            pairs: Vec::new()
        }]),
        empty("ops[0].pairs")
    );
    assert_eq!(
        ok(vec![RedisOp::HDel {
            key: bytes("h"),
            fields: Vec::new()
        }]),
        empty("ops[0].fields")
    );
    assert_eq!(
        ok(vec![RedisOp::HMGet {
            key: bytes("h"),
            fields: Vec::new()
        }]),
        empty("ops[0].fields")
    );
}

#[test]
fn an_invalid_command_aborts_without_keys_or_writes() {
    let invalid = Command::Redis(command(vec![RedisOp::Del { keys: Vec::new() }]));
    assert!(invalid.key_set().is_empty());
    let execution = invalid.execute(&Store::new()).expect("no fault");
    assert!(matches!(
        execution.outcome,
        Outcome::Aborted(AbortReason::InvalidCommand { .. })
    ));
    assert!(execution.write_set.is_empty());
}

#[test]
fn execute_read_answers_as_a_transaction_would() {
    let mut store = store_with_both_types();
    let reads = vec![
        get("s"),
        get("h"),
        RedisOp::MGet {
            keys: list(&["s", "h"]),
        },
        RedisOp::HGetAll { key: bytes("h") },
        RedisOp::Type {
            key: bytes("absent"),
        },
    ];
    let expected = run(&mut store, reads.clone());
    let version = store.version();
    for (op, reply) in reads.iter().zip(expected) {
        assert!(!op.is_write());
        assert_eq!(execute_read(op, &store), reply, "{op:?}");
    }
    assert_eq!(store.version(), version);
    // Writes and invalid ops are refused, not run.
    let refused = execute_read(&set("s", "x"), &store);
    assert!(
        matches!(&refused, Reply::Error(text) if text.starts_with("ERR SET")),
        "{refused:?}"
    );
    assert_eq!(string_in(&store, "s"), Some(bytes("v")));
    let invalid = execute_read(&RedisOp::MGet { keys: Vec::new() }, &store);
    assert!(matches!(invalid, Reply::Error(_)));
}

#[test]
fn the_worked_example_of_docs_execution_md() {
    let json = r#"{"redis": {"ops": [
           {"op": "set", "key": "s", "value": "v"},
           {"op": "hset", "key": "h", "pairs": [["b", "2"], ["a", "1"]]},
           {"op": "incrby", "key": "s", "by": 1},
           {"op": "hgetall", "key": "h"}
         ],
         "watches": [{"key": "s", "digest": null}]}}"#;
    let example = Command::from_json(json.as_bytes()).expect("the documented command parses");
    let mut store = Store::new();
    let execution = example.execute(&store).expect("declared");
    let Outcome::Completed(response) = &execution.outcome else {
        panic!("aborted: {:?}", execution.outcome);
    };
    let documented: serde_json::Value = serde_json::from_str(
        r#"{"replies": [{"status": "OK"}, {"int": 2},
             {"error": "ERR value is not an integer or out of range"},
             {"array": [{"bulk": "a"}, {"bulk": "1"}, {"bulk": "b"}, {"bulk": "2"}]}]}"#,
    )
    .expect("JSON");
    assert_eq!(response, &documented);
    let writes: Vec<_> = execution.write_set.iter().collect();
    let hash: &[u8] = &[
        1, 0, 0, 0, 1, b'a', 0, 0, 0, 1, b'1', 0, 0, 0, 1, b'b', 0, 0, 0, 1, b'2',
    ];
    assert_eq!(
        writes,
        vec![
            (STRINGS_MAP, "s", Some(&b"v"[..])),
            (HASHES_MAP, "h", Some(hash))
        ]
    );
    commit(&mut store, &execution);
    let digest = watch_digest(&store, b"s").expect("present");
    assert_eq!(
        super::super::keys::to_hex(&digest),
        "afac70e63187b00e8fc5f50d7a23eeeae956e72af28c5ecd25e1cc664811ce6e"
    );
    let again = example.execute(&store).expect("declared");
    let reason = AbortReason::WatchedKeyChanged {
        key: "s".to_owned(),
    };
    assert_eq!(again.outcome, Outcome::Aborted(reason));
}
