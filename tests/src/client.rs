//! [`NodeClient`]: HTTPS to one node, trusting its self-signed certificate and
//! carrying its bearer token; [`Reply`]: a response read whole.
//!
//! A `NodeClient` is cheap to clone and can be moved to client threads; it stays
//! bound to the address it was made for, so after a node restarts (on a new port)
//! take a fresh one from the node.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;
use stele_history::{Digest, Receipt, TransactionId, VerifyingKey};

/// How long one request may take before the test fails instead of hanging. Commits
/// take milliseconds; this only bounds a node that stopped answering.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What `Authorization` header a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Bearer <the node's user token>`.
    Token,
    /// No `Authorization` header.
    None,
    /// `Bearer <this token>`.
    Bearer(String),
    /// This exact header value (e.g. a `Basic` scheme).
    Header(String),
}

/// A blocking HTTPS client trusting only the PEM certificate `pem`.
fn http_client(pem: &[u8], timeout: Duration) -> Client {
    let certificate = reqwest::Certificate::from_pem(pem)
        .unwrap_or_else(|error| panic!("the node certificate is not PEM: {error}"));
    Client::builder()
        .add_root_certificate(certificate)
        .tls_built_in_root_certs(false)
        // A proxy from the environment must not see loopback test traffic.
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        // Redirects to the leader are the test's business (other certificate).
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTPS client builds")
}

/// HTTPS to one node at one address.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: Client,
    address: SocketAddr,
    base_url: String,
    certificate_pem: Vec<u8>,
    token: String,
}

impl NodeClient {
    /// A client for `https://<address>` trusting the PEM certificate at
    /// `certificate_path` (and nothing else), sending `token`. The certificate
    /// must name the address's IP (the node's names 127.0.0.1 and localhost).
    pub fn new(address: SocketAddr, certificate_path: &Path, token: &str) -> NodeClient {
        let pem = std::fs::read(certificate_path).unwrap_or_else(|error| {
            panic!(
                "cannot read the node certificate {}: {error}",
                certificate_path.display()
            )
        });
        NodeClient {
            http: http_client(&pem, REQUEST_TIMEOUT),
            address,
            base_url: format!("https://{address}"),
            certificate_pem: pem,
            token: token.to_owned(),
        }
    }

    /// The same client with another request timeout (tests under partitions,
    /// where a request to a cut-off leader must give up quickly).
    pub fn with_timeout(&self, timeout: Duration) -> NodeClient {
        NodeClient {
            http: http_client(&self.certificate_pem, timeout),
            ..self.clone()
        }
    }

