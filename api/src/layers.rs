//! Middleware: the body-size precheck, the overload/timeout error handler, the
//! JSON fallbacks (404, 405), [`refuse`] (an early refusal that reads the body
//! first) and the envelope safety net.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use tower::BoxError;

use crate::error::{codes, HttpError};
use crate::extract::{is_json_content_type, BodyBytesMax};

/// Longest error body the safety net reads to quote it.
const FOREIGN_ERROR_BYTES_MAX: usize = 4096;

/// Middleware: 413 `PayloadTooLarge` if the declared `Content-Length` exceeds
/// the limit, before anything reads the body; records the limit for the body
/// extractors (which cap streamed bodies with the same limit).
pub async fn precheck_body_size(
    State(max): State<usize>,
    mut request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if let Some(declared) = declared {
        if usize::try_from(declared).map_or(true, |declared| declared > max) {
            return HttpError::payload_too_large(max).into_response();
        }
    }
    request.extensions_mut().insert(BodyBytesMax(max));
    next.run(request).await
}

/// Reads the body of `request` to its end and drops it; 413
/// `PayloadTooLarge` as soon as it is longer than the body limit in force. A
/// refusal sent before the body is read makes hyper reset the HTTP/2 stream,
/// and curl then reports the reset (exit 92) instead of the answer; reading it
/// first lets every client see the error. The read is bounded in time by the
/// server's body-read deadline. A client that waits for `100 Continue` has not
/// sent its body: it is not asked to, it gets the refusal at once.
pub async fn drain(request: Request) -> Result<(), HttpError> {
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        return Ok(());
    }
    let max = body_bytes_max(&request);
    let mut body = request.into_body();
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        // A broken body: the connection is going anyway; the refusal stands.
        let Ok(frame) = frame else { return Ok(()) };
        read = read.saturating_add(frame.data_ref().map_or(0, |data| data.len()));
        if read > max {
            return Err(HttpError::payload_too_large(max));
        }
    }
    Ok(())
}

/// `error` as the answer to `request`, once its body has been read (see
/// [`drain`]) up to the body limit in force; beyond it, 413 and the
/// connection is closed. For 401, 403, 404, 405 and 415.
pub async fn refuse(request: Request, error: HttpError) -> Response {
    match drain(request).await {
        Ok(()) => error.into_response(),
        Err(too_large) => {
            let mut response = too_large.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// The body limit [`precheck_body_size`] recorded for `request`, or the
/// default.
pub fn body_bytes_max(request: &Request) -> usize {
    request
        .extensions()
        .get::<BodyBytesMax>()
        .map_or(crate::config::BODY_BYTES_MAX_DEFAULT, |max| max.0)
}

/// Turns the errors of the load-shedding, concurrency and timeout layers into
/// the envelope: 503 `Busy` when saturated, 503 `Timeout` when too slow.
pub async fn overload_error(error: BoxError) -> HttpError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::BUSY,
            "too many requests in flight; retry later",
        )
    } else if error.is::<tower::timeout::error::Elapsed>() {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::TIMEOUT,
            "the request timed out; a submitted transaction may still commit \
             (see GET /node/tx)",
        )
    } else {
        tracing::error!(%error, "middleware error");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error",
        )
    }
}

/// Fallback for unknown routes: 404 `NotFound` (after reading the body).
pub async fn no_route(request: Request) -> Response {
    let error = HttpError::not_found(format!(
        "no route for {} {}",
        request.method(),
        crate::extract::quote(request.uri().path())
    ));
    refuse(request, error).await
}

/// Fallback for known routes with another method: 405 `MethodNotAllowed` (the
/// router adds the `Allow` header), after reading the body.
pub async fn wrong_method(request: Request) -> Response {
    let error = HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            crate::extract::quote(request.uri().path())
        ),
    );
    refuse(request, error).await
}

/// Middleware: a 307 `NotLeader` answer gets a `Location` on the leader with
/// this request's path and query, so a client that follows redirects (curl -L,
/// reqwest) re-sends the write there.
pub async fn leader_location(request: Request, next: Next) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |path| path.as_str().to_owned());
    let mut response = next.run(request).await;
    if response.status() != StatusCode::TEMPORARY_REDIRECT {
        return response;
    }
    let leader = response
        .headers()
        .get(crate::error::LEADER_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|leader| format!("https://{leader}{path}"));
    if let Some(location) = leader.and_then(|location| HeaderValue::from_str(&location).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Middleware, the safety net: a 4xx/5xx response whose body is not JSON (a
/// rejection of the framework that no handler mapped) is rewritten into the
/// envelope, keeping its status and headers and quoting its text as message.
pub async fn ensure_envelope(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || is_json_content_type(response.headers())
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = match axum::body::to_bytes(body, FOREIGN_ERROR_BYTES_MAX).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let code = match status {
        StatusCode::UNAUTHORIZED => codes::UNAUTHORIZED,
        StatusCode::FORBIDDEN => codes::FORBIDDEN,
        StatusCode::NOT_FOUND => codes::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => codes::METHOD_NOT_ALLOWED,
        StatusCode::PAYLOAD_TOO_LARGE => codes::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => codes::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::SERVICE_UNAVAILABLE => codes::UNAVAILABLE,
        status if status.is_client_error() => codes::BAD_REQUEST,
        _ => codes::INTERNAL,
    };
    let (envelope, body) = HttpError::new(status, code, message)
        .into_response()
        .into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &envelope.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt as _;

    use super::ensure_envelope;

    async fn reply(router: Router) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = router
            .layer(axum::middleware::from_fn(ensure_envelope))
            .oneshot(Request::get("/x").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_plain_text_error_becomes_the_envelope() {
        let router = Router::new().route(
            "/x",
            get(|| async { (StatusCode::BAD_REQUEST, [("x-kept", "yes")], "bad thing") }),
        );
        let (status, headers, body) = reply(router).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-kept"], "yes");
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "BadRequest", "message": "bad thing"}})
        );
    }

    #[tokio::test]
    async fn an_empty_error_gets_the_reason_phrase() {
        let router = Router::new().route("/x", get(|| async { StatusCode::BAD_GATEWAY }));
        let (status, _, body) = reply(router).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["error"]["code"], "Internal");
        assert_eq!(body["error"]["message"], "Bad Gateway");
    }
}
