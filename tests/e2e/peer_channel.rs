//! The peer routes against real processes (issue P7, item 1): a request that
//! does not authenticate is refused from its head alone, before the node reads
//! (or buffers) any of its body, and a single node serves no peer route.
//!
//! The signatures, the replay guard and the pinned TLS of the peer channel
//! (item 5) are tested in `consensus/tests/raft_network.rs`; every cluster
//! test exercises them between real processes.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stele_tests::cluster::{Cluster, ClusterOptions};
use stele_tests::raw;
use stele_tests::TestNode;

const BIN: &str = env!("CARGO_BIN_EXE_stele");
/// What each unauthenticated request declares (just under the 64 MiB limit).
const DECLARED_BYTES: usize = 60 << 20;
/// How many send at once, as in the probe.
const SENDERS: usize = 6;
/// How much the node's resident memory may grow under them: a node that
/// buffered the bodies would grow by `SENDERS * DECLARED_BYTES` (360 MiB).
const RSS_GROWTH_MAX_KB: u64 = 48 << 10;
/// Longest wait for an answer (the old node waited for the body: never).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

fn certificate(node: &TestNode) -> Vec<u8> {
    std::fs::read(node.data_dir().join("tls").join("node.crt")).unwrap()
}

/// The node's resident set size, from `/proc/<pid>/status`.
fn rss_kb(node: &TestNode) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid().unwrap())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A `POST /raft/append` head declaring `length` body bytes, with `headers`.
fn append_head(headers: &str, length: usize) -> Vec<u8> {
    format!(
        "POST /raft/append HTTP/1.1\r\nHost: node\r\nContent-Type: application/cbor\r\n\
         Content-Length: {length}\r\n{headers}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A signature-shaped value (it verifies with no key).
fn fake_signature() -> String {
    "ab".repeat(64)
}

fn now_ms() -> u64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(elapsed.as_millis()).unwrap()
}

#[test]
fn unauthenticated_peer_bodies_are_refused_before_they_are_read() {
    // A configured cluster of one: it serves the peer routes.
    let cluster = Cluster::start(
        Path::new(BIN),
        &ClusterOptions {
            nodes: 1,
            ..ClusterOptions::default()
        },
    );
    let node = &cluster.nodes[0];
    let (address, pem) = (node.address(), certificate(node));
    let signed = |from: u64, to: u64| {
        format!(
            "stele-from: {from}\r\nstele-to: {to}\r\nstele-time: {}\r\nstele-nonce: 1\r\n\
             stele-signature: {}\r\n",
            now_ms(),
            fake_signature()
        )
    };
    let cases = [
        ("no peer headers", String::new(), 401),
        ("from a stranger", signed(9, 1), 401),
        ("from itself", signed(1, 1), 401),
        ("to another node", signed(3, 2), 421),
    ];
    for (name, headers, status) in cases {
        // Only the head is sent: the answer must come without the body.
        let answer = raw::exchange(
            address,
            &pem,
            &append_head(&headers, DECLARED_BYTES),
            ANSWER_TIMEOUT,
        )
        .unwrap_or_else(|error| panic!("{name}: no answer from the head alone: {error}"));
        assert_eq!(answer.status, status, "{name}: {answer:?}");
        let body = String::from_utf8_lossy(&answer.body);
        assert!(body.contains("\"code\""), "{name}: {body}");
    }

    // The probe: six senders pushing their bodies anyway.
    let before = rss_kb(node);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let pem = pem.clone();
            std::thread::spawn(move || {
                raw::send_body(
                    address,
                    &pem,
                    &append_head("", DECLARED_BYTES),
                    DECLARED_BYTES,
                    ANSWER_TIMEOUT,
                )
            })
        })
        .collect();
    let written: Vec<usize> = senders
        .into_iter()
        .map(|sender| sender.join().unwrap().unwrap_or(0))
        .collect();
    let after = rss_kb(node);
    eprintln!(
        "RSS {before} kB -> {after} kB under {SENDERS} unauthenticated senders of {DECLARED_BYTES} \
         bytes (body bytes each got written before the node closed: {written:?})"
    );
    assert!(
        after.saturating_sub(before) < RSS_GROWTH_MAX_KB,
        "resident memory grew from {before} kB to {after} kB"
    );
    // Still serving its clients.
    node.client().put("m", "after", "probe");
}

#[test]
fn a_single_node_serves_no_peer_route() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(Path::new(BIN), &PathBuf::from(dir.path()));
    let address: SocketAddr = node.address();
    let answer = raw::exchange(
        address,
        &certificate(&node),
        &append_head("", 0),
        ANSWER_TIMEOUT,
    )
    .unwrap();
    assert_eq!(answer.status, 404, "{answer:?}");
}