    /// The node's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https://<ip>:<port>` of the node.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bearer token this client sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The absolute URL of `path` (which starts with `/`, query included).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends one request; `Err` only for transport failures (refused, reset,
    /// timeout), never for an HTTP error status.
    pub fn try_request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
        auth: &Auth,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.http.request(method.clone(), self.url(path));
        match auth {
            Auth::Token => {
                request = request.header(AUTHORIZATION, format!("Bearer {}", self.token))
            }
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"))
            }
            Auth::Header(value) => request = request.header(AUTHORIZATION, value.as_str()),
        }
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send()?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes()?.to_vec();
        Ok(Reply {
            what: format!("{method} {path}"),
            status,
            content_type,
            body,
        })
    }

    /// One request written by hand (see [`crate::raw`]): `METHOD path HTTP/1.1`,
    /// `Host`, `Connection: close`, the `Authorization` of `auth`, then `headers`
    /// as given (so a `Content-Length` may promise more than `body`), then `body`.
    /// Waits at most [`REQUEST_TIMEOUT`] between reads.
    pub fn raw_request(
        &self,
        method: &str,
        path: &str,
        auth: &Auth,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Reply, String> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        let authorization = match auth {
            Auth::Token => Some(format!("Bearer {}", self.token)),
            Auth::None => None,
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
            Auth::Header(value) => Some(value.clone()),
        };
        if let Some(value) = authorization {
            head.push_str(&format!("Authorization: {value}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let response = crate::raw::exchange(
            self.address,
            &self.certificate_pem,
            &request,
            REQUEST_TIMEOUT,
        )?;
        Ok(Reply {
            what: format!("{method} {path} (raw)"),
            status: response.status,
            content_type: response.header("content-type").map(str::to_owned),
            body: response.body,
        })
    }

    /// [`NodeClient::try_request`], failing the test on a transport error.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
        auth: &Auth,
    ) -> Reply {
        self.try_request(method.clone(), path, body, content_type, auth)
            .unwrap_or_else(|error| panic!("{method} {path}: no response: {}", error_chain(&error)))
    }

    /// `GET path` with the token.
    pub fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, None, &Auth::Token)
    }

    /// `GET path` without any `Authorization` header, as an auditor sends it.
    pub fn get_public(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, None, &Auth::None)
    }

    /// `POST path` with `body` as JSON and the token.
    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.request(
            Method::POST,
            path,
            Some(body.to_string().into_bytes()),
            Some("application/json"),
            &Auth::Token,
        )
    }

    /// [`NodeClient::post_json`] that returns transport errors (for clients that
    /// expect the node to die under them).
    pub fn try_post_json(&self, path: &str, body: &Value) -> Result<Reply, reqwest::Error> {
        self.try_request(
            Method::POST,
            path,
            Some(body.to_string().into_bytes()),
            Some("application/json"),
            &Auth::Token,
        )
    }

    /// `POST path` with raw bytes, an optional content type, and `Bearer <token>`
    /// when `token` is given (no `Authorization` header otherwise).
    pub fn post_raw(
        &self,
        path: &str,
        body: impl Into<Vec<u8>>,
        content_type: Option<&str>,
        token: Option<&str>,
    ) -> Reply {
        let auth = match token {
            Some(token) => Auth::Bearer(token.to_owned()),
            None => Auth::None,
        };
        self.request(Method::POST, path, Some(body.into()), content_type, &auth)
    }

    /// `POST /app/tx` (`?wait=false` unless `wait`) with these operations, expecting
    /// 200; returns the response body.
    pub fn submit(&self, ops: Value, wait: bool) -> Value {
        let path = if wait {
            "/app/tx"
        } else {
            "/app/tx?wait=false"
        };
        self.post_json(path, &serde_json::json!({ "ops": ops }))
            .expect_json(200)
    }

    /// Puts `value` under `map`/`key` and waits for the commit; returns the
    /// transaction id.
    pub fn put(&self, map: &str, key: &str, value: &str) -> TransactionId {
        let reply = self.submit(
            serde_json::json!([{"op": "put", "map": map, "key": key, "value": value}]),
            true,
        );
        assert_eq!(reply["status"], "Committed", "put {map}/{key}: {reply}");
        transaction_id(&reply["transaction_id"])
    }

    /// `GET /node/commit`: the last committed transaction id, if any.
    pub fn commit(&self) -> Option<TransactionId> {
        let reply = self.get_public("/node/commit").expect_json(200);
        match &reply["transaction_id"] {
            Value::Null => None,
            id => Some(transaction_id(id)),
        }
    }

    /// `GET /node/tx`: `Unknown`, `Pending`, `Committed` or `Invalid`.
    pub fn tx_status(&self, id: TransactionId) -> String {
        let reply = self
            .get_public(&format!("/node/tx?transaction_id={id}"))
            .expect_json(200);
        assert_eq!(
            reply["transaction_id"],
            id.to_string(),
            "/node/tx answered about another transaction: {reply}"
        );
        reply["status"]
            .as_str()
            .unwrap_or_else(|| panic!("/node/tx without a status: {reply}"))
            .to_owned()
    }

    /// Polls `/node/tx` up to `tries` times, `pause` apart, until `id` is
    /// `Committed`; returns every status seen (the last is `Committed` on success).
    pub fn poll_until_committed(
        &self,
        id: TransactionId,
        tries: usize,
        pause: Duration,
    ) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..tries {
            let status = self.tx_status(id);
            let done = status == "Committed";
            seen.push(status);
            if done {
                break;
            }
            std::thread::sleep(pause);
        }
        seen
    }

    /// The receipt JSON of `id` as served (to the user token), expecting 200.
    pub fn receipt_text(&self, id: TransactionId) -> String {
        self.get(&format!("/node/receipt?transaction_id={id}"))
            .expect_status(200)
            .text()
    }

    /// The receipt of `id`, parsed (not verified).
    pub fn receipt(&self, id: TransactionId) -> Receipt {
        let text = self.receipt_text(id);
        serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("the receipt of {id} does not parse: {error}: {text}"))
    }

    /// `GET /node/checkpoint`: the latest signed checkpoint note.
    pub fn checkpoint(&self) -> String {
        self.get_public("/node/checkpoint")
            .expect_status(200)
            .text()
    }

    /// `GET /node/public-key`, whole.
    pub fn public_key_info(&self) -> Value {
        self.get_public("/node/public-key").expect_json(200)
    }

    /// The service's public key as 64 lowercase hex digits.
    pub fn public_key_hex(&self) -> String {
        let info = self.public_key_info();
        info["public_key"]
            .as_str()
            .unwrap_or_else(|| panic!("/node/public-key without public_key: {info}"))
            .to_owned()
    }

    /// The service's public key.
    pub fn public_key(&self) -> VerifyingKey {
        let hex = self.public_key_hex();
        let digest = Digest::from_hex(&hex, "public_key")
            .unwrap_or_else(|error| panic!("public_key {hex:?}: {error}"));
        VerifyingKey::from_bytes(digest.as_bytes())
            .unwrap_or_else(|error| panic!("public_key {hex} is not an Ed25519 key: {error}"))
    }
}

