//! Extractors that report every rejection in the error envelope: [`JsonBody`]
//! for bodies, [`QueryParams`] for query strings, [`path_error`] for paths.

use std::fmt::Display;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use stele_history::TransactionId;

use crate::error::{codes, HttpError};

/// The body limit in force for a request, put in its extensions by
/// [`crate::layers::precheck_body_size`] so that rejections can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyBytesMax(pub usize);

/// Longest piece of client input quoted back in an error message.
const QUOTED_CHARS_MAX: usize = 64;

/// A JSON body: `Content-Type: application/json` (or `application/*+json`)
/// required (else 415), size bounded (413), syntax errors are 400
/// `MalformedJson`, schema errors 400 `InvalidBody` with serde's message
/// prefixed by the path of the field (e.g. `ops[0].value: invalid type`).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, HttpError> {
        if !is_json_content_type(request.headers()) {
            // Read the body first, so that the client gets the answer.
            crate::layers::drain(request).await?;
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with `Content-Type: application/json`",
            ));
        }
        let max = request.extensions().get::<BodyBytesMax>().copied();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| body_rejection(&rejection, max))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// True for `application/json` and `application/<anything>+json`, parameters
/// (e.g. `; charset=utf-8`) aside.
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(text) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_rejection(rejection: &BytesRejection, max: Option<BodyBytesMax>) -> HttpError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let max = max.map_or(crate::config::BODY_BYTES_MAX_DEFAULT, |max| max.0);
        return HttpError::payload_too_large(max);
    }
    HttpError::bad_request(codes::INVALID_BODY, rejection.body_text())
}

/// Parses `bytes` as one JSON document of type `T` (no trailing data).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        json_error(error.inner(), (path != ".").then_some(path))
    })?;
    deserializer
        .end()
        .map_err(|error| json_error(&error, None))?;
    Ok(value)
}

/// 400 `MalformedJson` for syntax errors, `InvalidBody` for schema errors.
pub fn json_error(error: &serde_json::Error, path: Option<String>) -> HttpError {
    let message = match path {
        Some(path) => format!("{path}: {error}"),
        None => error.to_string(),
    };
    match error.classify() {
        serde_json::error::Category::Data => HttpError::bad_request(codes::INVALID_BODY, message),
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => HttpError::bad_request(codes::MALFORMED_JSON, message),
    }
}

/// A path that did not parse: 400 `InvalidPath`.
pub fn path_error(rejection: &PathRejection) -> HttpError {
    HttpError::bad_request(codes::INVALID_PATH, rejection.body_text())
}

/// The query string as decoded (name, value) pairs. Handlers name the
/// parameters they accept ([`QueryParams::allow`]), then read them typed; every
/// failure is 400 `InvalidQuery` (or `InvalidTransactionId`) naming the
/// parameter.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, HttpError> {
        let Query(pairs) =
            Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(|rejection| {
                HttpError::bad_request(codes::INVALID_QUERY, rejection.body_text())
            })?;
        Ok(QueryParams(pairs))
    }
}

impl QueryParams {
    /// Refuses parameters not in `names`, and repeated ones.
    pub fn allow(&self, names: &[&str]) -> Result<&Self, HttpError> {
        for (index, (name, _)) in self.0.iter().enumerate() {
            if !names.contains(&name.as_str()) {
                let expected = names
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let expected = if expected.is_empty() {
                    "none".to_owned()
                } else {
                    expected
                };
                return Err(HttpError::bad_request(
                    codes::INVALID_QUERY,
                    format!(
                        "unknown query parameter `{}` (expected: {expected})",
                        quote(name)
                    ),
                ));
            }
            if self.0[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(HttpError::bad_request(
                    codes::INVALID_QUERY,
                    format!("query parameter `{name}` is repeated"),
                ));
            }
        }
        Ok(self)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    /// The parameter `name` parsed as `T`; `expected` describes `T` for the
    /// error message (e.g. "an unsigned integer").
    pub fn optional<T: FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>, HttpError>
    where
        T::Err: Display,
    {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|_| {
            HttpError::bad_request(
                codes::INVALID_QUERY,
                format!(
                    "query parameter `{name}` must be {expected}, got `{}`",
                    quote(text)
                ),
            )
        })
    }

    /// Like [`QueryParams::optional`], but the parameter must be present.
    pub fn required<T: FromStr>(&self, name: &str, expected: &str) -> Result<T, HttpError>
    where
        T::Err: Display,
    {
        self.optional(name, expected)?.ok_or_else(|| {
            HttpError::bad_request(
                codes::INVALID_QUERY,
                format!("missing query parameter `{name}` ({expected})"),
            )
        })
    }

    /// The required parameter `name` as a transaction id `<view>.<seqno>`.
    pub fn transaction_id(&self, name: &str) -> Result<TransactionId, HttpError> {
        let text: String = self.required(name, "a transaction id `<view>.<seqno>`")?;
        parse_transaction_id(&text)
    }
}

/// Parses `<view>.<seqno>` strictly; 400 `InvalidTransactionId` if it is not.
pub fn parse_transaction_id(text: &str) -> Result<TransactionId, HttpError> {
    text.parse().map_err(|_| {
        HttpError::bad_request(
            codes::INVALID_TRANSACTION_ID,
            format!(
                "`{}` is not a transaction id: expected `<view>.<seqno>` in canonical decimal",
                quote(text)
            ),
        )
    })
}

/// At most 64 characters of `text` (then `...`), for error messages.
pub fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTED_CHARS_MAX {
        return text.to_owned();
    }
    let mut quoted: String = text.chars().take(QUOTED_CHARS_MAX).collect();
    quoted.push_str("...");
    quoted
}
