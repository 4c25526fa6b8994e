//! The `AuthUser` extractor, which turns a bearer token into the id of a
//! user that exists in the database. A handler that takes `AuthUser` cannot
//! run for an unauthenticated request. Verification itself is `auth`'s; this
//! is where its answer meets HTTP (the header, 401/429/503, the metrics).

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};

use super::{AppState, deadline};
use crate::{
    db::{Deadline, StoreResult},
    domain::{Claims, time},
    error::ApiError,
};

/// The authenticated caller, known to exist in the database.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The verified token's claims; `claims.sub` scopes every query.
    pub claims: Claims,
    /// When this request's storage calls must have ended.
    pub by: Deadline,
    /// Unix time (seconds) from which the token is refused: an event
    /// stream opened with it ends then.
    pub expires_at: f64,
}

impl AuthUser {
    /// The user id every query of this request is scoped by.
    pub fn id(&self) -> &str {
        &self.claims.sub
    }

    /// Runs a storage call that needs the caller's `users` row; `op`
    /// answers `None` when it found that row missing.
    ///
    /// Why: the known-user cache lets a request skip the upsert, so the row
    /// can be gone although this instance remembers it (`DELETE /me`
    /// through another instance, or a row deleted directly in the
    /// database). API.md promises a still-valid token a fresh, empty user
    /// then, so the row is re-created as on first sight and `op` runs once
    /// more. Calls that only read or change existing tasks need none of
    /// this: for a missing user they find nothing, as for a fresh one.
    pub async fn with_row<T, F>(
        &self,
        state: &AppState,
        mut op: impl FnMut() -> F,
    ) -> Result<T, ApiError>
    where
        F: Future<Output = StoreResult<Option<T>>>,
    {
        if let Some(done) = op().await? {
            return Ok(done);
        }
        self.recreate(state).await?;
        op().await?.ok_or_else(deleted_meanwhile)
    }

    /// Re-creates the user row after it vanished under us.
    async fn recreate(&self, state: &AppState) -> Result<(), ApiError> {
        state.known_users.forget(self.id());
        state
            .store
            .upsert_user(&self.claims, time::now(), self.by)
            .await?;
        state.known_users.remember(&self.claims);
        Ok(())
    }
}

/// The answer when the user row vanished again right after it was
/// re-created (a concurrent `DELETE /me`): nothing was done, retry.
pub(super) fn deleted_meanwhile() -> ApiError {
    ApiError::Unavailable("the user was deleted while this request ran".to_owned())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (claims, expires_at) = match authenticate(parts, state).await {
            Ok(verified) => verified,
            // Failed attempts spend the client address's budget, so token
            // guessing is throttled; a 503 (JWKS down) is not the client's.
            Err(err @ ApiError::Unauthorized { .. }) => return Err(failed(state, parts, err)),
            Err(err) => return Err(err),
        };
        state
            .rate_limits
            .check_user(&claims.sub)
            .inspect_err(|_| state.metrics.rate_limited("user"))?;
        let by = deadline::of_request(parts, state);
        if !state.known_users.is_current(&claims) {
            state.store.upsert_user(&claims, time::now(), by).await?;
            state.known_users.remember(&claims);
        }
        Ok(Self {
            claims,
            by,
            expires_at,
        })
    }
}

/// Books a failed authentication (`err`, a 401): counted in the metrics by
/// reason, and spent from the client address's budget so that guessing is
/// throttled. Answers the 429 once that budget is spent, else `err`.
pub(super) fn failed(state: &AppState, parts: &Parts, err: ApiError) -> ApiError {
    if let ApiError::Unauthorized { detail, .. } = &err {
        state.metrics.auth_failure(detail);
    }
    match state.rate_limits.check_ip(client_ip(parts)) {
        Ok(()) => err,
        Err(limited) => {
            state.metrics.rate_limited("ip");
            limited.into()
        }
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<(Claims, f64), ApiError> {
    let token = bearer_token(&parts.headers)?;
    let verified = state
        .verifier
        .verify_until(token)
        .await
        .inspect_err(|err| {
            // The reason is worth logging; the token never is.
            tracing::info!(reason = %err, "token rejected");
        })?;
    Ok(verified)
}

/// The peer address (no proxy headers are trusted).
fn client_ip(parts: &Parts) -> std::net::IpAddr {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

/// Pulls the token out of `Authorization: Bearer …`. No header, another
/// scheme or an empty token count as "no credentials" (no `error` attribute
/// in the challenge); anything else goes on to verification. The scheme is
/// case-insensitive (RFC 9110 §11.1).
pub(super) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = ApiError::Unauthorized {
        invalid_token: false,
        detail: "a bearer token is required",
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(missing);
    };
    let Ok(value) = value.to_str() else {
        return Err(ApiError::invalid_token(
            "the Authorization header is not valid ASCII",
        ));
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(missing);
    }
    Ok(token)
}
