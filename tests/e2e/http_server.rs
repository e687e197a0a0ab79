//! End-to-end tests (http_server): the public HTTPS server against the real
//! binary: who may read receipts (users and auditors), how connections are
//! bounded (header, idle and body timeouts, the connection cap), early
//! refusals that curl over HTTP/2 can read, and the JSON envelope of the
//! server's own refusals (414, 431).

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use stele_api::token_hash;
use stele_tests::raw::{self, RawStream};
use stele_tests::{Auth, Method, NodeConfig, TestNode};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// An auditor's token, configured by its hash.
const AUDITOR_TOKEN: &str = "auditor-token-for-the-e2e-test";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A node started with `config` (TOML) as its configuration file.
fn start_with_config(dir: &Path, config: &str) -> TestNode {
    let file = dir.join("stele.toml");
    std::fs::write(&file, config).unwrap();
    let mut node_config = NodeConfig::new(Path::new(BIN), &dir.join("data"));
    node_config.extra_args = vec!["--config".to_owned(), file.to_str().unwrap().to_owned()];
    TestNode::start_with(node_config)
}

#[test]
fn receipts_need_a_user_or_auditor_token_and_auditors_stay_off_app() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[auditors]]\nname = \"audit\"\ntoken_sha256 = \"{}\"\n",
        hex(&token_hash(AUDITOR_TOKEN))
    );
    let node = start_with_config(dir.path(), &config);
    let id = node.put("m", "k", "v");
    let receipt = format!("/node/receipt?transaction_id={id}");
    let auditor = Auth::Bearer(AUDITOR_TOKEN.to_owned());

    assert_eq!(node.get_public(&receipt).expect_error(401), "Unauthorized");
    let wrong = Auth::Bearer("not-a-token".to_owned());
    let reply = node.request(Method::GET, &receipt, None, None, &wrong);
    assert_eq!(reply.expect_error(401), "Unauthorized");
    // The user's token and the auditor's both read it, and it verifies.
    node.get(&receipt).expect_status(200);
    let reply = node.request(Method::GET, &receipt, None, None, &auditor);
    let text = reply.expect_status(200).text();
    let parsed: stele_history::Receipt = serde_json::from_str(&text).unwrap();
    parsed.verify(&node.public_key()).unwrap();
    // An auditor's token is valid, but not on /app: 403 (401 is for no token).
    let reply = node.request(Method::GET, "/app/kv/m/k", None, None, &auditor);
    assert_eq!(reply.expect_error(403), "Forbidden");
    let body = br#"{"ops":[{"op":"put","map":"m","key":"a","value":"x"}]}"#.to_vec();
    let reply = node.request(
        Method::POST,
        "/app/tx",
        Some(body),
        Some("application/json"),
        &auditor,
    );
    assert_eq!(reply.expect_error(403), "Forbidden");
    // Checkpoints and consistency proofs stay public.
    node.get_public("/node/checkpoint").expect_status(200);
}

/// How long a test waits for the node to close what it must close: many times
/// the timeouts configured below, so that only a node that never closes fails.
const CLOSE_WAIT: Duration = Duration::from_secs(20);

/// The half-sent heads of the header-timeout test (the issue's measurement).
const HALF_SENT_HEADS: usize = 200;

fn raw_connect(node: &TestNode) -> Result<RawStream, String> {
    let pem = std::fs::read(node.data_dir().join("tls").join("node.crt")).unwrap();
    raw::connect(node.address(), &pem, CLOSE_WAIT)
}

/// A keep-alive `GET path` (no token).
fn keep_alive_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: stele\r\n\r\n").into_bytes()
}

#[test]
fn half_sent_request_heads_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with_config(
        dir.path(),
        "[api]\nheader_read_timeout_ms = 1000\nidle_timeout_ms = 600000\n",
    );
    let mut streams: Vec<RawStream> = (0..HALF_SENT_HEADS)
        .map(|index| {
            let mut stream = raw_connect(&node).unwrap_or_else(|e| panic!("#{index}: {e}"));
            stream
                .write_all(b"POST /app/tx HTTP/1.1\r\nHost: stele\r\nContent-Le")
                .and_then(|()| stream.flush())
                .unwrap();
            stream
        })
        .collect();
    // One shared deadline: a node that never closes costs CLOSE_WAIT, not
    // CLOSE_WAIT per connection.
    let deadline = Instant::now() + CLOSE_WAIT;
    let mut still_open = 0;
    for stream in &mut streams {
        let left = deadline.saturating_duration_since(Instant::now());
        if raw::read_to_close(stream, left).is_err() {
            still_open += 1;
        }
    }
    println!(
        "{still_open} of {HALF_SENT_HEADS} half-sent heads still open {CLOSE_WAIT:?} after they \
         were sent (header timeout 1 s; the open ones were waited for until then, the others \
         had closed after {:?})",
        CLOSE_WAIT.saturating_sub(deadline.saturating_duration_since(Instant::now()))
    );
    assert_eq!(still_open, 0, "half-sent heads left open");
    // The node still serves.
    node.get_public("/node/commit").expect_status(200);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    // The header timeout (which hyper also runs between HTTP/1 requests) is
    // long: the idle timeout is what must close the connection.
    let node = start_with_config(
        dir.path(),
        "[api]\nheader_read_timeout_ms = 600000\nidle_timeout_ms = 500\n",
    );
    let mut stream = raw_connect(&node).unwrap();
    let reply = raw::send_and_read(&mut stream, &keep_alive_get("/node/commit")).unwrap();
    assert_eq!(reply.status, 200);
    raw::read_to_close(&mut stream, CLOSE_WAIT)
        .unwrap_or_else(|error| panic!("the idle connection was not closed: {error}"));
}

