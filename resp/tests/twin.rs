//! The RESP listener against `FakeNode`, the in-memory twin of the node:
//! AUTH, pipelining order, read-your-writes, MULTI/EXEC/WATCH, limits and the
//! connection cap, over real sockets with hand-written RESP bytes.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use stele_api::fake::FakeNode;
use stele_api::token_hash;
use stele_resp::limits::{
    RESP_ARGS_MAX, RESP_BULK_BYTES_MAX, RESP_REPLY_BYTES_MAX, RESP_REQUEST_BYTES_MAX,
    RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX,
};
use stele_resp::{serve, RespConfig, RespError, RespUser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "resp-test-token";

/// A listener over a fresh fake node; returns its address and the node.
async fn start(connections_max: usize) -> (std::net::SocketAddr, Arc<FakeNode>) {
    start_with(RespConfig {
        connections_max,
        ..RespConfig::default()
    })
    .await
}

/// [`start`] with `config` (its users replaced by the test user).
async fn start_with(config: RespConfig) -> (std::net::SocketAddr, Arc<FakeNode>) {
    let node = FakeNode::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = RespConfig {
        users: Arc::new([RespUser {
            name: "alice".to_owned(),
            token_sha256: token_hash(TOKEN),
        }]),
        ..config
    };
    let served = Arc::clone(&node);
    tokio::spawn(async move { serve(served, listener, config, std::future::pending()).await });
    (addr, node)
}

/// RESP for one command.
fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut bytes = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        bytes.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        bytes.extend_from_slice(arg);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

/// Sends `bytes`, then reads `count` replies (or fewer if the server closes).
async fn exchange(stream: &mut TcpStream, bytes: &[u8], count: usize) -> Vec<OwnedFrame> {
    stream.write_all(bytes).await.unwrap();
    read_frames(stream, count).await
}

async fn read_frames(stream: &mut TcpStream, count: usize) -> Vec<OwnedFrame> {
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < count {
        while let Some((frame, used)) = decode(&buffer).unwrap() {
            frames.push(frame);
            buffer.drain(..used);
            if frames.len() == count {
                return frames;
            }
        }
        let mut chunk = [0u8; 65536];
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("a reply within 30 s")
            .unwrap();
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    frames
}

fn bulk(text: &str) -> OwnedFrame {
    OwnedFrame::BulkString(text.as_bytes().to_vec())
}

fn status(text: &str) -> OwnedFrame {
    OwnedFrame::SimpleString(text.as_bytes().to_vec())
}

fn error_kind(frame: &OwnedFrame) -> &str {
    match frame {
        OwnedFrame::Error(text) => text.split(' ').next().unwrap(),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn authenticated(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let replies = exchange(&mut stream, &command(&[b"AUTH", TOKEN.as_bytes()]), 1).await;
    assert_eq!(replies, vec![status("OK")]);
    stream
}

#[tokio::test]
async fn nothing_runs_before_auth_and_a_wrong_token_is_refused() {
    let (addr, node) = start(16).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut bytes = command(&[b"SET", b"k", b"v"]);
    bytes.extend(command(&[b"GET", b"k"]));
    bytes.extend(command(&[b"AUTH", b"wrong"]));
    bytes.extend(command(&[b"AUTH", b"bob", TOKEN.as_bytes()]));
    bytes.extend(command(&[b"HELLO", b"2"]));
    bytes.extend(command(&[b"AUTH", b"alice", TOKEN.as_bytes()]));
    bytes.extend(command(&[b"HELLO", b"3"]));
    bytes.extend(command(&[b"PING"]));
    let replies = exchange(&mut stream, &bytes, 8).await;
    let kinds: Vec<&str> = replies[..5].iter().map(error_kind).collect();
    assert_eq!(
        kinds,
        ["NOAUTH", "NOAUTH", "WRONGPASS", "WRONGPASS", "NOAUTH"]
    );
    assert_eq!(replies[5], status("OK"));
    assert_eq!(error_kind(&replies[6]), "NOPROTO");
    assert_eq!(replies[7], status("PONG"));
    assert_eq!(node.submits(), 0, "nothing was submitted before AUTH");
}

#[tokio::test]
async fn a_pipeline_is_answered_in_order_and_reads_its_own_writes() {
    let (addr, node) = start(16).await;
    let mut stream = authenticated(addr).await;
    let mut bytes = Vec::new();
    for _ in 0..200 {
        bytes.extend(command(&[b"INCR", b"counter"]));
    }
    bytes.extend(command(&[b"GET", b"counter"]));
    bytes.extend(command(&[b"SET", b"k\xff", b"\x00\x01"]));
    bytes.extend(command(&[b"GET", b"k\xff"]));
    let replies = exchange(&mut stream, &bytes, 203).await;
    for (index, reply) in replies[..200].iter().enumerate() {
        assert_eq!(*reply, OwnedFrame::Integer(index as i64 + 1));
    }
    assert_eq!(replies[200], bulk("200"));
    assert_eq!(replies[201], status("OK"));
    assert_eq!(replies[202], OwnedFrame::BulkString(vec![0, 1]));
    assert_eq!(
        node.submits(),
        201,
        "one transaction per write; reads are not submitted"
    );
}

#[tokio::test]
async fn exec_is_one_transaction_and_a_changed_watched_key_makes_it_nil() {
    let (addr, node) = start(16).await;
    let mut first = authenticated(addr).await;
    let mut second = authenticated(addr).await;
    let mut bytes = command(&[b"MULTI"]);
    bytes.extend(command(&[b"SET", b"a", b"1"]));
    bytes.extend(command(&[b"INCR", b"a"]));
    bytes.extend(command(&[b"HSET", b"a", b"f", b"v"]));
    bytes.extend(command(&[b"EXEC"]));
    let replies = exchange(&mut first, &bytes, 5).await;
    assert_eq!(
        replies[..4],
        [
            status("OK"),
            status("QUEUED"),
            status("QUEUED"),
            status("QUEUED")
        ]
    );
    let OwnedFrame::Array(results) = &replies[4] else {
        panic!("EXEC answers an array, got {:?}", replies[4]);
    };
    assert_eq!(results[..2], [status("OK"), OwnedFrame::Integer(2)]);
    assert_eq!(error_kind(&results[2]), "WRONGTYPE");
    assert_eq!(node.submits(), 1, "the block is one transaction");

    let replies = exchange(&mut first, &command(&[b"WATCH", b"a"]), 1).await;
    assert_eq!(replies, vec![status("OK")]);
    let replies = exchange(&mut second, &command(&[b"SET", b"a", b"changed"]), 1).await;
    assert_eq!(replies, vec![status("OK")]);
    let mut bytes = command(&[b"MULTI"]);
    bytes.extend(command(&[b"SET", b"a", b"mine"]));
    bytes.extend(command(&[b"EXEC"]));
    bytes.extend(command(&[b"GET", b"a"]));
    let replies = exchange(&mut first, &bytes, 4).await;
    assert_eq!(
        replies[2],
        OwnedFrame::Null,
        "EXEC after a watched key changed is nil"
    );
    assert_eq!(
        replies[3],
        bulk("changed"),
        "the aborted block wrote nothing"
    );

    // A refused command while queuing dooms the block.
    let mut bytes = command(&[b"MULTI"]);
    bytes.extend(command(&[b"SET", b"a"]));
    bytes.extend(command(&[b"SET", b"a", b"x"]));
    bytes.extend(command(&[b"EXEC"]));
    let replies = exchange(&mut first, &bytes, 4).await;
    assert_eq!(error_kind(&replies[1]), "ERR");
    assert_eq!(error_kind(&replies[3]), "EXECABORT");
}

#[tokio::test]
async fn limits_are_refused_with_errors_naming_them() {
    let (addr, node) = start(16).await;
    let mut stream = authenticated(addr).await;
    let many: Vec<&[u8]> = std::iter::once(&b"MGET"[..])
        .chain(std::iter::repeat_n(&b"k"[..], RESP_ARGS_MAX))
        .collect();
    let mut bytes = command(&many);
    bytes.extend(command(&[b"PING"]));
    let replies = exchange(&mut stream, &bytes, 2).await;
    let OwnedFrame::Error(text) = &replies[0] else {
        panic!("expected an error, got {:?}", replies[0]);
    };
    assert!(text.contains("RESP_ARGS_MAX"), "{text}");
    assert_eq!(replies[1], status("PONG"), "the connection still works");

    let huge = vec![b'x'; RESP_REQUEST_BYTES_MAX + 1];
    let replies = exchange(&mut stream, &command(&[b"SET", b"k", &huge]), 2).await;
    assert_eq!(
        replies.len(),
        1,
        "the connection is closed after the refusal"
    );
    let OwnedFrame::Error(text) = &replies[0] else {
        panic!("expected an error, got {:?}", replies[0]);
    };
    assert!(text.contains("RESP_REQUEST_BYTES_MAX"), "{text}");
    assert_eq!(node.submits(), 0);
}

#[tokio::test]
async fn clients_over_the_cap_are_refused_as_redis_does() {
    let (addr, _node) = start(1).await;
    let mut first = authenticated(addr).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    let replies = read_frames(&mut second, 1).await;
    assert_eq!(
        replies,
        vec![OwnedFrame::Error(
            "ERR max number of clients reached".to_owned()
        )]
    );
    assert_eq!(
        exchange(&mut first, &command(&[b"PING"]), 1).await,
        vec![status("PONG")]
    );
}

#[tokio::test]
async fn inline_commands_work_as_in_a_terminal() {
    let (addr, _node) = start(16).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let text = format!("AUTH {TOKEN}\r\nSET greeting hello\r\n\r\nGET greeting\nQUIT\r\n");
    let replies = exchange(&mut stream, text.as_bytes(), 5).await;
    assert_eq!(
        replies,
        vec![status("OK"), status("OK"), bulk("hello"), status("OK")]
    );
}

#[tokio::test]
async fn plain_tcp_off_loopback_is_refused() {
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let result = serve(
        FakeNode::new(),
        listener,
        RespConfig::default(),
        std::future::pending(),
    )
    .await;
    assert!(
        matches!(result, Err(RespError::PlainOffLoopback { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_client_without_credentials_can_neither_buffer_nor_linger() {
    let (addr, _node) = start_with(RespConfig {
        auth_timeout_ms: 300,
        ..RespConfig::default()
    })
    .await;
    // A large request before AUTH: refused at the small pre-AUTH bound.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let big = vec![b'x'; RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX];
    let replies = exchange(&mut stream, &command(&[b"AUTH", &big]), 2).await;
    assert_eq!(replies.len(), 1, "closed after the refusal");
    let OwnedFrame::Error(text) = &replies[0] else {
        panic!("expected an error, got {:?}", replies[0]);
    };
    assert!(
        text.contains("RESP_UNAUTHENTICATED_REQUEST_BYTES_MAX"),
        "{text}"
    );

    // Silence (or chatter) without AUTH: closed after the auth timeout.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let replies = exchange(&mut stream, &command(&[b"PING"]), 1).await;
    assert_eq!(error_kind(&replies[0]), "NOAUTH");
    let replies = read_frames(&mut stream, 2).await;
    assert_eq!(replies.len(), 1, "closed after the refusal");
    let OwnedFrame::Error(text) = &replies[0] else {
        panic!("expected an error, got {:?}", replies[0]);
    };
    assert!(text.contains("no AUTH within 300 ms"), "{text}");

    // An authenticated connection outlives the auth timeout.
    let mut stream = authenticated(addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        exchange(&mut stream, &command(&[b"PING"]), 1).await,
        vec![status("PONG")]
    );
}

#[tokio::test]
async fn a_read_larger_than_the_reply_limit_is_refused_before_it_is_copied() {
    let (addr, _node) = start(16).await;
    let mut stream = authenticated(addr).await;
    let value = vec![b'v'; RESP_BULK_BYTES_MAX];
    let keys: Vec<Vec<u8>> = (0..RESP_REPLY_BYTES_MAX / RESP_BULK_BYTES_MAX + 1)
        .map(|i| format!("big{i}").into_bytes())
        .collect();
    for key in &keys {
        let replies = exchange(&mut stream, &command(&[b"SET", key, &value]), 1).await;
        assert_eq!(replies, vec![status("OK")]);
    }
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(keys.iter().map(Vec::as_slice));
    let replies = exchange(&mut stream, &command(&mget), 1).await;
    let OwnedFrame::Error(text) = &replies[0] else {
        panic!("expected an error, got a reply of another kind");
    };
    assert!(text.contains("RESP_REPLY_BYTES_MAX"), "{text}");
    // One key fewer fits.
    mget.pop();
    let replies = exchange(&mut stream, &command(&mget), 1).await;
    let OwnedFrame::Array(values) = &replies[0] else {
        panic!("expected an array");
    };
    assert_eq!(values.len(), keys.len() - 1);
}

#[tokio::test]
async fn a_deeply_nested_request_is_refused_and_the_node_lives_on() {
    let (addr, _node) = start(16).await;
    let mut attacker = authenticated(addr).await;
    let mut bytes = b"*1\r\n".repeat(100_000);
    bytes.extend(command(&[b"PING"]));
    let replies = exchange(&mut attacker, &bytes, 2).await;
    assert_eq!(replies.len(), 1, "closed after the refusal");
    let OwnedFrame::Error(text) = &replies[0] else {
        panic!("expected an error, got {:?}", replies[0]);
    };
    assert!(text.contains("expected '$'"), "{text}");
    let mut other = authenticated(addr).await;
    assert_eq!(
        exchange(&mut other, &command(&[b"PING"]), 1).await,
        vec![status("PONG")]
    );
}
