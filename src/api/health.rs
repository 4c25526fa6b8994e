//! Liveness and readiness probes (no authentication).

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::responses::Unavailable;
use crate::{db::Deadline, error::ApiError};

/// A probe's answer.
#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(examples("ok"))]
    status: &'static str,
}

/// Liveness: the process answers. Touches nothing, so it is also the HTTP
/// ceiling in benchmarks.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    responses((status = 200, description = "The process is alive (touches no database)", body = Status)),
    security()
)]
pub async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database answers and is fully migrated; 503 otherwise.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    responses((status = 200, description = "The database is reachable and migrated", body = Status), Unavailable),
    security()
)]
pub async fn ready(State(state): State<AppState>, by: Deadline) -> Result<Json<Status>, ApiError> {
    state.store.ready(by).await?;
    Ok(Json(Status { status: "ready" }))
}
