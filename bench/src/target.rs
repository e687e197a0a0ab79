//! [`Connection`]: one keep-alive HTTPS connection of the load generator, which
//! follows the leader, and the TLS trust and token every connection shares.
//!
//! Each simulated client owns one `reqwest::Client` whose pool keeps at most one
//! idle connection per host, and sends one request at a time, so `--clients C`
//! means exactly C keep-alive connections (plus one more per client that was
//! redirected to another node). Redirects are not left to reqwest: a 307 from a
//! follower names the leader (`Location`, or the `stele-leader` header), and the
//! client re-sends the request there and keeps that node for what follows.
//!
//! The same client also drives etcd's JSON gateway (`--workload etcd-put`):
//! plain `http://`, no token, no redirects (etcd forwards proposals to its
//! leader itself).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

/// How many 307 hops one request may follow before it counts as failed (a
/// cluster whose nodes point at each other during an election).
pub const REDIRECTS_MAX: usize = 3;
/// The header a follower names the leader's `host:port` in.
const LEADER_HEADER: &str = "stele-leader";
/// How long establishing a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept: longer than any pause in a run.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// One request of a workload: method, path (query included) and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// GET or POST.
    pub method: Method,
    /// The path and query, starting with `/`.
    pub path: String,
    /// The JSON body of a POST.
    pub body: Option<String>,
}

