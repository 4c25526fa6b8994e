//! Prometheus metrics (text exposition format, served at `GET /metrics` by
//! `api::metrics`): requests by route template and status, latency,
//! database pool, authentication failures by reason, and rate-limit
//! rejections. Label values come from small fixed sets (route templates,
//! not raw paths; standard methods, else `OTHER`), so cardinality is bounded.

use axum::http::Method;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::db::{PoolStats, StatementCounts};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabels {
    mode: &'static str,
}

/// The method as a metrics label or log field: the standard methods by
/// name, any other as `OTHER`. Why: HTTP allows any token as a method, so a
/// client sending unique (up to 80 KiB) method names would otherwise grow
/// the label set, `/metrics` and the logs without bound.
pub fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    auth_failures: Family<ReasonLabels, Counter>,
    rate_limited: Family<ScopeLabels, Counter>,
    pool: Family<PoolLabels, Gauge<i64, AtomicI64Alias>>,
    statements: Family<StatementLabels, Counter>,
    streams: Gauge<i64, AtomicI64Alias>,
}

type AtomicI64Alias = std::sync::atomic::AtomicI64;

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by route template",
            latency.clone(),
        );
        let auth_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Rejected credentials by reason",
            auth_failures.clone(),
        );
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429, by budget (user or ip)",
            rate_limited.clone(),
        );
        let pool = Family::<PoolLabels, Gauge<i64, AtomicI64Alias>>::default();
        registry.register(
            "db_pool_connections",
            "Database connections by state (in_use, idle, waiting requests)",
            pool.clone(),
        );
        let statements = Family::<StatementLabels, Counter>::default();
        registry.register(
            "db_statements",
            "PostgreSQL statements run, by mode (prepared: reused per connection; unnamed: parsed and planned each time)",
            statements.clone(),
        );
        let streams = Gauge::<i64, AtomicI64Alias>::default();
        registry.register(
            "event_streams_open",
            "Open /api/v1/events streams on this instance",
            streams.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            auth_failures,
            rate_limited,
            pool,
            statements,
            streams,
        }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts a rejected credential; `reason` is one of a fixed set of phrases.
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a 429 from the `user` or `ip` budget.
    pub fn rate_limited(&self, scope: &'static str) {
        self.rate_limited
            .get_or_create(&ScopeLabels {
                scope: scope.to_owned(),
            })
            .inc();
    }

    /// Brings the pool gauges and statement counters up to the store's
    /// figures, right before a scrape renders them.
    pub fn set_store(&self, pool: PoolStats) {
        self.set_pool(pool.in_use as i64, pool.idle as i64, pool.waiting as i64);
        if let Some(counts) = pool.statements {
            self.set_statements(counts);
        }
    }

    /// Brings the open-streams gauge up to date, right before a scrape.
    pub fn set_streams(&self, open: usize) {
        self.streams.set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Copies the store's running totals (they only grow) into the counters.
    fn set_statements(&self, counts: StatementCounts) {
        for (mode, value) in [("prepared", counts.prepared), ("unnamed", counts.unnamed)] {
            self.statements
                .get_or_create(&StatementLabels { mode })
                .inner()
                .store(value, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn set_pool(&self, in_use: i64, idle: i64, waiting: i64) {
        for (state, value) in [("in_use", in_use), ("idle", idle), ("waiting", waiting)] {
            self.pool
                .get_or_create(&PoolLabels {
                    state: state.to_owned(),
                })
                .set(value);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
