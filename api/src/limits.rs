//! Server-wide request limits, on every route (the peer and admin routes
//! included): [`check_head`] (URI length, header count and size, answered in
//! the JSON envelope) and [`read_deadline`] (a request's body must arrive
//! within the body-read timeout, else 408 and the connection is closed).
//!
//! hyper refuses what is beyond its own limits before any middleware runs,
//! with an empty body: a URI over 65534 bytes (414), more than
//! [`HYPER_HEADERS_MAX`] headers or a head over [`HYPER_HEAD_BYTES_MAX`] (431).
//! Ours are set below those, so that the usual refusals carry the envelope.
//!
//! [`http2_without_connection_header`] keeps `Connection: close` (how every
//! layer and route here ends a request whose body it will not read) to
//! HTTP/1: HTTP/2 forbids the header, and hyper answers a response carrying
//! it by resetting the stream, so the client lost the refusal's status and
//! message. An HTTP/2 stream whose body is left unread is reset by hyper
//! itself after the response.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

use crate::error::{codes, ApiError, HttpError};

/// hyper's own limit on HTTP/1 headers (its default, kept: a higher one costs
/// an allocation per request); ours must be below it.
pub const HYPER_HEADERS_MAX: usize = 100;

/// hyper's own limit on an HTTP/1 request head (its read buffer), in bytes.
pub const HYPER_HEAD_BYTES_MAX: usize = 8192 + 4096 * 100;

/// The limits [`check_head`] and [`read_deadline`] enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest request target (path and query), in bytes: 414 beyond.
    pub uri_bytes_max: usize,
    /// Most header fields: 431 beyond.
    pub headers_max: usize,
    /// Most bytes of header names and values together: 431 beyond.
    pub header_bytes_max: usize,
    /// Longest time to receive a request's body: 408 beyond.
    pub body_read_timeout: Duration,
}

/// Middleware: 414 `UriTooLong` and 431 `HeadersTooLarge`, in the envelope.
pub async fn check_head(
    State(limits): State<RequestLimits>,
    request: Request,
    next: Next,
) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > limits.uri_bytes_max {
        return HttpError::new(
            StatusCode::URI_TOO_LONG,
            codes::URI_TOO_LONG,
            format!(
                "the request target is {uri_bytes} bytes, more than the maximum of {}",
                limits.uri_bytes_max
            ),
        )
        .into_response();
    }
    let headers = request.headers();
    if headers.len() > limits.headers_max {
        return HttpError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            codes::HEADERS_TOO_LARGE,
            format!(
                "{} header fields, more than the maximum of {}",
                headers.len(),
                limits.headers_max
            ),
        )
        .into_response();
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > limits.header_bytes_max {
        return HttpError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            codes::HEADERS_TOO_LARGE,
            format!(
                "the header fields hold {header_bytes} bytes, more than the maximum of {}",
                limits.header_bytes_max
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// Middleware (outermost): drops `Connection` from the responses to HTTP/2
/// requests (see the module's map).
pub async fn http2_without_connection_header(request: Request, next: Next) -> Response {
    let http2 = request.version() >= axum::http::Version::HTTP_2;
    let mut response = next.run(request).await;
    if http2 {
        response.headers_mut().remove(header::CONNECTION);
    }
    response
}

/// Middleware: the request's body must arrive within
/// [`RequestLimits::body_read_timeout`] of the head; past it, reading the body
/// fails, and whatever the handler made of that is replaced by 408
/// `RequestTimeout` with `Connection: close`.
pub async fn read_deadline(
    State(limits): State<RequestLimits>,
    request: Request,
    next: Next,
) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(limits.body_read_timeout)),
        expired: Arc::clone(&expired),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    let mut response = HttpError::new(
        StatusCode::REQUEST_TIMEOUT,
        codes::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {} ms",
            limits.body_read_timeout.as_millis()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A body that fails once its deadline passes with frames still missing.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(ApiError::BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Version;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt as _;

    use super::*;

    async fn closing() -> Response {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    async fn answer(version: Version) -> Response {
        let app = Router::new()
            .route("/", post(closing))
            .layer(axum::middleware::from_fn(http2_without_connection_header));
        let request = Request::builder()
            .method("POST")
            .uri("/")
            .version(version)
            .body(Body::empty())
            .expect("a valid request");
        app.oneshot(request).await.expect("infallible")
    }

    #[tokio::test]
    async fn connection_close_reaches_http1_only() {
        let http1 = answer(Version::HTTP_11).await;
        assert_eq!(http1.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            http1.headers().get(header::CONNECTION),
            Some(&HeaderValue::from_static("close"))
        );
        let http2 = answer(Version::HTTP_2).await;
        assert_eq!(http2.status(), StatusCode::UNAUTHORIZED);
        assert!(http2.headers().get(header::CONNECTION).is_none());
    }
}
