//! Bearer tokens for `/app/*`: `Authorization: Bearer <token>`, checked by
//! comparing SHA-256(token) with every configured hash in constant time. The
//! token itself is never logged nor kept.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::HttpError;

/// The SHA-256 of `token`: what [`crate::ApiConfig::user_token_hashes`] holds.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// True if `path` needs a token: `/app` and everything under it.
pub fn requires_token(path: &str) -> bool {
    path == "/app" || path.starts_with("/app/")
}

/// True if the hash of `token` is one of `hashes`. Every hash is compared, in
/// constant time, whatever matches.
pub fn token_matches(token: &str, hashes: &[[u8; 32]]) -> bool {
    let hash = token_hash(token);
    let matched = hashes.iter().fold(Choice::from(0), |matched, candidate| {
        matched | candidate.ct_eq(&hash)
    });
    bool::from(matched)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive), if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Middleware: 401 `Unauthorized` (with `WWW-Authenticate: Bearer`) for `/app/*`
/// requests without a valid token; other paths pass.
pub async fn require_token(
    State(hashes): State<Arc<[[u8; 32]]>>,
    request: Request,
    next: Next,
) -> Response {
    if !requires_token(request.uri().path()) {
        return next.run(request).await;
    }
    match bearer_token(request.headers()) {
        None => {
            HttpError::unauthorized("this route needs an `Authorization: Bearer <token>` header")
                .into_response()
        }
        Some(token) if !token_matches(token, &hashes) => {
            HttpError::unauthorized("the bearer token is not valid").into_response()
        }
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::{requires_token, token_hash, token_matches};

    #[test]
    fn tokens_match_by_hash() {
        let hashes = [token_hash("a"), token_hash("b")];
        assert!(token_matches("a", &hashes));
        assert!(token_matches("b", &hashes));
        assert!(!token_matches("c", &hashes));
        assert!(!token_matches("a", &[]));
        // SHA-256("abc"), FIPS 180-2.
        assert_eq!(token_hash("abc")[..4], [0xba, 0x78, 0x16, 0xbf],);
    }

    #[test]
    fn only_app_paths_need_a_token() {
        assert!(requires_token("/app"));
        assert!(requires_token("/app/tx"));
        assert!(!requires_token("/application"));
        assert!(!requires_token("/node/state"));
        assert!(!requires_token("/metrics"));
    }
}