/// An error and its sources, `outer: inner: ...` (reqwest's own message names
/// only the outermost, e.g. "error sending request").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses a JSON string holding `<view>.<seqno>`, failing the test otherwise.
pub fn transaction_id(value: &Value) -> TransactionId {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("not a transaction id: {value}"))
}

/// One response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `METHOD /path`, for failure messages.
    pub what: String,
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, failing the test if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "{} -> {}: the body is not JSON ({error}): {:?}",
                self.what,
                self.status,
                self.text()
            )
        })
    }

    /// Fails the test unless the status is `status`.
    pub fn expect_status(&self, status: u16) -> &Reply {
        assert_eq!(
            self.status,
            status,
            "{} -> {} (expected {status}): {}",
            self.what,
            self.status,
            self.text()
        );
        self
    }

    /// The JSON body of a reply whose status must be `status`.
    pub fn expect_json(&self, status: u16) -> Value {
        self.expect_status(status).json()
    }

    /// `Ok((code, message))` if the body is the error envelope
    /// `{"error":{"code":"...","message":"..."}}` with both non-empty, else what is
    /// wrong with it.
    pub fn error_envelope(&self) -> Result<(String, String), String> {
        let body: Value = serde_json::from_slice(&self.body)
            .map_err(|error| format!("the body is not JSON ({error}): {:?}", self.text()))?;
        let field = |name: &str| -> Result<String, String> {
            match body["error"][name].as_str() {
                Some(text) if !text.is_empty() => Ok(text.to_owned()),
                _ => Err(format!(
                    "no non-empty string error.{name} in the body: {body}"
                )),
            }
        };
        Ok((field("code")?, field("message")?))
    }

    /// Fails the test unless the status is `status` and the body is the error
    /// envelope; returns the error code.
    pub fn expect_error(&self, status: u16) -> String {
        self.expect_status(status);
        match self.error_envelope() {
            Ok((code, _)) => code,
            Err(problem) => panic!("{} -> {status}: {problem}", self.what),
        }
    }
}
