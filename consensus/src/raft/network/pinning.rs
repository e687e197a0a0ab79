//! The peer client's TLS: a peer is reached under the server name
//! `node-<id>.peer.stele` (which makes it serve the certificate derived from
//! its node key instead of its client-facing one) and accepted only if its TLS
//! handshake is signed by the pinned Ed25519 key of member `<id>`.

use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// The server names of peers end with this; the server side (stele-api's TLS)
/// serves its node-key certificate to such names.
pub const PEER_SERVER_NAME_SUFFIX: &str = ".peer.stele";

/// The server name under which node `id` is called.
pub fn peer_server_name(id: u64) -> String {
    format!("node-{id}{PEER_SERVER_NAME_SUFFIX}")
}

/// The DER of an Ed25519 `SubjectPublicKeyInfo` up to the key (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Accepts exactly one server: the holder of `key`.
///
/// What authenticates the server is the handshake signature (TLS 1.3
/// CertificateVerify, TLS 1.2 ServerKeyExchange), checked here against the
/// pinned key itself rather than against the key the certificate names: only
/// the holder of the pinned private key can make it. The certificate is only
/// checked to carry that key, for a clear error when a peer serves another.
#[derive(Debug)]
pub(super) struct PinnedKey {
    key: VerifyingKey,
}

/// A rustls client configuration that accepts only the holder of `key`.
pub(super) fn client_config(key: VerifyingKey) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedKey { key }))
        .with_no_client_auth())
}

impl PinnedKey {
    fn verify(
        &self,
        message: &[u8],
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let refused = || rustls::Error::InvalidCertificate(CertificateError::BadSignature);
        if signed.scheme != SignatureScheme::ED25519 {
            return Err(refused());
        }
        let signature = Signature::from_slice(signed.signature()).map_err(|_| refused())?;
        self.key
            .verify_strict(message, &signature)
            .map_err(|_| refused())?;
        Ok(HandshakeSignatureValid::assertion())
    }
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(self.key.as_bytes());
        let carries_key = end_entity
            .as_ref()
            .windows(spki.len())
            .any(|window| window == spki.as_slice());
        if !carries_key {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, signed)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        signed: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, signed)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}
