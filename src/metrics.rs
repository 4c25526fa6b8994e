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

use crate::db::PoolStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// A metric's one label, and its value.
type Label<V = &'static str> = [(&'static str, V); 1];

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
    latency: Family<Label<String>, Histogram, fn() -> Histogram>,
    auth_failures: Family<Label, Counter>,
    rate_limited: Family<Label, Counter>,
    pool: Family<Label, Gauge>,
    statements: Family<Label, Counter>,
    streams: Gauge,
    stream_reads: Counter,
}

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
        let latency = Family::<Label<String>, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by route template",
            latency.clone(),
        );
        let auth_failures = Family::default();
        registry.register(
            "auth_failures",
            "Rejected credentials by reason",
            auth_failures.clone(),
        );
        let rate_limited = Family::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429, by budget (user or ip)",
            rate_limited.clone(),
        );
        let pool = Family::default();
        registry.register(
            "db_pool_connections",
            "Database connections by state (in_use, idle, waiting requests)",
            pool.clone(),
        );
        let statements = Family::default();
        registry.register(
            "db_statements",
            "PostgreSQL statements run, by mode (prepared: reused per connection; unnamed: parsed and planned each time)",
            statements.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "event_streams_open",
            "Open /api/v1/events streams on this instance",
            streams.clone(),
        );
        let stream_reads = Counter::default();
        registry.register(
            "event_stream_reads",
            "Change-feed reads by open event streams, each after a wake-up (a write of the stream's user, or a sweep that found the user's counter moved)",
            stream_reads.clone(),
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
            stream_reads,
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
            .get_or_create(&[("route", route.to_owned())])
            .observe(seconds);
    }

    /// Counts a rejected credential; `reason` is one of a fixed set of phrases.
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// Counts a 429 from the `user` or `ip` budget.
    pub fn rate_limited(&self, scope: &'static str) {
        self.rate_limited.get_or_create(&[("scope", scope)]).inc();
    }

    /// Brings the pool gauges and statement counters (the store's running
    /// totals, which only grow) up to the store's figures, right before a
    /// scrape renders them.
    pub fn set_store(&self, pool: PoolStats) {
        for (state, value) in [
            ("in_use", pool.in_use),
            ("idle", pool.idle),
            ("waiting", pool.waiting),
        ] {
            self.pool
                .get_or_create(&[("state", state)])
                .set(value as i64);
        }
        for (mode, value) in pool
            .statements
            .iter()
            .flat_map(|c| [("prepared", c.prepared), ("unnamed", c.unnamed)])
        {
            self.statements
                .get_or_create(&[("mode", mode)])
                .inner()
                .store(value, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Brings the open-streams gauge up to date, right before a scrape.
    pub fn set_streams(&self, open: usize) {
        self.streams.set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Counts one change-feed read by an open stream: more of them than
    /// writes would mean streams are woken for other users' changes.
    pub fn stream_read(&self) {
        self.stream_reads.inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