#[test]
fn connections_above_the_cap_are_refused_while_existing_ones_keep_working() {
    const CAP: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let node = start_with_config(dir.path(), &format!("[api]\nconnections_max = {CAP}\n"));
    let mut held: Vec<RawStream> = (0..CAP)
        .map(|index| {
            let mut stream = raw_connect(&node).unwrap_or_else(|e| panic!("#{index}: {e}"));
            let reply = raw::send_and_read(&mut stream, &keep_alive_get("/node/commit")).unwrap();
            assert_eq!(reply.status, 200, "#{index}");
            stream
        })
        .collect();
    // Above the cap: closed before the TLS handshake completes, or right after.
    let refused = raw_connect(&node).and_then(|mut stream| {
        raw::send_and_read(&mut stream, &keep_alive_get("/node/commit"))
            .map(|reply| format!("served: {}", reply.status))
    });
    assert!(refused.is_err(), "connection above the cap: {refused:?}");
    // The connections held are served as before.
    for (index, stream) in held.iter_mut().enumerate() {
        let reply = raw::send_and_read(stream, &keep_alive_get("/node/state")).unwrap();
        assert_eq!(reply.status, 200, "#{index} after the refusal");
    }
    // Closing one frees its place (once the node has seen the close).
    drop(held.pop());
    let served = (0..200).find_map(|_| {
        let reply = raw_connect(&node).and_then(|mut stream| {
            raw::send_and_read(&mut stream, &keep_alive_get("/node/commit"))
        });
        match reply {
            Ok(reply) => Some(reply.status),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
        }
    });
    assert_eq!(served, Some(200), "no place freed by a closed connection");
    assert!(
        node.log_tail().contains("connection cap reached"),
        "the refusal is not logged:\n{}",
        node.log_tail()
    );
}

#[test]
fn slow_bodies_are_cut_off_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with_config(dir.path(), "[api]\nbody_read_timeout_ms = 500\n");
    let token = node.token().to_owned();
    for (path, authorization) in [
        ("/raft/append", String::new()),
        ("/app/tx", format!("Authorization: Bearer {token}\r\n")),
    ] {
        let mut stream = raw_connect(&node).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: stele\r\n{authorization}Content-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{\"ops\":["
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.flush().unwrap();
        let answer = raw::read_to_close(&mut stream, CLOSE_WAIT)
            .unwrap_or_else(|error| panic!("{path}: the slow body was not cut off: {error}"));
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 408") && answer.contains("\"RequestTimeout\""),
            "{path}: {answer}"
        );
    }
}

/// The body curl sends in the early-refusal test: well under the 1 MiB limit,
/// well over HTTP/2's initial 64 KiB window.
const CURL_BODY_BYTES: usize = 512 * 1024;

#[test]
fn curl_over_http2_gets_the_json_of_an_early_refusal() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: curl is not installed (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start_with_config(dir.path(), "");
    let body = dir.path().join("big.json");
    std::fs::write(&body, vec![b'x'; CURL_BODY_BYTES]).unwrap();
    let certificate = node.data_dir().join("tls").join("node.crt");
    let token = format!("Authorization: Bearer {}", node.token());
    for (name, path, content_type, authorization, status, code) in [
        (
            "no token",
            "/app/tx",
            "application/json",
            None,
            401,
            "Unauthorized",
        ),
        (
            "unknown route",
            "/nope",
            "application/json",
            None,
            404,
            "NotFound",
        ),
        (
            "wrong method",
            "/node/commit",
            "application/json",
            None,
            405,
            "MethodNotAllowed",
        ),
        (
            "not JSON",
            "/app/tx",
            "text/plain",
            Some(token.as_str()),
            415,
            "UnsupportedMediaType",
        ),
    ] {
        let mut command = std::process::Command::new("curl");
        command
            .args(["--http2", "--silent", "--show-error", "--cacert"])
            .arg(&certificate)
            .args(["--header", &format!("Content-Type: {content_type}")])
            .args(["--write-out", "\n%{http_version} %{http_code}"])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("https://{}{path}", node.address()));
        if let Some(authorization) = authorization {
            command.args(["--header", authorization]);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: curl {}: {}{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let (json, versions) = stdout.rsplit_once('\n').unwrap();
        assert_eq!(versions, format!("2 {status}"), "{name}: {stdout}");
        let json: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(json["error"]["code"], code, "{name}: {stdout}");
    }
}

#[test]
fn the_servers_own_refusals_carry_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with_config(dir.path(), "");
    // 414: a request target over 8192 bytes (hyper's own limit is 65534).
    let long = format!("/node/tx?transaction_id=1.{}", "1".repeat(9000));
    assert_eq!(node.get_public(&long).expect_error(414), "UriTooLong");
    // 431: more than 64 header fields (hyper's own limit is 100).
    let many: Vec<(&str, String)> = (0..70).map(|i| ("X-Filler", i.to_string())).collect();
    let reply = node
        .raw_request("GET", "/node/commit", &Auth::None, &many, b"")
        .unwrap();
    assert_eq!(reply.expect_error(431), "HeadersTooLarge");
    // 431: more than 16 KiB of headers.
    let big = [("X-Filler", "x".repeat(20_000))];
    let reply = node
        .raw_request("GET", "/node/commit", &Auth::None, &big, b"")
        .unwrap();
    assert_eq!(reply.expect_error(431), "HeadersTooLarge");
    // Within the limits, served.
    let few: Vec<(&str, String)> = (0..40).map(|i| ("X-Filler", i.to_string())).collect();
    let reply = node
        .raw_request("GET", "/node/commit", &Auth::None, &few, b"")
        .unwrap();
    reply.expect_status(200);
}

