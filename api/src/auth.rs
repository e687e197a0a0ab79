//! Bearer tokens: `Authorization: Bearer <token>`, checked by comparing
//! SHA-256(token) with every configured hash in constant time. The token
//! itself is never logged nor kept.
//!
//! Two roles: users (everything) and auditors (receipts, but not `/app/*`).
//! Receipts need a token because their write-set and claims digests let
//! anyone holding one confirm a guessed value; checkpoints, consistency proofs
//! and the rest of `/node/*` stay public.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::{codes, HttpError};

/// The SHA-256 of `token`: what [`crate::ApiConfig::user_token_hashes`] holds.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who may call a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// Users only: `/app` and everything under it.
    Users,
    /// Users and auditors: receipts.
    Readers,
}

/// The role a valid token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A `[[users]]` token.
    User,
    /// An `[[auditors]]` token.
    Auditor,
}

/// The token hashes of each role, as the auth middleware holds them.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// Users' token hashes.
    pub users: Arc<[[u8; 32]]>,
    /// Auditors' token hashes.
    pub auditors: Arc<[[u8; 32]]>,
}

impl Tokens {
    /// The role of `token`, if it is valid. Both lists are compared whole, in
    /// constant time, whatever matches.
    pub fn role(&self, token: &str) -> Option<Role> {
        let user = token_matches(token, &self.users);
        let auditor = token_matches(token, &self.auditors);
        if user {
            Some(Role::User)
        } else if auditor {
            Some(Role::Auditor)
        } else {
            None
        }
    }
}

/// Who may call `path`.
pub fn access(path: &str) -> Access {
    if path == "/app" || path.starts_with("/app/") {
        Access::Users
    } else if path == "/node/receipt" {
        Access::Readers
    } else {
        Access::Public
    }
}

/// True if `path` needs a token.
pub fn requires_token(path: &str) -> bool {
    access(path) != Access::Public
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

/// Why a request may not pass, if it may not.
fn refusal(access: Access, headers: &HeaderMap, tokens: &Tokens) -> Option<HttpError> {
    if access == Access::Public {
        return None;
    }
    let Some(token) = bearer_token(headers) else {
        return Some(HttpError::unauthorized(
            "this route needs an `Authorization: Bearer <token>` header",
        ));
    };
    match (tokens.role(token), access) {
        (None, _) => Some(HttpError::unauthorized("the bearer token is not valid")),
        (Some(Role::Auditor), Access::Users) => Some(HttpError::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "an auditor token reads receipts, not /app",
        )),
        (Some(_), _) => None,
    }
}

/// Middleware: 401 `Unauthorized` (with `WWW-Authenticate: Bearer`) for
/// `/app/*` and receipts without a valid token, 403 `Forbidden` for an
/// auditor's token on `/app/*`; other paths pass. A refused request's body is
/// read (and dropped) first, so that the client gets the answer.
pub async fn require_token(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    match refusal(access(request.uri().path()), request.headers(), &tokens) {
        None => next.run(request).await,
        Some(error) => crate::layers::refuse(request, error).await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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
    fn app_paths_need_a_user_and_receipts_a_reader() {
        assert_eq!(access("/app"), Access::Users);
        assert_eq!(access("/app/tx"), Access::Users);
        assert_eq!(access("/node/receipt"), Access::Readers);
        assert_eq!(access("/application"), Access::Public);
        assert_eq!(access("/node/state"), Access::Public);
        assert_eq!(access("/node/checkpoint"), Access::Public);
        assert_eq!(access("/node/public-key"), Access::Public);
        assert_eq!(access("/node/validators"), Access::Public);
        assert_eq!(access("/metrics"), Access::Public);
        assert!(!requires_token("/node/consistency"));
    }

    #[test]
    fn auditors_read_receipts_but_not_app() {
        let tokens = Tokens {
            users: vec![token_hash("user")].into(),
            auditors: vec![token_hash("auditor")].into(),
        };
        let with = |token: &str| {
            let mut headers = HeaderMap::new();
            let value = format!("Bearer {token}").parse().unwrap();
            headers.insert(header::AUTHORIZATION, value);
            headers
        };
        let status = |access, token| refusal(access, &with(token), &tokens).map(|e| e.status);
        assert_eq!(status(Access::Readers, "auditor"), None);
        assert_eq!(status(Access::Readers, "user"), None);
        assert_eq!(status(Access::Users, "user"), None);
        assert_eq!(
            status(Access::Users, "auditor"),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(Access::Readers, "nobody"),
            Some(StatusCode::UNAUTHORIZED)
        );
        let none = refusal(Access::Readers, &HeaderMap::new(), &tokens);
        assert_eq!(none.map(|e| e.status), Some(StatusCode::UNAUTHORIZED));
    }
}
