//! End-to-end test (RESP over TLS): a node whose RESP address is not loopback
//! serves it with TLS only, with the node's certificate, and `redis-cli --tls
//! --cacert` (Debian's, built with TLS) talks to it; plain RESP gets nothing.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use stele_tests::redis_server::require_tool;
use stele_tests::{NodeConfig, TestNode};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

#[test]
fn off_loopback_resp_is_tls_and_redis_cli_speaks_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = NodeConfig::new(Path::new(BIN), &data);
    // Every interface: not loopback, so TLS.
    config.resp_listen = "0.0.0.0:0".to_owned();
    let node = TestNode::start_with(config);
    let port = node.resp_address().port();
    let token = std::fs::read_to_string(data.join("user.token")).unwrap();
    let token = token.trim();

    let cli = require_tool("redis-cli");
    let output = Command::new(&cli)
        .args(["--tls", "--cacert"])
        .arg(data.join("tls/node.crt"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-a", token])
        .args(["--no-auth-warning", "set", "over", "tls"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "OK\n",
        "redis-cli --tls: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Plain RESP to the same port: the server waits for a TLS ClientHello and
    // answers no RESP (the handshake fails on the first bytes).
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut plain = TcpStream::connect(address).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"+PONG") && !answer.starts_with(b"-NOAUTH"),
        "plain RESP was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
}
