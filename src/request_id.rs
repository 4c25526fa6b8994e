//! Request ids: accepted from `X-Request-ID` or generated, echoed on the
//! response, recorded on the request's log span, and readable from anywhere in
//! the request's task so problem bodies can carry it without threading it
//! through every function.

use std::future::Future;

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    response::Response,
};

/// The header clients and proxies use to correlate a request.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id we keep; longer ones are replaced.
const MAX_LEN: usize = 128;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Middleware step: pick the id, run `inner` (the rest of the stack)
/// inside its scope, echo it.
pub async fn around<F: Future<Output = Response>>(
    request: Request,
    inner: impl FnOnce(Request) -> F,
) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = crate::metrics::method_label(request.method()),
        route = tracing::field::Empty,
    );
    let header = HeaderValue::from_str(&id).ok();
    let mut response =
        tracing::Instrument::instrument(REQUEST_ID.scope(id, inner(request)), span).await;
    if let Some(header) = header {
        response.headers_mut().insert(X_REQUEST_ID.clone(), header);
    }
    response
}

/// Client ids are echoed into headers and logs, so only short, printable,
/// unambiguous ones are kept.
fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::is_acceptable;

    #[test]
    fn rejects_ids_that_could_forge_log_lines() {
        assert!(is_acceptable("abc-123"));
        assert!(!is_acceptable("a b"));
        assert!(!is_acceptable("x\ny"));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable(&"a".repeat(129)));
    }
}
