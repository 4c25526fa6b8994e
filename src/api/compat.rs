//! The compatibility routes `/api/{user_id}/tasks…` for front ends written
//! against that common layout. `CompatUser` answers 403 when the path names
//! anyone but the caller; everything else is the v1 operation, except where
//! those front ends expect otherwise: PUT changes only the fields given (they
//! send `{title, description}` to edit) and DELETE answers 200 with the task
//! (they parse every successful body).

use axum::{
    extract::{OriginalUri, RawQuery, State},
    response::Response,
};

use super::AppState;
use super::openapi::CompatListParams;
use super::params::{CompatUserPath, IdempotencyKeyHeader, IfMatchHeader, TaskPath};
use super::responses::{
    Authed, BadBody, BadQuery, CompatForbidden, IdemConflict, Stale, TaskCreated, TaskMissing,
    TaskOk,
};
use super::{
    extract::{CompatUser, IdempotencyKey, IfMatch, JsonBody, TaskId},
    tasks::{self, Flavor},
};
use crate::{
    domain::{
        input::RawTask,
        task::{Task, TaskInput, TaskPatch},
    },
    error::ApiError,
};

/// `GET /api/{user_id}/tasks`: a bare array, paged by `Link: rel="next"`.
#[utoipa::path(
    get,
    operation_id = "compat_list",
    path = "/api/{user_id}/tasks",
    tag = "compat",
    params(CompatUserPath, CompatListParams),
    responses((status = 200, description = "The caller's tasks, a bare array", body = [Task], headers(("Link" = String, description = "`<next-page-url>; rel=\"next\"` when more rows follow"))), BadQuery, CompatForbidden, Authed),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    tasks::list_tasks(&state, &user, query.as_deref(), uri.path(), Flavor::Compat).await
}

/// `POST /api/{user_id}/tasks`
#[utoipa::path(
    post,
    operation_id = "compat_create",
    path = "/api/{user_id}/tasks",
    tag = "compat",
    params(CompatUserPath, IdempotencyKeyHeader),
    request_body(content = TaskInput, content_type = "application/json"),
    responses(TaskCreated, BadBody, IdemConflict, CompatForbidden, Authed),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<RawTask>,
) -> Result<Response, ApiError> {
    tasks::create_task(&state, &user, key, body, Flavor::Compat).await
}

/// `GET /api/{user_id}/tasks/{id}`
#[utoipa::path(
    get,
    operation_id = "compat_get_one",
    path = "/api/{user_id}/tasks/{id}",
    tag = "compat",
    params(CompatUserPath, TaskPath),
    responses(TaskOk, CompatForbidden, TaskMissing, Authed),
    security(("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
) -> Result<Response, ApiError> {
    tasks::get_task(&state, &user, id).await
}

/// `PUT /api/{user_id}/tasks/{id}`
///
/// Changes only the fields given, exactly as PATCH (v1 PUT is a full
/// replace): absent fields keep their values, `null` clears `description`
/// or `due_date`. The front ends written for this layout send
/// `{title, description}` to edit a task and expect the rest to stay.
#[utoipa::path(
    put,
    operation_id = "compat_replace",
    path = "/api/{user_id}/tasks/{id}",
    tag = "compat",
    params(CompatUserPath, TaskPath, IfMatchHeader),
    request_body(content = TaskPatch, content_type = "application/json"),
    responses(TaskOk, BadBody, CompatForbidden, TaskMissing, Stale, Authed),
    security(("bearer" = []))
)]
pub async fn replace(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
    JsonBody(body): JsonBody<RawTask>,
) -> Result<Response, ApiError> {
    tasks::update_task::<TaskPatch>(&state, &user, id, &condition, body).await
}

/// `PATCH /api/{user_id}/tasks/{id}`
#[utoipa::path(
    patch,
    operation_id = "compat_update",
    path = "/api/{user_id}/tasks/{id}",
    tag = "compat",
    params(CompatUserPath, TaskPath, IfMatchHeader),
    request_body(content = TaskPatch, content_type = "application/json"),
    responses(TaskOk, BadBody, CompatForbidden, TaskMissing, Stale, Authed),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
    JsonBody(body): JsonBody<RawTask>,
) -> Result<Response, ApiError> {
    tasks::update_task::<TaskPatch>(&state, &user, id, &condition, body).await
}

/// `PATCH /api/{user_id}/tasks/{id}/complete`
#[utoipa::path(
    patch,
    operation_id = "compat_toggle",
    path = "/api/{user_id}/tasks/{id}/complete",
    tag = "compat",
    params(CompatUserPath, TaskPath, IfMatchHeader),
    responses(TaskOk, CompatForbidden, TaskMissing, Stale, Authed),
    security(("bearer" = []))
)]
pub async fn toggle(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
) -> Result<Response, ApiError> {
    tasks::toggle_task(&state, &user, id, &condition).await
}

/// `DELETE /api/{user_id}/tasks/{id}`
///
/// Answers 200 with the deleted task's last state (v1 DELETE answers 204
/// with no body): the front ends written for this layout parse every
/// successful response as JSON.
#[utoipa::path(
    delete,
    operation_id = "compat_delete",
    path = "/api/{user_id}/tasks/{id}",
    tag = "compat",
    params(CompatUserPath, TaskPath, IfMatchHeader),
    responses((status = 200, description = "Deleted; the task as it was just before", body = Task, headers(("ETag" = String, description = "`\"<version>\"` of the deleted task"))), CompatForbidden, TaskMissing, Stale, Authed),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    CompatUser(user): CompatUser,
    TaskId(id): TaskId,
    IfMatch(condition): IfMatch,
) -> Result<Response, ApiError> {
    tasks::delete_task(&state, &user, id, &condition, Flavor::Compat).await
}
