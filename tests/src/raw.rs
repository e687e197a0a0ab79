//! One HTTP/1.1 exchange written by hand over TLS, for requests a normal client
//! will not send: a `Content-Length` that promises a body the client then never
//! sends, to prove the node refuses it (413) before reading it.
//!
//! Why not reqwest: when a client really sends an oversized body, the node answers
//! 413 and closes while the client is still writing; the close resets the
//! connection and the client may report the write error instead of the answer
//! (it did, in about 1 run in 6). Sending only the head makes the exchange exact.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The most a raw response may hold; more is a failure, not a hang.
const RESPONSE_BYTES_MAX: usize = 1 << 20;

/// A parsed raw response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A TLS connection made by hand (see [`connect`]).
pub type RawStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `address` trusting only `certificate_pem`, its handshake
/// done; reads and writes time out after `timeout`.
pub fn connect(
    address: SocketAddr,
    certificate_pem: &[u8],
    timeout: Duration,
) -> Result<RawStream, String> {
    let certificate = CertificateDer::from_pem_slice(certificate_pem)
        .map_err(|error| format!("the node certificate is not PEM: {error}"))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(certificate)
        .map_err(|error| format!("the node certificate is unusable: {error}"))?;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS configuration: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = ServerName::from(address.ip());
    let connection = ClientConnection::new(Arc::new(config), name)
        .map_err(|error| format!("TLS connection: {error}"))?;
    let socket = TcpStream::connect_timeout(&address, timeout)
        .map_err(|error| format!("connect to {address}: {error}"))?;
    socket
        .set_read_timeout(Some(timeout))
        .and_then(|()| socket.set_write_timeout(Some(timeout)))
        .map_err(|error| format!("socket timeouts: {error}"))?;
    let mut stream = StreamOwned::new(connection, socket);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|error| format!("TLS handshake with {address}: {error}"))?;
    }
    Ok(stream)
}

/// Reads from `stream` until the server closes it (`Ok` with what was read) or
/// `timeout` passes without a byte (`Err`).
pub fn read_to_close(stream: &mut RawStream, timeout: Duration) -> Result<Vec<u8>, String> {
    stream
        .sock
        .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(|error| format!("socket timeout: {error}"))?;
    let mut read = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Ok(read),
            Ok(count) => read.extend_from_slice(&buffer[..count]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                return Ok(read)
            }
            Err(error) => return Err(format!("still open after {} bytes ({error})", read.len())),
        }
    }
}

/// Writes `request` on `stream` and reads one whole response (the connection
/// may stay open).
pub fn send_and_read(stream: &mut RawStream, request: &[u8]) -> Result<RawResponse, String> {
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|error| format!("write the request: {error}"))?;
    let mut response = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = stream
            .read(&mut buffer)
            .map_err(|error| format!("read the response: {error}"))?;
        if read == 0 {
            return parse(&response, true)?
                .ok_or_else(|| "the connection closed inside the response".to_owned());
        }
        response.extend_from_slice(&buffer[..read]);
        if let Some(parsed) = parse(&response, false)? {
            return Ok(parsed);
        }
    }
}

/// Connects to `address` over TLS trusting only `certificate_pem`, writes
/// `request` as is, and reads the response until the server closes the connection
/// or `timeout` passes between reads. The request should say `Connection: close`.
pub fn exchange(
    address: SocketAddr,
    certificate_pem: &[u8],
    request: &[u8],
    timeout: Duration,
) -> Result<RawResponse, String> {
    let mut stream = connect(address, certificate_pem, timeout)?;
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|error| format!("write the request: {error}"))?;

    let mut response = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                response.extend_from_slice(&buffer[..read]);
                if response.len() > RESPONSE_BYTES_MAX {
                    return Err(format!(
                        "a response of more than {RESPONSE_BYTES_MAX} bytes"
                    ));
                }
                // A complete response ends the exchange even if the server keeps
                // the connection open.
                if let Some(parsed) = parse(&response, false)? {
                    return Ok(parsed);
                }
            }
            // A close without TLS close_notify, after the whole response, is fine.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(error) => {
                return Err(format!(
                    "read the response (after {} bytes: {:?}): {error}",
                    response.len(),
                    String::from_utf8_lossy(&response)
                ))
            }
        }
    }
    parse(&response, true)?.ok_or_else(|| {
        format!(
            "the connection closed inside the response: {:?}",
            String::from_utf8_lossy(&response)
        )
    })
}

/// Writes `head`, then up to `body_bytes` bytes of zeros, over a new TLS
/// connection (like [`exchange`]), stopping at the first failed write (the
/// server refused and closed). Returns how many body bytes were written; the
/// response is not read.
pub fn send_body(
    address: SocketAddr,
    certificate_pem: &[u8],
    head: &[u8],
    body_bytes: usize,
    timeout: Duration,
) -> Result<usize, String> {
    const CHUNK_BYTES: usize = 64 * 1024;
    let mut stream = connect(address, certificate_pem, timeout)?;
    stream
        .write_all(head)
        .map_err(|error| format!("write the head: {error}"))?;
    let chunk = vec![0u8; CHUNK_BYTES];
    let mut written = 0;
    while written < body_bytes {
        let size = CHUNK_BYTES.min(body_bytes - written);
        if stream.write_all(&chunk[..size]).is_err() {
            break;
        }
        written += size;
    }
    let _ = stream.flush();
    Ok(written)
}

/// `Ok(None)` while `bytes` is not a whole response yet; `closed` says the server
/// has closed the connection (which ends a body without a length).
fn parse(bytes: &[u8], closed: bool) -> Result<Option<RawResponse>, String> {
    let Some(head_end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&bytes[..head_end])
        .map_err(|_| "the response head is not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP/1 status line: {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut response = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &bytes[head_end + 4..];
    if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("content-length {length:?}"))?;
        if rest.len() < length {
            return Ok(None);
        }
        response.body = rest[..length].to_vec();
        return Ok(Some(response));
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|encoding| encoding.eq_ignore_ascii_case("chunked"))
    {
        return Ok(dechunk(rest)?.map(|body| RawResponse { body, ..response }));
    }
    // Neither: the body runs to the close.
    if !closed {
        return Ok(None);
    }
    response.body = rest.to_vec();
    Ok(Some(response))
}

/// The body of a chunked encoding, or `Ok(None)` if it is not complete yet.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|window| window == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| "a chunk size is not UTF-8".to_owned())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::{dechunk, parse};

    #[test]
    fn responses_parse_when_whole() {
        let whole = b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let response = parse(whole, false).unwrap().unwrap();
        assert_eq!(response.status, 413);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.body, b"{}");
        assert!(parse(&whole[..whole.len() - 1], false).unwrap().is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\n", true).unwrap().is_none());
        assert!(parse(b"SMTP 200\r\n\r\n", true).is_err());
        let unbounded = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        assert!(parse(unbounded, false).unwrap().is_none());
        assert_eq!(parse(unbounded, true).unwrap().unwrap().body, b"all of it");
        assert_eq!(
            dechunk(b"2\r\n{}\r\n1\r\n \r\n0\r\n\r\n").unwrap(),
            Some(b"{} ".to_vec())
        );
        assert_eq!(dechunk(b"2\r\n{").unwrap(), None);
    }
}
