//! Errors: [`HttpError`], the envelope every 4xx/5xx response carries, and
//! [`ApiError`], this crate's own error type (starting the server, TLS files).
//!
//! The envelope: `{"error":{"code":"...","message":"..."}}`, plus
//! `"transaction_id"` when a transaction was ordered and aborted, and
//! `"details"` (the abort reason's fields) for aborts.

use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use stele_frontends::{AbortReason, FrontendError};
use stele_history::TransactionId;

use crate::node::NodeError;

/// The error codes this API answers with, and their statuses (see
/// `docs/api.md`). A node's `BadRequest` may add codes of its own (400).
pub mod codes {
    /// 400: the body is not JSON (syntax error, truncated, trailing data).
    pub const MALFORMED_JSON: &str = "MalformedJson";
    /// 400: the JSON does not fit the schema (unknown, missing or mistyped field).
    pub const INVALID_BODY: &str = "InvalidBody";
    /// 400: a query parameter is missing, unknown, repeated or malformed.
    pub const INVALID_QUERY: &str = "InvalidQuery";
    /// 400: a path segment is malformed (e.g. not UTF-8 once decoded).
    pub const INVALID_PATH: &str = "InvalidPath";
    /// 400: a transaction id is not `<view>.<seqno>` in canonical decimal.
    pub const INVALID_TRANSACTION_ID: &str = "InvalidTransactionId";
    /// 400: a consistency range is not `from <= to <= committed`.
    pub const INVALID_RANGE: &str = "InvalidRange";
    /// 400: more operations than allowed in one transaction.
    pub const TOO_MANY_OPS: &str = "TooManyOps";
    /// 400: a string (map, key, value, message, claims) longer than its limit.
    pub const FIELD_TOO_LONG: &str = "FieldTooLong";
    /// 400: an argument outside its range (e.g. `from == to`).
    pub const INVALID_ARGUMENT: &str = "InvalidArgument";
    /// 400: the command failed validation at execution (abort).
    pub const INVALID_COMMAND: &str = "InvalidCommand";
    /// 400: a SmallBank amount that must not be negative is (abort).
    pub const NEGATIVE_AMOUNT: &str = "NegativeAmount";
    /// 400 (or another 4xx): any other malformed request the framework refused.
    pub const BAD_REQUEST: &str = "BadRequest";
    /// 401: `/app/*` or a receipt without a valid `Authorization: Bearer` token.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// 403: a valid token whose role may not use the route (an auditor's on
    /// `/app/*`).
    pub const FORBIDDEN: &str = "Forbidden";
    /// 404: no such route, key, record, account, receipt or checkpoint.
    pub const NOT_FOUND: &str = "NotFound";
    /// 404: a SmallBank account does not exist (abort).
    pub const UNKNOWN_ACCOUNT: &str = "UnknownAccount";
    /// 404: `POST /app/smallbank/{op}` with an unknown op.
    pub const UNKNOWN_OPERATION: &str = "UnknownOperation";
    /// 405: the route exists, not with this method (see the `Allow` header).
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    /// 409: a `check` operation did not hold (abort).
    pub const CHECK_FAILED: &str = "CheckFailed";
    /// 409: a SmallBank account to create exists already (abort).
    pub const ACCOUNT_EXISTS: &str = "AccountExists";
    /// 409: a balance would go below zero (abort).
    pub const INSUFFICIENT_FUNDS: &str = "InsufficientFunds";
    /// 409: a balance computation overflowed (abort).
    pub const OVERFLOW: &str = "Overflow";
    /// 409: a stored balance is not a decimal integer (abort).
    pub const CORRUPT_BALANCE: &str = "CorruptBalance";
    /// 409: a value read for the response is not UTF-8 (abort).
    pub const VALUE_NOT_UTF8: &str = "ValueNotUtf8";
    /// 408: the request body did not arrive within the body-read timeout (the
    /// connection is closed).
    pub const REQUEST_TIMEOUT: &str = "RequestTimeout";
    /// 413: the body is larger than the configured maximum.
    pub const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";
    /// 414: the request target (path and query) is longer than the maximum.
    pub const URI_TOO_LONG: &str = "UriTooLong";
    /// 431: more header fields, or more header bytes, than the maximum.
    pub const HEADERS_TOO_LARGE: &str = "HeadersTooLarge";
    /// 415: a body route without `Content-Type: application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
    /// 500: something broke inside the node.
    pub const INTERNAL: &str = "Internal";
    /// 503: too many requests in flight, or a node queue is full; retry later.
    pub const BUSY: &str = "Busy";
    /// 503: the node is shutting down or not the primary.
    pub const UNAVAILABLE: &str = "Unavailable";
    /// 503: the request took longer than the configured timeout (a submitted
    /// transaction may still commit).
    pub const TIMEOUT: &str = "Timeout";
    /// 307 (to the leader) or 503 (no leader known): writes go to the leader.
    pub const NOT_LEADER: &str = "NotLeader";
    /// 507: the node's disk is full; writes resume once space is freed.
    pub const INSUFFICIENT_STORAGE: &str = "InsufficientStorage";
}

