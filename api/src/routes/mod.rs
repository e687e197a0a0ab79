//! [`router`]: every route, its middleware, and [`ROUTES`], the route table.
//!
//! Middleware, outermost first: metrics ([`crate::metrics::track`]), the
//! envelope safety net ([`crate::layers::ensure_envelope`]), the body-size
//! precheck (413), bearer auth on `/app/*` (401), then load shedding (503
//! `Busy`) over a global concurrency limit and a timeout (503 `Timeout`), and
//! the streamed-body limit.

mod app;
mod node;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use prometheus_client::registry::Registry;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

use crate::config::ApiConfig;
use crate::metrics::HttpMetrics;
use crate::node::Node;
use crate::{auth, layers};

/// Every route the router serves, as (method, path pattern). `/openapi.json`
/// documents exactly these (a test checks both directions), and the router is
/// built from calls checked against this table (in debug builds).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/app/tx"),
    ("GET", "/app/kv/{map}/{key}"),
    ("POST", "/app/log"),
    ("GET", "/app/log"),
    ("GET", "/app/smallbank/balance"),
    ("POST", "/app/smallbank/{op}"),
    ("GET", "/node/tx"),
    ("GET", "/node/commit"),
    ("GET", "/node/receipt"),
    ("GET", "/node/checkpoint"),
    ("GET", "/node/consistency"),
    ("GET", "/node/public-key"),
    ("GET", "/node/validators"),
    ("GET", "/node/state"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// What every handler gets.
pub(crate) struct AppState<N> {
    pub(crate) node: Arc<N>,
    pub(crate) registry: Arc<Registry>,
}

impl<N> Clone for AppState<N> {
    fn clone(&self) -> Self {
        AppState {
            node: Arc::clone(&self.node),
            registry: Arc::clone(&self.registry),
        }
    }
}

/// Builds the router while recording what it adds, to check it against
/// [`ROUTES`].
struct Table<N: Node> {
    router: Router<AppState<N>>,
    added: Vec<(&'static str, &'static str)>,
}

impl<N: Node> Table<N> {
    fn new() -> Self {
        Table {
            router: Router::new(),
            added: Vec::new(),
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        route: MethodRouter<AppState<N>>,
    ) -> Self {
        debug_assert!(
            ROUTES.contains(&(method, path)),
            "{method} {path} is missing from ROUTES"
        );
        self.added.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    fn get<H: Handler<T, AppState<N>>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("GET", path, get(handler))
    }

    fn post<H: Handler<T, AppState<N>>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("POST", path, post(handler))
    }

    fn finish(mut self) -> Router<AppState<N>> {
        self.added.sort_unstable();
        let mut expected = ROUTES.to_vec();
        expected.sort_unstable();
        debug_assert_eq!(self.added, expected, "the router must serve exactly ROUTES");
        self.router
    }
}

/// The whole HTTP API over `node`: the routes of [`ROUTES`], bearer auth on
/// `/app/*`, the limits of `config`, and `/metrics` serving `registry` (the
/// node's metrics) with the HTTP metrics added to it.
pub fn router<N: Node>(node: Arc<N>, config: ApiConfig, mut registry: Registry) -> Router {
    let metrics = HttpMetrics::register(&mut registry);
    let state = AppState {
        node,
        registry: Arc::new(registry),
    };
    let tokens = auth::Tokens {
        users: config.user_token_hashes.into(),
        auditors: config.auditor_token_hashes.into(),
    };
    let overload = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(layers::overload_error))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(
            config.requests_in_flight_max.max(1),
        ))
        .timeout(Duration::from_millis(config.request_timeout_ms));
    Table::<N>::new()
        .post("/app/tx", app::submit_tx::<N>)
        .get("/app/kv/{map}/{key}", app::kv_get::<N>)
        .post("/app/log", app::log_record::<N>)
        .get("/app/log", app::log_read::<N>)
        .get("/app/smallbank/balance", app::smallbank_balance::<N>)
        .post("/app/smallbank/{op}", app::smallbank_submit::<N>)
        .get("/node/tx", node::tx_status::<N>)
        .get("/node/commit", node::commit::<N>)
        .get("/node/receipt", node::receipt::<N>)
        .get("/node/checkpoint", node::checkpoint::<N>)
        .get("/node/consistency", node::consistency::<N>)
        .get("/node/public-key", node::public_key::<N>)
        .get("/node/validators", node::validators::<N>)
        .get("/node/state", node::state::<N>)
        .get("/metrics", node::metrics::<N>)
        .get("/openapi.json", node::openapi)
        .finish()
        .method_not_allowed_fallback(layers::wrong_method)
        .fallback(layers::no_route)
        .layer(DefaultBodyLimit::max(config.body_bytes_max))
        .layer(overload)
        .layer(from_fn_with_state(tokens, auth::require_token))
        .layer(from_fn_with_state(
            config.body_bytes_max,
            layers::precheck_body_size,
        ))
        .layer(from_fn(layers::ensure_envelope))
        .layer(from_fn(layers::leader_location))
        .layer(from_fn_with_state(metrics, crate::metrics::track))
        .with_state(state)
}
