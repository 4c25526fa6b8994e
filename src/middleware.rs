//! The middleware stack every route gets, as one `ServiceBuilder`: request
//! ids, one log line per request, security headers, CORS, the time limit,
//! the body limit, panics as 500 problems, and the request count.
//!
//! The stack is tower-http's layers wherever one does the job. Hand-written
//! steps remain only for what tower-http lacks, each saying why: the
//! Prometheus count by route template ([`count`]), dropping a client's
//! unusable `X-Request-ID` ([`drop_unusable_request_id`]), stripping CORS
//! headers from strangers' answers ([`no_cors_for_strangers`]), the
//! request's id for problem bodies and its start for deadlines ([`scope`]),
//! the 503 problem at
//! the time limit ([`time_limit_problem`]) and the one body-size check
//! ([`buffer_body`]).
//!
//! The stack is added with `Router::layer`, so it runs once the route is
//! matched and every step can label by `MatchedPath` (the route template,
//! never the raw path, which may hold anything a client chose). Each
//! `from_fn` step clones and boxes the layers beneath it on every request,
//! so the tower-http layers that answer nothing sit above them.

use std::{sync::Arc, time::Instant};

use axum::{
    BoxError, Router,
    body::Body,
    error_handling::HandleErrorLayer,
    extract::{MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::{Next, from_fn, from_fn_with_state},
    response::{IntoResponse, Response},
};
use tower::{ServiceBuilder, timeout::TimeoutLayer, util::MapRequestLayer};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowCredentials, AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::{
    config::Config,
    error::{ApiError, REQUEST_ID},
    metrics::Metrics,
};

/// Largest accepted request body, in bytes (exactly this many is accepted).
pub const MAX_BODY_BYTES: usize = 65_536;

/// The header clients and proxies use to correlate a request.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept; longer ones are replaced.
const REQUEST_ID_MAX_LEN: usize = 128;

/// Content-Security-Policy of the Swagger UI page (the only HTML this
/// service answers): everything from this origin only (its assets are
/// embedded), no framing, no plugins.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Content-Security-Policy of everything else: nothing may load or frame it.
const STRICT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// When a request's time limit started, as a request extension (stamped by
/// [`scope`]). Storage deadlines count from it, so that a statement is
/// answered before the time limit answers 503 for it. An extension, not a
/// task-local, so that it reaches code run in tasks of its own.
#[derive(Debug, Clone, Copy)]
pub struct RequestStart(pub Instant);

/// The whole stack around `routes`, outermost first. Public so tests can
/// check the stack's behaviour around handlers the API does not have (a
/// panicking one).
pub fn with_middleware(routes: Router, config: &Config, metrics: Arc<Metrics>) -> Router {
    let allowed: AllowedOrigins = config
        .cors_origins
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect::<Vec<_>>()
        .into();
    let limit = config.request_timeout;
    routes.layer(
        ServiceBuilder::new()
            // Marked before anything could log them (they print as
            // "Sensitive" in any `Debug` of the headers).
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::PROXY_AUTHORIZATION,
                header::COOKIE,
            ]))
            .layer(MapRequestLayer::new(drop_unusable_request_id))
            .layer(SetRequestIdLayer::new(
                X_REQUEST_ID.clone(),
                MakeRequestUuid,
            ))
            .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span as fn(&Request) -> tracing::Span)
                    .on_request(())
                    .on_response(
                        DefaultOnResponse::new()
                            .level(tracing::Level::INFO)
                            .latency_unit(tower_http::LatencyUnit::Micros),
                    )
                    // A 5xx is logged once, with its cause, by `ApiError`.
                    .on_failure(()),
            )
            .layer(always(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(always(header::REFERRER_POLICY, "no-referrer"))
            .layer(always(header::X_FRAME_OPTIONS, "DENY"))
            // Per-user data must never be stored by browsers or shared
            // caches; nothing else here gains from caching either.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                content_security_policy as fn(&Response) -> Option<HeaderValue>,
            ))
            // Every answer is counted (preflights, 413s, 503s and panics
            // too); the layers above this one answer nothing themselves.
            .layer(from_fn_with_state(metrics, count))
            .layer(from_fn_with_state(allowed.clone(), no_cors_for_strangers))
            .layer(cors(allowed))
            .layer(from_fn(scope))
            .layer(HandleErrorLayer::new(move |_: BoxError| async move {
                time_limit_problem(limit)
            }))
            // The time limit covers reading the body too: a client that
            // trickles its body is answered 503 instead of holding a
            // connection. The handler's future is dropped, which rolls back
            // any open transaction.
            .layer(TimeoutLayer::new(limit))
            .layer(from_fn(buffer_body))
            // Inside the log line and the count: a panic is logged and
            // counted as the 500 it is answered with.
            .layer(CatchPanicLayer::custom(
                |_: Box<dyn std::any::Any + Send>| {
                    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
                },
            )),
    )
}

