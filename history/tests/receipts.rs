//! Receipts: exact JSON shape, verification, and rejection of any change.

// Test code: a panic is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use stele_history::hash::sha256;
use stele_history::{
    claims_digest, Checkpoint, CommitEvidence, LeafComponents, MerkleTree, NoteSigner, Receipt,
    SigningKey, Tiles, TransactionId,
};

const ORIGIN: &str = "stele.example/test";

fn components(seqno: u64) -> LeafComponents {
    let transaction_id = TransactionId { view: 2, seqno };
    LeafComponents {
        write_set_digest: sha256(format!("write set {seqno}").as_bytes()),
        commit_evidence: CommitEvidence {
            transaction_id,
            secret: sha256(format!("secret {seqno}").as_bytes()).0,
        },
        claims_digest: claims_digest(seqno.is_multiple_of(2).then_some("a claim")),
        command_digest: Some(sha256(format!("command {seqno}").as_bytes())),
    }
}

/// The same transaction in a format-1 ledger (no command digest).
fn components_v1(seqno: u64) -> LeafComponents {
    LeafComponents {
        command_digest: None,
        ..components(seqno)
    }
}

/// The receipt of seqno 6 in a tree of 21 leaves made by `components`, signed
/// with the view line `view`.
fn receipt_of(components: fn(u64) -> LeafComponents, view: Option<u64>) -> (Receipt, SigningKey) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let signer = NoteSigner::new(ORIGIN, key.clone()).unwrap();
    let mut tree = MerkleTree::new();
    let leaves: Vec<Vec<u8>> = (1..=21).map(|s| components(s).leaf_bytes()).collect();
    tree.append_batch(&leaves);
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        tree_size: tree.size(),
        root: tree.root(),
        view,
    };
    let note = checkpoint.sign(&signer).unwrap();
    let receipt =
        Receipt::build(&tree, &Tiles::none(), 5, &components(6), &checkpoint, note).unwrap();
    (receipt, key)
}

/// A tree of 21 transactions, signed at size 21 in view 2; the receipt of seqno 6.
fn receipt() -> (Receipt, SigningKey) {
    receipt_of(components, Some(2))
}

#[test]
fn json_has_exactly_the_documented_fields_in_order() {
    let (receipt, key) = receipt();
    let text = serde_json::to_string(&receipt).unwrap();
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&text)
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut expected = vec![
        "transaction_id",
        "leaf_index",
        "write_set_digest",
        "commit_evidence",
        "claims_digest",
        "command_digest",
        "proof",
        "tree_size",
        "root",
        "checkpoint",
    ];
    // serde_json::Map sorts keys; the text keeps the struct order.
    let positions: Vec<usize> = expected
        .iter()
        .map(|k| text.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    expected.sort_unstable();
    assert_eq!(keys, expected);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["transaction_id"], json!("2.6"));
    assert_eq!(value["leaf_index"], json!(5));
    assert_eq!(value["tree_size"], json!(21));
    assert!(value["commit_evidence"]
        .as_str()
        .unwrap()
        .starts_with("ce:2.6:"));
    let back: Receipt = serde_json::from_str(&text).unwrap();
    assert_eq!(back.verify(&key.verifying_key()).unwrap().tree_size, 21);
}

