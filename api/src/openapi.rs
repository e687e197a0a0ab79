//! The OpenAPI 3.1 document served at `GET /openapi.json`, hand-written in
//! `src/openapi.json`. A test checks that its operations are exactly
//! [`crate::ROUTES`].

/// The document, as served.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");
