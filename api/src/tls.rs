//! The node's TLS certificate: [`TlsFiles`], [`ensure_self_signed`] (generated
//! once with rcgen, reused afterwards), and loading them into rustls with the
//! `ring` provider.
//!
//! Peers get another certificate: [`write_peer_certificate`] makes one from the
//! node's Ed25519 node key, beside the client-facing one, and [`server_config`]
//! serves it to clients that ask for a server name ending in
//! [`PEER_SERVER_NAME_SUFFIX`] (the peer client, which pins that key).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::error::ApiError;

/// Name of the certificate file [`ensure_self_signed`] writes.
pub const CERT_FILE: &str = "node.crt";
/// Name of the private key file [`ensure_self_signed`] writes (mode 0600).
pub const KEY_FILE: &str = "node.key";
/// The names the self-signed certificate is valid for.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// The certificate's common name.
const COMMON_NAME: &str = "Stele node";
/// Name of the peer certificate file [`write_peer_certificate`] writes beside
/// [`CERT_FILE`].
pub const PEER_CERT_FILE: &str = "peer.crt";
/// Name of its private key file (the node key, as PKCS#8; mode 0600).
pub const PEER_KEY_FILE: &str = "peer.key";
/// Server names ending with this get the peer certificate; the same suffix as
/// stele-consensus' `raft::network::PEER_SERVER_NAME_SUFFIX` (the peer client).
pub const PEER_SERVER_NAME_SUFFIX: &str = ".peer.stele";
/// PKCS#8 v1 (RFC 8410) of an Ed25519 private key, up to its 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A PEM certificate chain and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ApiError + '_ {
    move |source| ApiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `<dir>/node.crt` and `<dir>/node.key`: reused if both exist; otherwise a
/// new self-signed certificate for `localhost`, `127.0.0.1` and `::1` is
/// generated and written there (each file written to a temporary file, synced,
/// then renamed into place; the key with mode 0600). `dir` is created if
/// needed.
pub fn ensure_self_signed(dir: &Path) -> Result<TlsFiles, ApiError> {
    let files = TlsFiles {
        cert: dir.join(CERT_FILE),
        key: dir.join(KEY_FILE),
    };
    if files.cert.is_file() && files.key.is_file() {
        return Ok(files);
    }
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut params = rcgen::CertificateParams::new(SELF_SIGNED_NAMES.map(str::to_owned).to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, COMMON_NAME);
    let key_pair = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key_pair)?;
    // The key first: a crash between the two renames leaves no certificate, so
    // the next start generates both again.
    write_atomically(&files.key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(&files.cert, cert.pem().as_bytes(), 0o644)?;
    if let Ok(directory) = fs::File::open(dir) {
        // Makes the renames durable; not all platforms can sync a directory.
        let _ = directory.sync_all();
    }
    tracing::info!(cert = %files.cert.display(), "generated a self-signed TLS certificate");
    Ok(files)
}

/// Writes `bytes` to a temporary file beside `path` (created with `mode`),
/// syncs it, and renames it to `path`.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ApiError> {
    let mut temporary_name = path.file_name().unwrap_or_default().to_os_string();
    temporary_name.push(".tmp");
    let temporary = path.with_file_name(temporary_name);
    match fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error(&temporary)(error));
        }
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary).map_err(io_error(&temporary))?;
    file.write_all(bytes).map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(io_error(path))
}

/// Writes `<dir>/peer.crt` and `<dir>/peer.key`: a self-signed certificate for
/// the Ed25519 key whose 32-byte secret is `seed` (the node key), valid for
/// `node-<node_id>.peer.stele`. Written at every start (atomically, the key
/// with mode 0600), so it always matches the node key.
pub fn write_peer_certificate(dir: &Path, node_id: u64, seed: &[u8; 32]) -> Result<(), ApiError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(seed);
    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_slice())?;
    let name = format!("node-{node_id}{PEER_SERVER_NAME_SUFFIX}");
    let mut params = rcgen::CertificateParams::new(vec![name])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, COMMON_NAME);
    let cert = params.self_signed(&key_pair)?;
    write_atomically(
        &dir.join(PEER_KEY_FILE),
        key_pair.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_atomically(&dir.join(PEER_CERT_FILE), cert.pem().as_bytes(), 0o644)
}

