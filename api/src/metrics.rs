//! HTTP metrics, registered in the node's `prometheus-client` registry and
//! served with the node's own at `GET /metrics`:
//!
//! - `stele_http_requests_total{route,method,status}` — a counter;
//! - `stele_http_request_duration_seconds{route,method}` — a latency histogram.
//!
//! `route` is the route pattern (e.g. `/app/kv/{map}/{key}`), or `unmatched`,
//! so that label values stay few whatever clients send.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::{codes, HttpError};

/// The content type of `GET /metrics` (OpenMetrics text, which Prometheus reads).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Smallest latency bucket bound: 100 microseconds.
const LATENCY_BUCKET_FIRST_SECONDS: f64 = 0.0001;
/// Latency buckets: 100 us doubling up to about 3.3 s, then +Inf.
const LATENCY_BUCKETS: u16 = 16;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        LATENCY_BUCKET_FIRST_SECONDS,
        2.0,
        LATENCY_BUCKETS,
    ))
}

/// The HTTP layer's metrics (cheap to clone: the families are shared).
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "stele_http_requests",
            "HTTP requests answered, by route, method and status",
            metrics.requests.clone(),
        );
        registry.register(
            "stele_http_request_duration_seconds",
            "Time from request to response head, by route and method",
            metrics.latency.clone(),
        );
        metrics
    }

    fn record(&self, route: String, method: String, status: StatusCode, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: method.clone(),
                status: status.as_u16(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route, method })
            .observe(seconds);
    }
}

/// The method as a label value: the standard ones by name, others `other`.
fn method_label(method: &Method) -> String {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
        Method::CONNECT,
    ];
    if KNOWN.contains(method) {
        method.as_str().to_owned()
    } else {
        "other".to_owned()
    }
}

/// Middleware: counts and times every request.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    tracing::debug!(%method, %route, status = response.status().as_u16(), ?elapsed, "request");
    metrics.record(route, method, response.status(), elapsed.as_secs_f64());
    response
}

/// `GET /metrics`: the registry in OpenMetrics text.
pub fn render(registry: &Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(METRICS_CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(error) => HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            format!("encoding the metrics failed: {error}"),
        )
        .into_response(),
    }
}
