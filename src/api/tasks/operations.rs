//! The task operations, written once and shared by the v1 routes
//! (`mod.rs`) and the compatibility routes (`compat.rs`), which differ in
//! the list's shape, in where `Location` points, in PUT (a patch there) and
//! in DELETE (200 with the task there).

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    api::{
        AppState,
        auth_user::{AuthUser, deleted_meanwhile},
    },
    db::{Change, Created, IdempotentRequest, Precondition, WriteOutcome},
    domain::{
        Invalid,
        input::RawTask,
        listing::{COMPAT_LIMITS, ListParams, ListQuery, ListSpec, V1_LIMITS},
        task::{self, Task, TaskInput, TaskPatch},
        time,
    },
    error::ApiError,
};

/// Which family of routes is being served.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::api) enum Flavor {
    V1,
    Compat,
}

impl Flavor {
    /// Where the task `id` of `user` lives under this family of routes.
    fn location(self, user: &AuthUser, id: i64) -> String {
        match self {
            Self::V1 => format!("/api/v1/tasks/{id}"),
            Self::Compat => {
                let user = percent_encoding::utf8_percent_encode(
                    user.id(),
                    percent_encoding::NON_ALPHANUMERIC,
                );
                format!("/api/{user}/tasks/{id}")
            }
        }
    }
}

/// One page of a list.
#[derive(Serialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<Task>,
    /// Opaque cursor for the next page; null when no row follows.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// A task body with its `ETag` (and `Location` for creates).
fn task_response(status: StatusCode, task: &Task, location: Option<String>) -> Response {
    let mut response = (status, Json(task)).into_response();
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&task.etag()) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    response
}

fn ok_task(task: &Task) -> Response {
    task_response(StatusCode::OK, task, None)
}

/// A write's outcome: the task as written, or the error it is answered with.
pub(in crate::api) fn written(outcome: WriteOutcome<Task>) -> Result<Task, ApiError> {
    match outcome {
        WriteOutcome::Done(task) => Ok(task),
        WriteOutcome::NotFound => Err(ApiError::NotFound),
        WriteOutcome::PreconditionFailed => Err(ApiError::PreconditionFailed),
    }
}

/// Creates a task, re-creating the caller's row if it vanished.
pub(in crate::api) async fn insert(
    state: &AppState,
    user: &AuthUser,
    input: &TaskInput,
    now: DateTime<Utc>,
    idempotency: Option<&IdempotentRequest>,
) -> Result<Created, ApiError> {
    user.with_row(state, move || async move {
        let created = state
            .store
            .create_task(user.id(), input, now, idempotency, user.by)
            .await?;
        Ok((created != Created::UserMissing).then_some(created))
    })
    .await
}

/// The body read as `P` (PUT: [`TaskInput`], every field; PATCH:
/// [`TaskPatch`]) as a patch: a PUT is a patch naming every field. 404 when
/// the task is not the caller's outranks the body's errors.
pub(in crate::api) async fn patch_from<P>(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    body: RawTask,
) -> Result<TaskPatch, ApiError>
where
    P: TryFrom<RawTask, Error = Invalid>,
    TaskPatch: From<P>,
{
    match P::try_from(body) {
        Ok(fields) => Ok(TaskPatch::from(fields)),
        Err(invalid) if state.store.task_exists(user.id(), id, user.by).await? => {
            Err(invalid.into())
        }
        Err(_) => Err(ApiError::NotFound),
    }
}

/// Applies `change` to the caller's task `id` under `condition`.
pub(in crate::api) async fn change(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    change: &Change,
    condition: &Precondition,
) -> Result<Task, ApiError> {
    let outcome = state
        .store
        .update_task(user.id(), id, change, condition, time::now(), user.by);
    written(outcome.await?)
}