impl Request {
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Request {
        Request {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    /// `POST path` with a JSON body.
    pub fn post(path: impl Into<String>, body: String) -> Request {
        Request {
            method: Method::POST,
            path: path.into(),
            body: Some(body),
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    /// The final status (after any redirects followed).
    pub status: StatusCode,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The start of the body as text, for error messages.
    pub fn excerpt(&self) -> String {
        const EXCERPT_BYTES_MAX: usize = 300;
        let end = self.body.len().min(EXCERPT_BYTES_MAX);
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }
}

/// How a request failed below HTTP: the key it is counted under.
pub fn transport_failure(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "transport"
    }
}

/// How every connection trusts the nodes and authenticates.
#[derive(Debug, Clone)]
pub struct Access {
    roots: Vec<reqwest::Certificate>,
    insecure: bool,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl Access {
    /// No token and no certificate: a plain-HTTP peer (etcd's JSON gateway).
    pub fn plain(timeout: Duration) -> Access {
        Access {
            roots: Vec::new(),
            insecure: false,
            authorization: None,
            timeout,
        }
    }

    /// Trust the PEM certificates in `cacerts` (every one of them: in a cluster
    /// each node has its own self-signed certificate), or any certificate with
    /// `insecure`; send the bearer token read from `token_file`.
    pub fn new(
        cacerts: &[PathBuf],
        insecure: bool,
        token_file: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Access> {
        if cacerts.is_empty() && !insecure {
            bail!(
                "no way to trust the node's certificate: pass --cacert <pem> (a node's \
                 <data dir>/tls/node.crt), --data-dir, or --insecure"
            );
        }
        let mut roots = Vec::new();
        for path in cacerts {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the certificate {}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            if certificates.is_empty() {
                bail!("{} holds no PEM certificate", path.display());
            }
            roots.extend(certificates);
        }
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("reading the token file {}", token_file.display()))?;
        let token = token.trim();
        if token.is_empty() {
            bail!("the token file {} is empty", token_file.display());
        }
        let authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).with_context(|| {
                format!(
                    "the token in {} is not a valid header value",
                    token_file.display()
                )
            })?;
        Ok(Access {
            roots,
            insecure,
            authorization: Some(authorization),
            timeout,
        })
    }

    /// A new client with its own connection to `base` (`https://host:port`).
    pub fn connect(&self, base: &str) -> anyhow::Result<Connection> {
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT.min(self.timeout))
            .timeout(self.timeout)
            // Loopback benchmarks must not go through a proxy from the environment.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tls_built_in_root_certs(false)
            .danger_accept_invalid_certs(self.insecure);
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        let http = builder.build().context("building the HTTPS client")?;
        Ok(Connection {
            http,
            base: base.to_owned(),
            authorization: self.authorization.clone(),
            redirects: 0,
        })
    }
}

/// Checks `url` is `https://host[:port]` with nothing after, and returns it
/// without a trailing slash.
pub fn parse_base_url(url: &str) -> anyhow::Result<String> {
    parse_origin(url, "https")
}

/// Checks `url` is `scheme://host[:port]` with nothing after, and returns it
/// without a trailing slash (`http` for etcd's gateway).
pub fn parse_origin(url: &str, scheme: &str) -> anyhow::Result<String> {
    let parsed = Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
    if parsed.scheme() != scheme {
        bail!("--url {url:?}: only {scheme}:// is served by this target");
    }
    if parsed.host_str().is_none() {
        bail!("--url {url:?} names no host");
    }
    if parsed.path() != "/" || parsed.query().is_some() {
        bail!("--url {url:?}: give the node's origin only (https://host:port), no path");
    }
    Ok(parsed.origin().ascii_serialization())
}

/// One client's keep-alive connection and the node it currently talks to.
#[derive(Debug)]
pub struct Connection {
    http: reqwest::Client,
    base: String,
    authorization: Option<HeaderValue>,
    redirects: u64,
}

impl Connection {
    /// The node this client talks to now, `https://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// How many 307s to the leader this client followed.
    pub fn redirects(&self) -> u64 {
        self.redirects
    }

    /// Sends `request` and reads the whole response. A 307 naming a leader is
    /// followed (at most [`REDIRECTS_MAX`] hops), and the leader becomes this
    /// client's node. `Err` only for failures below HTTP.
    pub async fn send(&mut self, request: &Request) -> Result<Reply, reqwest::Error> {
        let mut hops = 0;
        loop {
            let mut builder = self.http.request(
                request.method.clone(),
                format!("{}{}", self.base, request.path),
            );
            if let Some(authorization) = &self.authorization {
                builder = builder.header(AUTHORIZATION, authorization.clone());
            }
            if let Some(body) = &request.body {
                builder = builder
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.clone());
            }
            let response = builder.send().await?;
            let status = response.status();
            if status == StatusCode::TEMPORARY_REDIRECT && hops < REDIRECTS_MAX {
                if let Some(leader) = leader_origin(response.headers()) {
                    if leader != self.base {
                        // Drain the body so the old connection can be reused.
                        response.bytes().await?;
                        self.base = leader;
                        self.redirects += 1;
                        hops += 1;
                        continue;
                    }
                }
            }
            let body = response.bytes().await?;
            return Ok(Reply {
                status,
                body: body.to_vec(),
            });
        }
    }
}

/// The leader's origin named by a 307: `Location` first, else `stele-leader`.
fn leader_origin(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let from_location = headers
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|location| Url::parse(location).ok())
        .filter(|url| url.scheme() == "https" && url.host_str().is_some())
        .map(|url| url.origin().ascii_serialization());
    from_location.or_else(|| {
        headers
            .get(LEADER_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|leader| parse_base_url(&format!("https://{leader}")).ok())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn base_urls_are_origins_only() {
        assert_eq!(
            parse_base_url("https://127.0.0.1:8443/").unwrap(),
            "https://127.0.0.1:8443"
        );
        assert_eq!(
            parse_base_url("https://localhost:9441").unwrap(),
            "https://localhost:9441"
        );
        assert!(parse_base_url("http://127.0.0.1:8443").is_err());
        assert!(parse_base_url("https://127.0.0.1:8443/app/log").is_err());
        assert!(parse_base_url("127.0.0.1:8443").is_err());
        assert_eq!(
            parse_origin("http://127.0.0.1:2379", "http").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert!(parse_origin("https://127.0.0.1:2379", "http").is_err());
    }

    #[test]
    fn the_leader_comes_from_location_then_the_leader_header() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(leader_origin(&headers), None);
        headers.insert(LEADER_HEADER, HeaderValue::from_static("127.0.0.1:9442"));
        assert_eq!(
            leader_origin(&headers).as_deref(),
            Some("https://127.0.0.1:9442")
        );
        headers.insert(
            LOCATION,
            HeaderValue::from_static("https://127.0.0.1:9443/app/log?wait=true"),
        );
        assert_eq!(
            leader_origin(&headers).as_deref(),
            Some("https://127.0.0.1:9443")
        );
    }
}
