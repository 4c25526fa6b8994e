//! Liveness and readiness probes (no authentication).

use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::{app::AppState, error::ApiError};

/// Liveness: the process answers. Touches nothing, so it is also the HTTP
/// ceiling in benchmarks.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers and is fully migrated; 503 otherwise.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
