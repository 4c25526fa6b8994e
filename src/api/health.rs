//! Liveness and readiness probes (no authentication).

use axum::{Json, extract::State};
use serde_json::{Value, json};

use super::openapi::StatusDoc;
use super::responses::Unavailable;
use crate::{app::AppState, error::ApiError};

/// Liveness: the process answers. Touches nothing, so it is also the HTTP
/// ceiling in benchmarks.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    responses((status = 200, description = "The process is alive (touches no database)", body = StatusDoc)),
    security()
)]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers and is fully migrated; 503 otherwise.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    responses((status = 200, description = "The database is reachable and migrated", body = StatusDoc), Unavailable),
    security()
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
