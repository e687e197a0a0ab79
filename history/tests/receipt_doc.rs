//! `docs/receipts.md` carries a worked example; this test recomputes it, so
//! the document can never drift from the code. Run with
//! `STELE_PRINT_DOC_EXAMPLE=1 cargo test -p stele-history --test receipt_doc -- --nocapture`
//! to print the values.

// Test code: a panic is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use stele_history::hash::{leaf_hash, node_hash, sha256};
use stele_history::{
    claims_digest, Checkpoint, CommitEvidence, LeafComponents, MerkleTree, NoteSigner, Receipt,
    SigningKey, TransactionId,
};

/// Three transactions in view 1; the example is the receipt of seqno 2.
fn example() -> Vec<(&'static str, String)> {
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let origin = "stele.example/ledger";
    let signer = NoteSigner::new(origin, key.clone()).unwrap();
    let components: Vec<LeafComponents> = (1..=3u64)
        .map(|seqno| LeafComponents {
            write_set_digest: sha256(format!("write set of tx {seqno}").as_bytes()),
            commit_evidence: CommitEvidence {
                transaction_id: TransactionId { view: 1, seqno },
                secret: sha256(format!("secret of tx {seqno}").as_bytes()).0,
            },
            claims_digest: claims_digest((seqno == 2).then_some("hello")),
            command_digest: Some(sha256(format!("command of tx {seqno}").as_bytes())),
        })
        .collect();
    let mut tree = MerkleTree::new();
    let leaves: Vec<Vec<u8>> = components.iter().map(LeafComponents::leaf_bytes).collect();
    tree.append_batch(&leaves);
    let checkpoint = Checkpoint {
        origin: origin.into(),
        tree_size: 3,
        root: tree.root(),
        view: Some(1),
    };
    let note = checkpoint.sign(&signer).unwrap();
    let receipt = Receipt::build(
        &tree,
        &stele_history::Tiles::none(),
        1,
        &components[1],
        &checkpoint,
        note.clone(),
    )
    .unwrap();
    receipt.verify(&key.verifying_key()).unwrap();
    let evidence = components[1].commit_evidence.to_string();
    vec![
        ("public_key", hex(key.verifying_key().as_bytes())),
        ("verifier_key", signer.verifier().to_verifier_key()),
        (
            "commit_evidence_sha256",
            sha256(evidence.as_bytes()).to_hex(),
        ),
        ("leaf_bytes", hex(&leaves[1])),
        ("leaf_hash", leaf_hash(&leaves[1]).to_hex()),
        ("leaf_hash_0", leaf_hash(&leaves[0]).to_hex()),
        ("leaf_hash_2", leaf_hash(&leaves[2]).to_hex()),
        (
            "node_01",
            node_hash(&leaf_hash(&leaves[0]), &leaf_hash(&leaves[1])).to_hex(),
        ),
        ("checkpoint", note),
        ("receipt", serde_json::to_string_pretty(&receipt).unwrap()),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_worked_example_in_docs_is_what_the_code_computes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/receipts.md"))
        .expect("docs/receipts.md exists");
    let print = std::env::var_os("STELE_PRINT_DOC_EXAMPLE").is_some();
    let mut missing = Vec::new();
    for (name, value) in example() {
        if print {
            println!("== {name}\n{value}");
        }
        if !doc.contains(value.trim_end()) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/receipts.md lacks the computed {missing:?}"
    );
}
