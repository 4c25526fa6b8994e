//! The one error type of the HTTP layer and its RFC 9457 problem+json rendering.
//!
//! Handlers and extractors return `Result<_, ApiError>`; this module is the only
//! place that decides status codes, headers and bodies of failures, so every
//! error a client sees has the same shape and no internals leak into 5xx bodies.
//! The layers below return their own errors (the domain's `Invalid` and
//! `FieldError`, `StoreError`, `AuthError`, the rate limiter's `Limited`) and
//! know no status codes; the `From` impls at the end turn them into answers.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    auth::AuthError,
    db::StoreError,
    domain::{ERRORS_MAX, FieldError, Invalid},
    rate_limit::Limited,
};

tokio::task_local! {
    /// The id of the request this task serves, put here by the middleware
    /// (`middleware::scope`). Why a task-local: `ApiError::into_response`
    /// has no request to read it from, and every problem body carries it.
    /// It lives with its reader so that this module needs nothing of the
    /// middleware.
    pub(crate) static REQUEST_ID: Option<HeaderValue>;
}

/// The id of the request served by this task, if any.
fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned))
        .ok()
        .flatten()
}

/// Every way a request can fail, each mapped to exactly one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed JSON or a bad query parameter (400).
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// Missing or failed credentials (401). `invalid_token` distinguishes a
    /// presented-but-bad token from no credentials at all (RFC 6750 §3).
    #[error("unauthorized: {detail}")]
    Unauthorized {
        invalid_token: bool,
        detail: &'static str,
    },
    /// The compatibility route names another user (403).
    #[error("forbidden")]
    Forbidden,
    /// Unknown route, unknown task, or another user's task (404, same body).
    #[error("not found")]
    NotFound,
    /// Known path, wrong method (405); axum adds the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Idempotency key reused with another body (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// `If-Match` did not match the current version (412).
    #[error("precondition failed")]
    PreconditionFailed,
    /// A sync token that can no longer be served: too old, or issued before
    /// the user was deleted (410). The client syncs in full.
    #[error("gone: {0}")]
    Gone(&'static str),
    /// Body over the size limit (413).
    #[error("payload too large")]
    PayloadTooLarge,
    /// Non-empty body that is not `application/json` (415).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Well-formed JSON that fails validation (422).
    #[error("validation failed")]
    Validation(Invalid),
    /// The caller's request budget is spent (429).
    #[error("rate limited")]
    TooManyRequests {
        /// Seconds until the next request is allowed.
        retry_after: u64,
        /// The burst size, for `RateLimit-Limit`.
        limit: u32,
    },
    /// The database (or another dependency) cannot be reached (503).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (500); the cause is logged, never sent.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

// Public, and `ToSchema`, so that the OpenAPI document describes this very
// type; the doc comment below is its schema description. `detail` is always
// present because FastAPI-era front ends read `.detail`.
/// An RFC 9457 problem, as every error is answered.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    #[schema(examples("about:blank"))]
    kind: &'static str,
    /// The HTTP reason phrase.
    #[schema(examples("Unprocessable Entity"))]
    title: &'static str,
    /// The HTTP status code.
    #[schema(examples(422))]
    status: u16,
    /// A human-readable explanation (FastAPI front ends read `.detail`).
    #[schema(examples("title must be 1-200 characters"))]
    detail: String,
    /// Field-level errors, for 400 and 422: the first 20; `detail` ends with
    /// the count of any others ("; and 31980 more errors").
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    /// The request id, also in the `X-Request-ID` header.
    request_id: String,
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_UNAVAILABLE: &str = "2";

impl ApiError {
    /// Shorthand for a 400 naming one query parameter.
    pub fn bad_param(field: &str, message: impl Into<String>) -> Self {
        FieldError::new(field, message).into()
    }

    /// Shorthand for a 400 about the request body itself.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A 401 for a token that was presented but failed verification.
    pub fn invalid_token(detail: &'static str) -> Self {
        Self::Unauthorized {
            invalid_token: true,
            detail,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's `detail`: also what an MCP tool call that failed
    /// this way tells the agent.
    pub(crate) fn detail(&self) -> String {
        match self {
            Self::BadRequest { detail, .. } => detail.clone(),
            Self::Unauthorized { detail, .. } => (*detail).to_owned(),
            Self::Forbidden => "the path names another user".to_owned(),
            Self::NotFound => "no such resource".to_owned(),
            Self::MethodNotAllowed => "method not allowed on this path".to_owned(),
            Self::Conflict(detail) => detail.clone(),
            Self::Gone(detail) => (*detail).to_owned(),
            Self::PreconditionFailed => {
                "If-Match does not match the task's current version".to_owned()
            }
            Self::PayloadTooLarge => "request body exceeds 65536 bytes".to_owned(),
            Self::UnsupportedMediaType => "request body must be application/json".to_owned(),
            Self::Validation(errors) => errors.to_string(),
            Self::TooManyRequests { retry_after, .. } => {
                format!("too many requests; retry in {retry_after} s")
            }
            Self::Unavailable(_) => "service temporarily unavailable, retry later".to_owned(),
            Self::Internal(_) => "internal server error".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(cause) => {
                tracing::error!(error = %Capped(&format_args!("{cause:#}")), "request failed")
            }
            Self::Unavailable(cause) => {
                tracing::warn!(cause = %Capped(cause), "dependency unavailable")
            }
            _ => tracing::debug!(error = %Capped(&self), "request rejected"),
        }
        let errors = match &self {
            Self::BadRequest { errors, .. } => errors.as_slice(),
            Self::Validation(invalid) => invalid.errors(),
            _ => &[],
        };
        let errors = &errors[..errors.len().min(ERRORS_MAX)];
        let body = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.detail(),
            errors,
            request_id: current_request_id().unwrap_or_default(),
        };
        // Serialising this struct cannot fail (only strings and integers), but a
        // request path must not panic, so fall back to a minimal literal body.
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| {
            br#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal server error"}"#.to_vec()
        });
        let content_type = [(header::CONTENT_TYPE, "application/problem+json")];
        let mut response = (status, content_type, bytes).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized { invalid_token, .. } => {
                let value = if *invalid_token {
                    "Bearer error=\"invalid_token\""
                } else {
                    "Bearer"
                };
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
            }
            Self::Unavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_UNAVAILABLE),
                );
            }
            Self::TooManyRequests { retry_after, limit } => {
                let secs = HeaderValue::from(*retry_after);
                headers.insert(header::RETRY_AFTER, secs.clone());
                headers.insert("ratelimit-limit", HeaderValue::from(*limit));
                headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
                headers.insert("ratelimit-reset", secs);
            }
            _ => {}
        }
        response
    }
}

