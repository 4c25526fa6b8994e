//! The task resource under `/api/v1/tasks`: its routes, each one of the
//! operations in `operations.rs`, which the compatibility routes share.

mod operations;

use axum::{
    extract::{OriginalUri, RawQuery, State},
    response::Response,
};

use super::extract::{IdempotencyKey, IfMatch, JsonBody, TaskId};
use super::params::{IdempotencyKeyHeader, IfMatchHeader, TaskPath};
use super::responses::{
    Authed, BadBody, BadQuery, IdemConflict, Stale, TaskCreated, TaskMissing, TaskOk,
};
use super::{AppState, auth_user::AuthUser};
use crate::{
    domain::{
        input::RawTask,
        listing::ListParams,
        task::{TaskInput, TaskPatch},
    },
    error::ApiError,
};

pub use operations::TaskPage;
pub(super) use operations::{
    Flavor, change, create_task, delete_task, get_task, insert, list_tasks, patch_from,
    toggle_task, update_task, written,
};

/// `GET /api/v1/tasks`
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(ListParams),
    responses((status = 200, description = "One page of the caller's tasks", body = TaskPage), BadQuery, Authed),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    list_tasks(&state, &user, query.as_deref(), uri.path(), Flavor::V1).await
}

/// `POST /api/v1/tasks`
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(IdempotencyKeyHeader),
    request_body(content = TaskInput, content_type = "application/json"),
    responses(TaskCreated, BadBody, IdemConflict, Authed),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<RawTask>,
) -> Result<Response, ApiError> {
    create_task(&state, &user, key, body, Flavor::V1).await
}

/// `GET /api/v1/tasks/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(TaskPath),
    responses(TaskOk, TaskMissing, Authed),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    TaskId(id): TaskId,
) -> Result<Response, ApiError> {
    get_task(&state, &user, id).await
}

/// `PUT /api/v1/tasks/{id}`
#[utoipa::path(
    put,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(TaskPath, IfMatchHeader),
    request_body(content = TaskInput, content_type = "application/json"),
    responses(TaskOk, BadBody, TaskMissing, Stale, Authed),
    security(("bearer" = []))
)]
pub async fn replace(
    State(state): State<AppState>,
    user: AuthUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
    JsonBody(body): JsonBody<RawTask>,
) -> Result<Response, ApiError> {
    update_task::<TaskInput>(&state, &user, id, &condition, body).await
}

/// `PATCH /api/v1/tasks/{id}`
#[utoipa::path(
    patch,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(TaskPath, IfMatchHeader),
    request_body(content = TaskPatch, content_type = "application/json"),
    responses(TaskOk, BadBody, TaskMissing, Stale, Authed),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
    JsonBody(body): JsonBody<RawTask>,
) -> Result<Response, ApiError> {
    update_task::<TaskPatch>(&state, &user, id, &condition, body).await
}

/// `PATCH /api/v1/tasks/{id}/complete`
#[utoipa::path(
    patch,
    path = "/api/v1/tasks/{id}/complete",
    tag = "tasks",
    params(TaskPath, IfMatchHeader),
    responses(TaskOk, TaskMissing, Stale, Authed),
    security(("bearer" = []))
)]
pub async fn toggle(
    State(state): State<AppState>,
    user: AuthUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
) -> Result<Response, ApiError> {
    toggle_task(&state, &user, id, &condition).await
}

/// `DELETE /api/v1/tasks/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(TaskPath, IfMatchHeader),
    responses((status = 204, description = "Deleted"), TaskMissing, Stale, Authed),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
) -> Result<Response, ApiError> {
    delete_task(&state, &user, id, &condition, Flavor::V1).await
}
