//! `GET /api/v1/changes`: the change feed (API.md "Sync: the change
//! feed"). The sync token's checks live here too, because the event stream
//! (`events.rs`) opens and answers tokens the same way.

use axum::{
    Json,
    extract::{RawQuery, State},
};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState, AuthUser,
    responses::{Authed, BadSyncToken, SyncGone},
};
use crate::{
    db::Deadline,
    domain::{
        FieldError,
        changes::{
            ChangeBatch, FEED_LIMIT_DEFAULT, FEED_LIMIT_MAX, FeedStart, SyncToken, TaskChange,
            TokenError,
        },
        time,
    },
    error::ApiError,
};

/// One page of the change feed.
#[derive(Serialize, ToSchema)]
pub struct ChangesPage {
    /// The changes after `since`, oldest first; a task appears once, in
    /// its latest state (or as one `delete`).
    pub changes: Vec<TaskChange>,
    /// The token to pass as `since` next time.
    pub next_since: String,
    /// More changes are waiting: call again now with `next_since`.
    pub has_more: bool,
}

/// The feed's query string.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// A `next_since` (or event `id`) from an earlier call; absent for a
    /// full sync (every current task as an `upsert`).
    pub since: Option<String>,
    /// Most changes in this page, 1-1000 (default 500).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl ChangesParams {
    /// Reads `since` and `limit` (the last of repeated values, as on the
    /// list); other parameters are ignored.
    fn from_query(raw: Option<&str>) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| ApiError::bad_param("query", "is not a valid query string"))?;
        let mut params = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "since" => params.since = Some(value),
                "limit" => {
                    params.limit = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|n| (1..=FEED_LIMIT_MAX).contains(n))
                            .ok_or_else(|| {
                                ApiError::bad_param(
                                    "limit",
                                    format!("must be an integer from 1 to {FEED_LIMIT_MAX}"),
                                )
                            })?,
                    );
                }
                _ => {}
            }
        }
        Ok(params)
    }
}

/// Opens a client's token (400 when it is not one issued to this user).
pub(super) fn open_token(
    state: &AppState,
    user: &AuthUser,
    field: &str,
    text: &str,
) -> Result<SyncToken, ApiError> {
    state
        .sync_key
        .decode(user.id(), text)
        .map_err(|_| FieldError::new(field, "is not a sync token issued to this user").into())
}

/// Checks an opened token against what the read found (410 when the token
/// predates the user's row or the tombstone retention).
pub(super) fn still_valid(
    state: &AppState,
    token: SyncToken,
    batch: &ChangeBatch,
) -> Result<(), ApiError> {
    let retention =
        chrono::Duration::from_std(state.changes_retention).unwrap_or(chrono::Duration::days(30));
    match token.check(batch.epoch, time::now(), retention) {
        Ok(_) => Ok(()),
        Err(TokenError::Expired | TokenError::Invalid) => Err(ApiError::Gone(
            "this sync token has expired or the user's data was deleted since; sync again without `since`",
        )),
    }
}

/// The token a client holds once it has applied changes up to `seq`.
pub(super) fn token_for(state: &AppState, user_id: &str, epoch: i64, seq: i64) -> String {
    state.sync_key.encode(
        user_id,
        SyncToken {
            epoch,
            seq,
            issued: time::now().timestamp(),
        },
    )
}

/// Reads one batch of the caller's feed. The user row may be missing (a
/// `DELETE /me` through another instance); it is re-created as on first
/// sight, whose new epoch then answers an old token 410.
pub(super) async fn read_batch(
    state: &AppState,
    user: &AuthUser,
    start: FeedStart,
    limit: u32,
    by: Deadline,
) -> Result<ChangeBatch, ApiError> {
    user.with_row(state, || state.store.changes(user.id(), start, limit, by))
        .await
}

/// The caller's changes after `since` (all current tasks without it).
#[utoipa::path(
    get,
    path = "/api/v1/changes",
    tag = "sync",
    params(ChangesParams),
    responses(
        (status = 200, description = "Changes after `since`, oldest first", body = ChangesPage),
        BadSyncToken,
        SyncGone,
        Authed,
    ),
    security(("bearer" = []))
)]
pub async fn changes(
    State(state): State<AppState>,
    user: AuthUser,
    RawQuery(query): RawQuery,
) -> Result<Json<ChangesPage>, ApiError> {
    let params = ChangesParams::from_query(query.as_deref())?;
    let token = params
        .since
        .as_deref()
        .map(|text| open_token(&state, &user, "since", text))
        .transpose()?;
    let start = token.map_or(FeedStart::Full, |t| FeedStart::After(t.seq));
    let limit = params.limit.unwrap_or(FEED_LIMIT_DEFAULT);
    let batch = read_batch(&state, &user, start, limit, user.by).await?;
    if let Some(token) = token {
        still_valid(&state, token, &batch)?;
    }
    let next_since = token_for(&state, user.id(), batch.epoch, batch.next_after());
    Ok(Json(ChangesPage {
        has_more: batch.more,
        changes: batch.changes.into_iter().map(|n| n.change).collect(),
        next_since,
    }))
}
