//! The caller's own user record: `GET` and `DELETE /api/v1/me`.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::responses::Authed;
use super::{AppState, auth_user::AuthUser};
use crate::{domain::time, error::ApiError};

/// The caller's user record.
#[derive(Serialize, ToSchema)]
pub struct Me {
    id: String,
    #[schema(required)]
    email: Option<String>,
    #[schema(required)]
    name: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    #[schema(inline)]
    task_counts: TaskCounts,
}

/// Task counts of `/api/v1/me`.
#[derive(Serialize, ToSchema)]
pub struct TaskCounts {
    total: i64,
    pending: i64,
    completed: i64,
}

/// `GET /api/v1/me`: the user row and task counts.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "me",
    responses((status = 200, description = "The caller and their task counts", body = Me), Authed),
    security(("bearer" = []))
)]
pub async fn get_me(State(state): State<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    let me = user
        .with_row(&state, || state.store.get_user(user.id(), user.by))
        .await?;
    Ok(Json(Me {
        id: me.id,
        email: me.email,
        name: me.name,
        created_at: time::format(&me.created_at),
        updated_at: time::format(&me.updated_at),
        task_counts: TaskCounts {
            total: me.total,
            pending: me.total - me.completed,
            completed: me.completed,
        },
    })
    .into_response())
}

/// `DELETE /api/v1/me`: the user and all their data, in one statement.
#[utoipa::path(
    delete,
    path = "/api/v1/me",
    tag = "me",
    responses((status = 204, description = "The caller and all their tasks are deleted"), Authed),
    security(("bearer" = []))
)]
pub async fn delete_me(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Response, ApiError> {
    state.store.delete_user(user.id(), user.by).await?;
    state.known_users.forget(user.id());
    Ok(StatusCode::NO_CONTENT.into_response())
}
