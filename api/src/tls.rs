//! The node's TLS certificate: [`TlsFiles`], [`ensure_self_signed`] (generated
//! once with rcgen, reused afterwards), and loading them into rustls with the
//! `ring` provider.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2`
/// and `http/1.1`) serving the certificate and key of `files`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, ApiError> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| ApiError::Tls(format!("{}: {error}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(ApiError::Tls(format!(
            "{}: no certificate in the file",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|error| ApiError::Tls(format!("{}: {error}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ApiError::Tls(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|error| ApiError::Tls(error.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
