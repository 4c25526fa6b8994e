//! The compatibility routes `/api/{user_id}/tasks…` for front ends written
//! against that common layout. `CompatUser` answers 403 when the path names
//! anyone but the caller; everything else is the v1 operation.

use axum::{
    extract::{OriginalUri, RawQuery, State},
    response::Response,
};

use super::{
    extract::{CompatUser, IdempotencyKey, IfMatch, JsonBody, TaskId},
    tasks::{self, Flavor},
};
use crate::{app::AppState, error::ApiError};

/// `GET /api/{user_id}/tasks`: a bare array, paged by `Link: rel="next"`.
pub async fn list(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    tasks::list_tasks(&state, &user, query.as_deref(), uri.path(), Flavor::Compat).await
}

/// `POST /api/{user_id}/tasks`
pub async fn create(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    tasks::create_task(&state, &user, key, &body, Flavor::Compat).await
}

/// `GET /api/{user_id}/tasks/{id}`
pub async fn get_one(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
) -> Result<Response, ApiError> {
    tasks::get_task(&state, &user, id).await
}

/// `PUT /api/{user_id}/tasks/{id}`
pub async fn replace(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    tasks::replace_task(&state, &user, id, &condition, &body).await
}

/// `PATCH /api/{user_id}/tasks/{id}`
pub async fn update(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    tasks::patch_task(&state, &user, id, &condition, &body).await
}

/// `PATCH /api/{user_id}/tasks/{id}/complete`
pub async fn toggle(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
) -> Result<Response, ApiError> {
    tasks::toggle_task(&state, &user, id, &condition).await
}

/// `DELETE /api/{user_id}/tasks/{id}`
pub async fn delete(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
) -> Result<Response, ApiError> {
    tasks::delete_task(&state, &user, id, &condition).await
}