/// Every way of changing one field of the JSON.
fn mutations(receipt: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let object = receipt.as_object().unwrap();
    for (field, value) in object {
        let mut variants: Vec<Value> = Vec::new();
        match value {
            Value::String(text) => {
                // Change each character position to another allowed-looking one.
                for (position, character) in text.char_indices() {
                    let replacement = match character {
                        '0' => '1',
                        'a' => 'b',
                        '.' => ',',
                        '\n' => ' ',
                        c if c.is_ascii_alphanumeric() => '0',
                        _ => 'a',
                    };
                    let mut changed = text.clone();
                    changed.replace_range(
                        position..position + character.len_utf8(),
                        &replacement.to_string(),
                    );
                    variants.push(Value::String(changed));
                }
                variants.push(Value::String(text.to_uppercase()));
                variants.push(Value::String(String::new()));
            }
            Value::Number(number) => {
                let number = number.as_u64().unwrap();
                variants.extend([
                    json!(number + 1),
                    json!(number.saturating_sub(1)),
                    json!(-1),
                ]);
            }
            Value::Array(items) => {
                for at in 0..items.len() {
                    let mut changed = items.clone();
                    let hex = changed[at].as_str().unwrap().to_owned();
                    let first = if hex.starts_with('0') { "1" } else { "0" };
                    changed[at] = json!(format!("{first}{}", &hex[1..]));
                    variants.push(Value::Array(changed.clone()));
                    changed.remove(at);
                    variants.push(Value::Array(changed));
                }
                let mut swapped = items.clone();
                swapped.reverse();
                variants.push(Value::Array(swapped));
                let mut longer = items.clone();
                longer.push(items[0].clone());
                variants.push(Value::Array(longer));
            }
            other => panic!("unexpected JSON in a receipt: {other}"),
        }
        for variant in variants {
            if &variant != value {
                let mut changed = receipt.clone();
                changed[field] = variant;
                out.push((field.clone(), changed));
            }
        }
    }
    let mut extra = receipt.clone();
    extra["extra"] = json!(1);
    out.push(("extra field".into(), extra));
    out
}

#[test]
fn any_change_to_any_field_fails() {
    let (receipt, key) = receipt();
    let original = serde_json::to_value(&receipt).unwrap();
    let public_key = key.verifying_key();
    let mutations = mutations(&original);
    assert!(mutations.len() > 400, "only {} mutations", mutations.len());
    let mut per_field = std::collections::BTreeMap::<String, usize>::new();
    for (field, changed) in mutations {
        let outcome = serde_json::from_value::<Receipt>(changed.clone())
            .map_err(|e| e.to_string())
            .and_then(|r| r.verify(&public_key).map_err(|e| e.to_string()));
        assert!(outcome.is_err(), "a change to {field} verified: {changed}");
        *per_field.entry(field).or_default() += 1;
    }
    assert_eq!(per_field.len(), 11, "{per_field:?}");
}

#[test]
fn another_key_fails() {
    let (receipt, _) = receipt();
    let other = SigningKey::from_bytes(&[10; 32]).verifying_key();
    assert!(receipt.verify(&other).is_err());
}

#[test]
fn build_refuses_components_or_checkpoints_of_another_tree() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let signer = NoteSigner::new(ORIGIN, key).unwrap();
    let mut tree = MerkleTree::new();
    tree.append_batch(&[components(1).leaf_bytes(), components(2).leaf_bytes()]);
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        tree_size: 2,
        root: tree.root(),
        view: Some(2),
    };
    let note = checkpoint.sign(&signer).unwrap();
    assert!(Receipt::build(
        &tree,
        &Tiles::none(),
        0,
        &components(2),
        &checkpoint,
        note.clone()
    )
    .is_err());
    let wrong_root = Checkpoint {
        root: sha256(b"x"),
        ..checkpoint.clone()
    };
    assert!(Receipt::build(
        &tree,
        &Tiles::none(),
        0,
        &components(1),
        &wrong_root,
        note.clone()
    )
    .is_err());
    assert!(Receipt::build(&tree, &Tiles::none(), 2, &components(1), &checkpoint, note).is_err());
}

#[test]
fn format_1_receipts_verify_and_the_format_cannot_be_switched() {
    let (v1, key) = receipt_of(components_v1, None);
    let key = key.verifying_key();
    v1.verify(&key).unwrap();
    let text = serde_json::to_string(&v1).unwrap();
    assert!(!text.contains("command_digest"), "{text}");
    // Claiming a command for a format-1 leaf, or dropping the command of a
    // format-2 leaf, changes the leaf.
    let claimed = Receipt {
        command_digest: Some(sha256(b"command 6")),
        ..v1
    };
    assert!(claimed.verify(&key).is_err());
    let (v2, _) = receipt();
    let dropped = Receipt {
        command_digest: None,
        ..v2.clone()
    };
    assert!(dropped.verify(&key).is_err());
    // Whoever holds the command can check it against the receipt.
    assert_eq!(v2.command_digest, Some(sha256(b"command 6")));
}

#[test]
fn a_checkpoint_of_another_view_fails() {
    let (receipt, key) = receipt_of(components, Some(3));
    let error = receipt.verify(&key.verifying_key()).unwrap_err();
    assert!(error.to_string().contains("view"), "{error}");
}