pub(in crate::api) async fn list_tasks(
    state: &AppState,
    user: &AuthUser,
    raw_query: Option<&str>,
    path: &str,
    flavor: Flavor,
) -> Result<Response, ApiError> {
    let (limits, compat) = match flavor {
        Flavor::V1 => (V1_LIMITS, false),
        Flavor::Compat => (COMPAT_LIMITS, true),
    };
    let query = ListQuery::parse(ListParams::from_query(raw_query)?, limits, compat)?;
    let after = query
        .cursor
        .as_deref()
        .map(|c| state.cursor_key.decode(user.id(), &query, c))
        .transpose()?;
    let spec = ListSpec {
        user_id: user.id().to_owned(),
        filters: query.filters.clone(),
        sort: query.sort,
        limit: query.limit,
        offset: query.offset.unwrap_or(0),
        after,
    };
    let page = state.store.list_tasks(&spec, user.by).await?;
    let next_cursor = page
        .continues_after()
        .map(|last| state.cursor_key.encode(user.id(), &query, last));
    match flavor {
        Flavor::V1 => Ok(Json(TaskPage {
            items: page.items,
            next_cursor,
        })
        .into_response()),
        Flavor::Compat => {
            let mut response = Json(page.items).into_response();
            if let Some(cursor) = next_cursor {
                let link = format!(
                    "<{}>; rel=\"next\"",
                    next_page_url(path, raw_query, &cursor)
                );
                if let Ok(link) = HeaderValue::from_str(&link) {
                    response.headers_mut().insert(header::LINK, link);
                }
            }
            Ok(response)
        }
    }
}

/// The same path and query with `cursor` replacing any cursor or offset.
fn next_page_url(path: &str, raw_query: Option<&str>, cursor: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw_query.unwrap_or("")).unwrap_or_default();
    pairs.retain(|(k, _)| k != "cursor" && k != "offset");
    pairs.push(("cursor".to_owned(), cursor.to_owned()));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("{path}?{query}")
}

pub(in crate::api) async fn create_task(
    state: &AppState,
    user: &AuthUser,
    key: Option<String>,
    body: RawTask,
    flavor: Flavor,
) -> Result<Response, ApiError> {
    let input = TaskInput::try_from(body)?;
    let now = time::now();
    let ttl =
        chrono::Duration::from_std(state.idempotency_ttl).unwrap_or(chrono::Duration::days(1));
    let idempotency = key.map(|key| IdempotentRequest {
        key,
        fingerprint: task::sha256_hex(input.fingerprint_json().as_bytes()),
        not_before: now - ttl,
    });
    match insert(state, user, &input, now, idempotency.as_ref()).await? {
        // A replay answers as the original create did: the same body,
        // `ETag` and `Location`.
        Created::New(task) | Created::Replay(task) => {
            let location = flavor.location(user, task.id);
            Ok(task_response(StatusCode::CREATED, &task, Some(location)))
        }
        Created::KeyReused => Err(ApiError::Conflict(
            "Idempotency-Key was already used with a different request body".to_owned(),
        )),
        // `with_row` answers that case itself.
        Created::UserMissing => Err(deleted_meanwhile()),
    }
}

pub(in crate::api) async fn get_task(
    state: &AppState,
    user: &AuthUser,
    id: i64,
) -> Result<Response, ApiError> {
    match state.store.get_task(user.id(), id, user.by).await? {
        Some(task) => Ok(ok_task(&task)),
        None => Err(ApiError::NotFound),
    }
}

/// The one update path of PUT (`P` = [`TaskInput`]) and PATCH (`P` =
/// [`TaskPatch`]).
pub(in crate::api) async fn update_task<P>(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    condition: &Precondition,
    body: RawTask,
) -> Result<Response, ApiError>
where
    P: TryFrom<RawTask, Error = Invalid>,
    TaskPatch: From<P>,
{
    let patch = patch_from::<P>(state, user, id, body).await?;
    Ok(ok_task(
        &change(state, user, id, &Change::Patch(patch), condition).await?,
    ))
}

pub(in crate::api) async fn toggle_task(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    condition: &Precondition,
) -> Result<Response, ApiError> {
    Ok(ok_task(
        &change(state, user, id, &Change::Toggle, condition).await?,
    ))
}

/// Deletes the task: v1 answers 204; the compatibility routes answer 200
/// with the task's last state, because the front ends written for them
/// parse every successful body as JSON.
pub(in crate::api) async fn delete_task(
    state: &AppState,
    user: &AuthUser,
    id: i64,
    condition: &Precondition,
    flavor: Flavor,
) -> Result<Response, ApiError> {
    let task = written(
        state
            .store
            .delete_task(user.id(), id, condition, user.by)
            .await?,
    )?;
    Ok(match flavor {
        Flavor::V1 => StatusCode::NO_CONTENT.into_response(),
        Flavor::Compat => ok_task(&task),
    })
}