#[test]
fn an_oversized_admin_body_names_the_admin_limit() {
    const ADMIN_TOKEN: &str = "admin-token-for-the-e2e-test";
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[admin]\ntoken_sha256 = \"{}\"\n",
        hex(&token_hash(ADMIN_TOKEN))
    );
    let node = start_with_config(dir.path(), &config);
    let admin = Auth::Bearer(ADMIN_TOKEN.to_owned());
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("Content-Length", "5000".to_owned()),
    ];
    let reply = node
        .raw_request("POST", "/admin/members", &admin, &headers, b"{\"id\":")
        .unwrap();
    assert_eq!(reply.expect_error(413), "PayloadTooLarge");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("4096"), "{message}");
    // A body within it is read (and judged on its content).
    let body = serde_json::json!({"id": 2, "address": "", "public_key": "00"}).to_string();
    let reply = node.request(
        Method::POST,
        "/admin/members",
        Some(body.into_bytes()),
        Some("application/json"),
        &admin,
    );
    assert_eq!(reply.expect_error(400), "InvalidBody");
}

/// The open-file limit the descriptor-reserve test gives the node (soft and
/// hard): 256 for connections once the reserve is kept.
const FD_LIMIT: u64 = 512;

/// More connections than that limit allows.
const CONNECTIONS_TRIED: usize = 600;

/// Refusals after which the test stops opening connections.
const REFUSALS_ENOUGH: usize = 3;

/// How long a connection attempt of that test may take (a node out of file
/// descriptors never answers the handshake).
const REFUSAL_WAIT: Duration = Duration::from_secs(5);

#[test]
fn clients_cannot_take_the_ledgers_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    // The node runs under `ulimit -n 512` (soft and hard).
    let wrapper = dir.path().join("stele-limited.sh");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nulimit -n {FD_LIMIT} || exit 1\nexec '{BIN}' \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = dir.path().join("stele.toml");
    // The smallest chunks: every write below opens a new ledger file. Long
    // timeouts: only the cap keeps the descriptors.
    std::fs::write(
        &config,
        "[ledger]\nchunk_bytes = 4096\n\
         [api]\nheader_read_timeout_ms = 600000\nidle_timeout_ms = 600000\n",
    )
    .unwrap();
    let mut node_config = NodeConfig::new(&wrapper, &dir.path().join("data"));
    node_config.extra_args = vec!["--config".to_owned(), config.to_str().unwrap().to_owned()];
    let node = TestNode::start_with(node_config);

    // The test's own client connects first (and keeps its connection).
    node.get_public("/node/commit").expect_status(200);
    // Take every other connection the node allows, and then some.
    let pem = std::fs::read(node.data_dir().join("tls").join("node.crt")).unwrap();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..CONNECTIONS_TRIED {
        match raw::connect(node.address(), &pem, REFUSAL_WAIT) {
            Ok(stream) => held.push(stream),
            Err(_) => refused += 1,
        }
        if refused == REFUSALS_ENOUGH {
            break;
        }
    }
    println!(
        "{} of {CONNECTIONS_TRIED} connections held, {refused} refused (open-file limit {FD_LIMIT})",
        held.len()
    );
    assert!(refused > 0, "no connection refused");
    // Each write opens a ledger chunk: all must commit.
    let value = "v".repeat(4096);
    for index in 0..20 {
        node.put("m", &format!("k{index}"), &value);
    }
    let chunks = std::fs::read_dir(node.ledger_dir()).unwrap().count();
    assert!(chunks > 20, "{chunks} files in the ledger folder");
    assert!(
        !node.log_tail().contains("Too many open files"),
        "{}",
        node.log_tail()
    );
    // The connections held are still served.
    let reply = raw::send_and_read(&mut held[0], &keep_alive_get("/node/commit")).unwrap();
    assert_eq!(reply.status, 200);
}
