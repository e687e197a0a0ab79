//! Bad input yields a typed error naming the problem, never a panic.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use stele_frontends::{Command, FrontendError, Transaction, KEY_BYTES_MAX, OPS_PER_TX_MAX};

/// What the error must be, and a fragment its message must contain (serde names the
/// field or variant).
enum Expect {
    Malformed(&'static str),
    TooManyOps,
    FieldTooLong(&'static str),
    InvalidArgument(&'static str),
    CommandTooLarge,
}

fn check(name: &str, json: &str, expect: &Expect) {
    let error = Command::from_json(json.as_bytes()).expect_err(name);
    match (expect, &error) {
        (Expect::Malformed(fragment), FrontendError::Malformed { message }) => {
            assert!(
                message.contains(fragment),
                "{name}: {message:?} lacks {fragment:?}"
            );
        }
        (Expect::TooManyOps, FrontendError::TooManyOps { ops, max }) => {
            assert_eq!((*ops, *max), (OPS_PER_TX_MAX + 1, OPS_PER_TX_MAX), "{name}");
        }
        (Expect::FieldTooLong(expected), FrontendError::FieldTooLong { field, .. }) => {
            assert_eq!(field, expected, "{name}");
        }
        (Expect::InvalidArgument(expected), FrontendError::InvalidArgument { field, .. }) => {
            assert_eq!(field, expected, "{name}");
        }
        (Expect::CommandTooLarge, FrontendError::CommandTooLarge { .. }) => {}
        _ => panic!("{name}: unexpected error {error:?}"),
    }
}

fn transaction(ops: &str) -> String {
    format!(r#"{{"transaction":{{"ops":[{ops}]}}}}"#)
}

#[test]
fn bad_commands_are_typed_errors() {
    let long_key = "k".repeat(KEY_BYTES_MAX + 1);
    let many_ops = vec![r#"{"op":"get","map":"m","key":"k"}"#; OPS_PER_TX_MAX + 1].join(",");
    let cases: Vec<(&str, String, Expect)> = vec![
        ("unknown op", transaction(r#"{"op":"putt","map":"m","key":"k","value":"v"}"#), Expect::Malformed("putt")),
        ("missing op tag", transaction(r#"{"map":"m","key":"k"}"#), Expect::Malformed("op")),
        ("missing value", transaction(r#"{"op":"put","map":"m","key":"k"}"#), Expect::Malformed("value")),
        ("missing key", transaction(r#"{"op":"get","map":"m"}"#), Expect::Malformed("key")),
        ("unknown field in op", transaction(r#"{"op":"get","map":"m","key":"k","extra":1}"#), Expect::Malformed("extra")),
        ("unknown field in transaction", r#"{"transaction":{"ops":[],"other":1}}"#.to_owned(), Expect::Malformed("other")),
        ("value of the wrong type", transaction(r#"{"op":"put","map":"m","key":"k","value":5}"#), Expect::Malformed("invalid type")),
        ("ops not a list", r#"{"transaction":{"ops":{}}}"#.to_owned(), Expect::Malformed("invalid type")),
        ("unknown app", r#"{"banking":{"op":"balance","account":1}}"#.to_owned(), Expect::Malformed("banking")),
        ("negative id", r#"{"logging":{"op":"read","id":-1}}"#.to_owned(), Expect::Malformed("invalid value")),
        ("not json", "{".to_owned(), Expect::Malformed("EOF")),
        ("empty input", String::new(), Expect::Malformed("EOF")),
        ("too many ops", transaction(&many_ops), Expect::TooManyOps),
        ("oversized key", transaction(&format!(r#"{{"op":"get","map":"m","key":"{long_key}"}}"#)), Expect::FieldTooLong("ops[0].key")),
        ("oversized claims", format!(r#"{{"transaction":{{"ops":[],"claims":"{}"}}}}"#, "c".repeat(5000)), Expect::FieldTooLong("claims")),
        ("payment to self", r#"{"small_bank":{"op":"send_payment","from":1,"to":1,"amount_cents":5}}"#.to_owned(), Expect::InvalidArgument("to")),
        ("setup too large", r#"{"small_bank":{"op":"create_accounts","first_account":0,"count":1000000,"checking_cents":0,"savings_cents":0}}"#.to_owned(), Expect::InvalidArgument("count")),
        ("oversized command", " ".repeat(stele_frontends::COMMAND_BYTES_MAX + 1), Expect::CommandTooLarge),
    ];
    assert!(cases.len() >= 10);
    for (name, json, expect) in &cases {
        check(name, json, expect);
    }
}

#[test]
fn the_bare_language_parses_and_validates() {
    let transaction = Transaction::from_json(
        br#"{"ops":[{"op":"check","map":"m","key":"k","value":null},{"op":"put","map":"m","key":"k","value":"v"}],"claims":"c"}"#,
    )
    .unwrap();
    assert_eq!(transaction.ops.len(), 2);
    assert_eq!(transaction.claims.as_deref(), Some("c"));
    assert!(matches!(
        Transaction::from_json(br#"{"ops":[{"op":"delete","map":"m"}]}"#),
        Err(FrontendError::Malformed { .. })
    ));
}