/// Most bytes of one error text written to a log line.
const LOGGED_TEXT_MAX: usize = 2048;

/// Displays at most [`LOGGED_TEXT_MAX`] bytes of a text (cut at a character
/// boundary, marked with `…`). Why: error texts can quote what a client
/// sent, and a log line must not grow with the request.
struct Capped<'a, T: std::fmt::Display + ?Sized>(&'a T);

impl<T: std::fmt::Display + ?Sized> std::fmt::Display for Capped<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Truncating {
            inner: f,
            left: LOGGED_TEXT_MAX,
            cut: false,
        };
        // The only error is the deliberate one that stops writing at the cap.
        let _ = std::fmt::write(&mut out, format_args!("{}", self.0));
        if out.cut {
            out.inner.write_str("…")?;
        }
        Ok(())
    }
}

/// A writer that passes on at most `left` bytes, then refuses.
struct Truncating<'a, 'b> {
    inner: &'a mut std::fmt::Formatter<'b>,
    left: usize,
    cut: bool,
}

impl std::fmt::Write for Truncating<'_, '_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if s.len() <= self.left {
            self.left -= s.len();
            return self.inner.write_str(s);
        }
        let mut end = self.left;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.inner.write_str(&s[..end])?;
        self.left = 0;
        self.cut = true;
        Err(std::fmt::Error)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => Self::Unavailable(format!("{cause:#}")),
            StoreError::Other(cause) => Self::Internal(cause),
        }
    }
}

/// A body's bad fields: 422, every field listed (up to [`ERRORS_MAX`]).
impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self::Validation(invalid)
    }
}

/// A lone field error is a bad query parameter (400): the list query and
/// its cursor stop at the first one, while a body's errors come together
/// as [`Invalid`].
impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::BadRequest {
            detail: format!("{} {}", error.field, error.message),
            errors: vec![error],
        }
    }
}

/// A refused token is a 401 whose challenge says `invalid_token`; keys that
/// cannot be fetched are not the client's fault (503).
impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidToken(detail) => Self::invalid_token(detail),
            AuthError::KeysUnavailable => {
                Self::Unavailable("the JWKS cannot be fetched".to_owned())
            }
        }
    }
}

/// A spent budget: 429 with `Retry-After` and the `RateLimit-*` fields.
impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        Self::TooManyRequests {
            retry_after: limited.retry_after,
            limit: limited.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_texts_are_capped_at_a_character_boundary() {
        assert_eq!(Capped("short").to_string(), "short");
        let long = format!("a{}", "é".repeat(LOGGED_TEXT_MAX));
        let shown = Capped(long.as_str()).to_string();
        assert!(shown.ends_with('…'), "{shown}");
        assert!(shown.len() <= LOGGED_TEXT_MAX + '…'.len_utf8());
        assert!(shown.len() > LOGGED_TEXT_MAX - 2);
    }
}