/// A response header set to the same value on every answer.
fn always(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// The origins CORS allows, shared by the CORS layer and
/// [`no_cors_for_strangers`].
type AllowedOrigins = Arc<[HeaderValue]>;

/// CORS for the configured front ends only, with credentials (the
/// `Authorization` header). Predicates over one shared list, so cloning the
/// stack per request copies no list.
fn cors(allowed: AllowedOrigins) -> CorsLayer {
    let origins = allowed.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origins.contains(origin)
        }))
        .allow_credentials(AllowCredentials::predicate(move |origin, _| {
            allowed.contains(origin)
        }))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
            // `/api/v1/events` resumed by a `fetch`-based reader.
            HeaderName::from_static("last-event-id"),
            // `/mcp` from a browser-based MCP client.
            HeaderName::from_static("mcp-protocol-version"),
            X_REQUEST_ID.clone(),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::LINK,
            header::RETRY_AFTER,
            X_REQUEST_ID.clone(),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// The route template a request matched, or `(unmatched)`.
fn route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str)
}

/// The span every log line of a request carries: its id, method (the fixed
/// set of `metrics::method_label`) and route template. Never the raw path,
/// query or headers, which may hold search text or credentials.
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        request_id = id,
        method = crate::metrics::method_label(request.method()),
        route = route(request),
    )
}

/// The strict policy, or the docs page's for HTML.
fn content_security_policy(response: &Response) -> Option<HeaderValue> {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    Some(HeaderValue::from_static(if html {
        DOCS_CSP
    } else {
        STRICT_CSP
    }))
}

/// Counts every request in the metrics by route template and status. Hand
/// written: tower-http's `metrics` layer has only an in-flight gauge.
async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_request(
        &method,
        route.as_ref().map_or("(unmatched)", MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Removes a client's `X-Request-ID` unless it is short and plain, so that
/// `SetRequestIdLayer` generates one instead. Hand written: tower-http keeps
/// any header value, and the id is echoed into headers and every log line.
fn drop_unusable_request_id(mut request: Request) -> Request {
    let usable = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_usable_request_id);
    if !usable {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}

/// 1 to 128 characters of `[A-Za-z0-9-_.:/]`: nothing that could forge a
/// log line or grow it.
fn is_usable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= REQUEST_ID_MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

/// Removes every `Access-Control-*` header from answers to origins that are
/// not configured. Hand written: tower-http's CORS layer sends
/// `Allow-Methods`, `Allow-Headers`, `Max-Age` and `Expose-Headers` whatever
/// the origin, and a stranger's preflight should learn nothing.
async fn no_cors_for_strangers(
    State(allowed): State<AllowedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    let stranger = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| !allowed.contains(origin));
    let mut response = next.run(request).await;
    if stranger {
        let headers = response.headers_mut();
        let names: Vec<_> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
    }
    response
}

/// Stamps the request's [`RequestStart`] and runs the rest of it with its
/// id in a task-local ([`REQUEST_ID`]). Hand written: tower-http keeps the
/// id in the request's extensions, which `ApiError` cannot reach. Right
/// outside the time limit, so the start is the limit's start.
async fn scope(mut request: Request, next: Next) -> Response {
    request
        .extensions_mut()
        .insert(RequestStart(Instant::now()));
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.header_value().clone());
    REQUEST_ID.scope(id, next.run(request)).await
}

/// The answer at the time limit: a 503 problem with `Retry-After`. Hand
/// written: tower-http's `TimeoutLayer` answers an empty body without
/// `Retry-After`, so this uses tower's timeout and renders its error.
fn time_limit_problem(limit: std::time::Duration) -> Response {
    ApiError::Unavailable(format!(
        "request exceeded the {} ms time limit",
        limit.as_millis()
    ))
    .into_response()
}

/// Reads every request body (up to [`MAX_BODY_BYTES`]) before the handler
/// runs: the one body-size check. Over the limit, declared or not (chunked),
/// the answer is a 413 problem and the connection closes. A request refused
/// early (401, 403, 405, 429) would otherwise leave its body unread, and the
/// connection would be closed under a keep-alive client's next request.
/// Hand written: tower-http's `RequestBodyLimitLayer` answers a declared
/// oversize body as text/plain and reads nothing for early refusals.
async fn buffer_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared_too_large = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64);
    if declared_too_large {
        return too_large();
    }
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(err) => {
            let over = std::error::Error::source(&err)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                too_large()
            } else {
                ApiError::malformed_json("the request body could not be read").into_response()
            }
        }
    }
}

/// 413 problem, and the connection closes (the rest of the body is unread).
fn too_large() -> Response {
    ([(header::CONNECTION, "close")], ApiError::PayloadTooLarge).into_response()
}

#[cfg(test)]
mod tests {
    use super::is_usable_request_id;

    #[test]
    fn rejects_request_ids_that_could_forge_log_lines() {
        assert!(is_usable_request_id("abc-123"));
        assert!(is_usable_request_id(&"a".repeat(128)));
        assert!(!is_usable_request_id("a b"));
        assert!(!is_usable_request_id("x\ny"));
        assert!(!is_usable_request_id(""));
        assert!(!is_usable_request_id(&"a".repeat(129)));
    }
}
