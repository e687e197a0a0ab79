//! The worked examples printed in `docs/execution.md`: if an encoding changes, these
//! fail, and the document must change with them.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use stele_kv::{Store, WriteSet};

#[test]
fn write_set_encoding_worked_example() {
    let mut write_set = WriteSet::new();
    write_set.put("accounts", "alice", b"100".to_vec());
    write_set.delete("accounts", "bob");
    let bytes = write_set.canonical_bytes();
    assert_eq!(
        hex::encode(&bytes),
        concat!(
            "00000002",
            "00000008",
            "6163636f756e7473",
            "00000005",
            "616c696365",
            "01",
            "00000003",
            "313030",
            "00000008",
            "6163636f756e7473",
            "00000003",
            "626f62",
            "00",
        )
    );
    assert_eq!(
        hex::encode(write_set.digest()),
        "993a07598350a3440bbb2900611147f4477b1e37b52359015789de3d69ceb8dd"
    );
}

#[test]
fn snapshot_encoding_worked_example() {
    let mut store = Store::new();
    let mut write_set = WriteSet::new();
    write_set.put("m", "k", b"v".to_vec());
    store.apply(1, &write_set).unwrap();
    let snapshot = store.snapshot(1).unwrap();
    let bytes = snapshot.to_bytes();
    let body = concat!(
        "5354454c534e5032",
        "0000000000000001",
        "0000000000000001",
        "00000001",
        "6d",
        "00000001",
        "6b",
        "00000001",
        "76",
        "0000000000000001",
    );
    assert_eq!(hex::encode(&bytes[..bytes.len() - 32]), body);
    assert_eq!(
        hex::encode(snapshot.digest()),
        "b8033fb626ca0d6b1765ddde125b6421e69108085119c5af9b8698eb3c6fca5f"
    );
    assert_eq!(&bytes[bytes.len() - 32..], &snapshot.digest()[..]);
}