/// The response header naming the leader's `host:port` on a 307.
pub const LEADER_HEADER: &str = "stele-leader";

/// An error answered over HTTP: a status and the JSON envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable, machine-readable code (see [`codes`]).
    pub code: &'static str,
    /// What is wrong, for humans.
    pub message: String,
    /// The id of the aborted transaction, if one was ordered.
    pub transaction_id: Option<TransactionId>,
    /// Structured details (an abort reason's fields).
    pub details: Option<Value>,
}

impl HttpError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            transaction_id: None,
            details: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `NotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }

    /// 413 `PayloadTooLarge`.
    pub fn payload_too_large(max: usize) -> Self {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the maximum of {max} bytes"),
        )
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }

    /// The body of the response, `{"error":{...}}`.
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(id) = self.transaction_id {
            error["transaction_id"] = Value::String(id.to_string());
        }
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        json!({ "error": error })
    }

    /// A transaction that was ordered as `id` and aborted for `reason`. It
    /// occupies its seqno (with an empty write set), so the id is reported.
    pub fn aborted(id: TransactionId, reason: &AbortReason) -> Self {
        let (status, code, message) = abort_status(reason);
        let mut details = serde_json::to_value(reason).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut details {
            fields.remove("reason");
        }
        HttpError {
            status,
            code,
            message: format!("transaction {id} aborted: {message}"),
            transaction_id: Some(id),
            details: Some(details),
        }
    }
}

/// Status, code and message of an abort reason.
fn abort_status(reason: &AbortReason) -> (StatusCode, &'static str, String) {
    use StatusCode as S;
    match reason {
        AbortReason::CheckFailed { op_index, map, key } => (
            S::CONFLICT,
            codes::CHECK_FAILED,
            format!("the check of ops[{op_index}] ({map}/{key}) did not hold"),
        ),
        // Only a RESP EXEC carries watches; were one sent over HTTPS, it is
        // a failed check like any other.
        AbortReason::WatchedKeyChanged { key } => (
            S::CONFLICT,
            codes::CHECK_FAILED,
            format!("the watched key {key} changed"),
        ),
        AbortReason::NotFound { map, key } => (
            S::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no value for {map}/{key}"),
        ),
        AbortReason::ValueNotUtf8 { map, key } => (
            S::CONFLICT,
            codes::VALUE_NOT_UTF8,
            format!("the value of {map}/{key} is not UTF-8"),
        ),
        AbortReason::UnknownAccount { account } => (
            S::NOT_FOUND,
            codes::UNKNOWN_ACCOUNT,
            format!("account {account} does not exist"),
        ),
        AbortReason::AccountExists { account } => (
            S::CONFLICT,
            codes::ACCOUNT_EXISTS,
            format!("account {account} exists already"),
        ),
        AbortReason::InsufficientFunds { account } => (
            S::CONFLICT,
            codes::INSUFFICIENT_FUNDS,
            format!("account {account} has insufficient funds"),
        ),
        AbortReason::NegativeAmount { amount_cents } => (
            S::BAD_REQUEST,
            codes::NEGATIVE_AMOUNT,
            format!("the amount {amount_cents} must not be negative"),
        ),
        AbortReason::Overflow => (
            S::CONFLICT,
            codes::OVERFLOW,
            "a balance computation overflowed".to_owned(),
        ),
        AbortReason::CorruptBalance { map, key } => (
            S::CONFLICT,
            codes::CORRUPT_BALANCE,
            format!("the balance at {map}/{key} is not a decimal integer"),
        ),
        AbortReason::InvalidCommand { message } => (
            S::BAD_REQUEST,
            codes::INVALID_COMMAND,
            format!("invalid command: {message}"),
        ),
    }
}

impl From<NodeError> for HttpError {
    fn from(error: NodeError) -> Self {
        match error {
            NodeError::NotFound(message) => HttpError::not_found(message),
            NodeError::BadRequest { code, message } => HttpError::bad_request(code, message),
            NodeError::Busy(message) => {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, codes::BUSY, message)
            }
            NodeError::Unavailable(message) => {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message)
            }
            NodeError::InsufficientStorage(message) => HttpError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                codes::INSUFFICIENT_STORAGE,
                message,
            ),
            NodeError::Internal(message) => {
                HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, message)
            }
            NodeError::NotLeader {
                leader_address: Some(address),
                message,
            } => HttpError {
                details: Some(serde_json::json!({ "leader_address": address })),
                ..HttpError::new(StatusCode::TEMPORARY_REDIRECT, codes::NOT_LEADER, message)
            },
            NodeError::NotLeader {
                leader_address: None,
                message,
            } => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, codes::NOT_LEADER, message),
        }
    }
}

impl From<FrontendError> for HttpError {
    fn from(error: FrontendError) -> Self {
        let message = error.to_string();
        match error {
            FrontendError::Malformed { message } => {
                HttpError::bad_request(codes::INVALID_BODY, message)
            }
            FrontendError::CommandTooLarge { max, .. } => HttpError::payload_too_large(max),
            FrontendError::TooManyOps { .. } => {
                HttpError::bad_request(codes::TOO_MANY_OPS, message)
            }
            FrontendError::FieldTooLong { .. } => {
                HttpError::bad_request(codes::FIELD_TOO_LONG, message)
            }
            FrontendError::InvalidArgument { .. }
            | FrontendError::TooManyKeys { .. }
            | FrontendError::ArgumentsTooLarge { .. }
            | FrontendError::EmptyArguments { .. } => {
                HttpError::bad_request(codes::INVALID_ARGUMENT, message)
            }
            FrontendError::UndeclaredKey { .. } => {
                HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, message)
            }
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(address) = self
            .details
            .as_ref()
            .filter(|_| self.status == StatusCode::TEMPORARY_REDIRECT)
            .and_then(|details| details.get("leader_address"))
            .and_then(Value::as_str)
            .and_then(|address| HeaderValue::from_str(address).ok())
        {
            // The Location (with this request's path) is set by
            // `layers::leader_location`, which sees the request.
            headers.insert(LEADER_HEADER, address);
        }
        response
    }
}

/// This crate's own errors: starting the server and its TLS files, a
/// request body cut off by its deadline, and a validator set that does not
/// hold together.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The self-signed certificate could not be generated.
    #[error("generating the self-signed certificate: {0}")]
    CertificateGeneration(#[from] rcgen::Error),
    /// The certificate or key file is not usable by rustls.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The listening address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("serving HTTPS: {0}")]
    Serve(std::io::Error),
    /// A request body did not arrive within the body-read timeout (the error
    /// a handler reading it sees; the client gets 408).
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// A validator set as `GET /node/validators` describes it that does not
    /// hold together (see [`crate::ValidatorsInfo::to_quorum`]).
    #[error("the validators: {0}")]
    InvalidValidators(String),
}
