//! `GET /metrics`: the Prometheus exposition of `crate::metrics`, guarded
//! by `METRICS_TOKEN` when one is configured.

use axum::{
    extract::State,
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    AppState,
    auth_user::{bearer_token, failed},
};
use crate::{config::Secret, error::ApiError};

/// `GET /metrics`: guarded by `METRICS_TOKEN` when one is configured.
/// A refused scrape counts as a failed authentication (metrics and the
/// client address's budget), like a refused API token.
pub async fn metrics(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    if let Some(expected) = &state.metrics_token {
        check_token(expected, &parts.headers).map_err(|err| failed(&state, &parts, err))?;
    }
    state.metrics.set_store(state.store.pool_stats());
    state.metrics.set_streams(state.store.signals().streams());
    let content_type = [(
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )];
    Ok((content_type, state.metrics.render()).into_response())
}

/// Checks `Authorization: Bearer <METRICS_TOKEN>` (scheme in any case).
/// Why the hashes: comparing SHA-256 digests in constant time takes the same
/// time whatever the presented token's length or its first wrong byte, so
/// timing tells a guesser nothing.
fn check_token(expected: &Secret, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = bearer_token(headers).map_err(|_| ApiError::Unauthorized {
        invalid_token: false,
        detail: "the metrics token is required",
    })?;
    let same = Sha256::digest(presented.as_bytes())
        .as_slice()
        .ct_eq(Sha256::digest(expected.expose().as_bytes()).as_slice());
    if bool::from(same) {
        Ok(())
    } else {
        Err(ApiError::invalid_token("the metrics token is invalid"))
    }
}
