//! The storage deadline of a request: three quarters of the time limit
//! after the request's start, so that a statement past it is cancelled (or
//! a SQLite read interrupted) and answered 503 by the handler itself, with
//! the outcome known, before the time limit answers for it.

use axum::{extract::FromRequestParts, http::request::Parts};

use super::AppState;
use crate::{db::Deadline, error::ApiError, middleware::RequestStart};

/// The deadline of the request `parts` belongs to. Counted from its
/// [`RequestStart`]; from now when it has none (a router used without the
/// middleware stack).
pub(super) fn of_request(parts: &Parts, state: &AppState) -> Deadline {
    let start = parts
        .extensions
        .get::<RequestStart>()
        .map_or_else(std::time::Instant::now, |s| s.0);
    Deadline(start + state.storage_budget)
}

/// For handlers that reach storage without an [`super::AuthUser`] (which
/// carries the deadline itself).
impl FromRequestParts<AppState> for Deadline {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(of_request(parts, state))
    }
}