/// The certificate chain and key of two PEM files, for rustls.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, ApiError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| ApiError::Tls(format!("{}: {error}", cert.display())))?;
    if certs.is_empty() {
        return Err(ApiError::Tls(format!(
            "{}: no certificate in the file",
            cert.display()
        )));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| ApiError::Tls(format!("{}: {error}", key.display())))?;
    let signing_key = provider
        .key_provider
        .load_private_key(der)
        .map_err(|error| ApiError::Tls(format!("{}: {error}", key.display())))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified
        .keys_match()
        .map_err(|error| ApiError::Tls(format!("{}: {error}", cert.display())))?;
    Ok(Arc::new(certified))
}

/// Picks the peer certificate for peer server names, the client-facing one
/// otherwise (other names, or none: clients calling an IP address send none).
#[derive(Debug)]
struct ByServerName {
    clients: Arc<CertifiedKey>,
    peers: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ByServerName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let peer = hello
            .server_name()
            .is_some_and(|name| name.ends_with(PEER_SERVER_NAME_SUFFIX));
        match (&self.peers, peer) {
            (Some(peers), true) => Some(Arc::clone(peers)),
            _ => Some(Arc::clone(&self.clients)),
        }
    }
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2`
/// and `http/1.1`) serving the certificate and key of `files`, and the peer
/// certificate ([`write_peer_certificate`]) if there is one beside them.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, ApiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let clients = certified_key(&files.cert, &files.key, &provider)?;
    let peer_cert = files.cert.with_file_name(PEER_CERT_FILE);
    let peer_key = files.cert.with_file_name(PEER_KEY_FILE);
    let peers = if peer_cert.is_file() && peer_key.is_file() {
        Some(certified_key(&peer_cert, &peer_key, &provider)?)
    } else {
        None
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ApiError::Tls(error.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ByServerName { clients, peers }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    // Test code: a panic is a failed test.
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConnection};

    use super::{ensure_self_signed, server_config, write_peer_certificate};

    /// Accepts any server and keeps the certificate it served (the handshake
    /// signatures are not checked: only which certificate comes is tested).
    #[derive(Debug, Default)]
    struct Keep(Mutex<Option<Vec<u8>>>);

    impl ServerCertVerifier for Keep {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            *self.0.lock().unwrap() = Some(end_entity.to_vec());
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }

        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// The certificate `server` serves to a client asking for `name` (an
    /// in-memory handshake).
    fn served(server: Arc<rustls::ServerConfig>, name: &str) -> Vec<u8> {
        let keep = Arc::new(Keep::default());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&keep) as Arc<dyn ServerCertVerifier>)
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut client = ClientConnection::new(Arc::new(config), name).unwrap();
        let mut server = ServerConnection::new(server).unwrap();
        while client.is_handshaking() || server.is_handshaking() {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes).unwrap();
            server.read_tls(&mut bytes.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            bytes.clear();
            server.write_tls(&mut bytes).unwrap();
            client.read_tls(&mut bytes.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        let served = keep.0.lock().unwrap().take();
        served.unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    #[test]
    fn peers_get_the_node_key_certificate_and_clients_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure_self_signed(dir.path()).unwrap();
        let without_peers = server_config(&files).unwrap();
        let seed = [7u8; 32];
        write_peer_certificate(dir.path(), 3, &seed).unwrap();
        let config = server_config(&files).unwrap();

        let mut pkcs8 = super::ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let node_key = rcgen::KeyPair::try_from(pkcs8.as_slice())
            .unwrap()
            .public_key_raw()
            .to_vec();
        let to_peer = served(Arc::clone(&config), "node-3.peer.stele");
        assert!(contains(&to_peer, &node_key));
        for name in ["localhost", "node-3.peer.stele.example"] {
            let to_client = served(Arc::clone(&config), name);
            assert!(!contains(&to_client, &node_key), "{name}");
            assert_eq!(to_client, served(Arc::clone(&without_peers), name));
        }
        // Without a peer certificate, peers get the client-facing one.
        let fallback = served(without_peers, "node-3.peer.stele");
        assert!(!contains(&fallback, &node_key));
    }
}
