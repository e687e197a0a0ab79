//! The real server: a self-signed certificate, HTTPS on 127.0.0.1:0, a rustls
//! client trusting that certificate, then a graceful shutdown.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;

use serde_json::{json, Value};
use support::{app, FakeNode, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_submit_read_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let tls_dir = dir.path().join("tls");
    let files = stele_api::ensure_self_signed(&tls_dir).unwrap();
    let cert_pem = std::fs::read(&files.cert).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second call reuses the files.
    assert_eq!(stele_api::ensure_self_signed(&tls_dir).unwrap(), files);
    assert_eq!(std::fs::read(&files.cert).unwrap(), cert_pem);
    let leftovers: Vec<_> = std::fs::read_dir(&tls_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let node = FakeNode::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(stele_api::serve_listener(
        app(&node),
        listener,
        files,
        async move {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert_pem).unwrap())
        .https_only(true)
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let base = format!("https://{host}:{port}");
        let response = client
            .post(format!("{base}/app/tx"))
            .bearer_auth(TOKEN)
            .json(&json!({"ops": [{"op": "put", "map": "m", "key": host, "value": "v"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "Committed");
        let written = body["transaction_id"].clone();

        let response = client
            .get(format!("{base}/app/kv/m/{host}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["value"], "v");
        assert_eq!(body["transaction_id"], written);

        let response = client
            .get(format!("{base}/app/kv/m/{host}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    assert_eq!(node.submits(), 2);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        client
            .get(format!("https://127.0.0.1:{port}/node/state"))
            .send()
            .await
            .is_err(),
        "the server still answers after shutdown"
    );
}

#[test]
fn serving_without_a_usable_certificate_fails() {
    // Serving needs TLS files (there is no plain HTTP entry point); without a
    // usable certificate the server refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let files = stele_api::TlsFiles {
        cert: dir.path().join("missing.crt"),
        key: dir.path().join("missing.key"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let node = FakeNode::new();
    let result = runtime.block_on(stele_api::serve_listener(
        app(&node),
        listener,
        files,
        std::future::pending(),
    ));
    assert!(
        matches!(result, Err(stele_api::ApiError::Tls(_))),
        "{result:?}"
    );
}
