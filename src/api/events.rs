//! `GET /api/v1/events`: the caller's changes as Server-Sent Events (API.md
//! "Live updates: the event stream").
//!
//! A stream holds no queue of changes: it holds a position in the user's
//! change feed and reads the feed from there whenever it is woken (a write
//! of this instance, a `NOTIFY` from another, a reconnect of the listener).
//! So a resumed stream's replay and its live part are one sequence of feed
//! reads, with no gap and no duplicate between them, and a missed or merged
//! wake-up costs nothing but a later read. The stream is the response body,
//! read only when hyper can write: a client that stops reading gets nothing
//! queued for it and is disconnected (`TCP_USER_TIMEOUT`, `server.rs`); it
//! resumes with `Last-Event-ID`.

use std::{
    convert::Infallible,
    time::{Duration, Instant},
};

use axum::{
    extract::{RawQuery, State},
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
};
use futures_util::StreamExt as _;

use super::{
    AppState, AuthUser,
    changes::{open_token, read_batch, still_valid, token_for},
    responses::{Authed, BadSyncToken, SyncGone},
};
use crate::{
    db::{Deadline, Subscription},
    domain::changes::{ChangeBatch, FEED_LIMIT_DEFAULT, FeedStart},
    error::ApiError,
};

/// How long a stream may stay silent before it sends a keep-alive comment
/// (API.md: at least every 15 s). The stream's own timer, which also ends
/// it at the token's expiry, rather than axum's `KeepAlive`: that is a
/// second timer and event buffer in every idle stream, ~0.2 KB each
/// (bench/README.md "What an idle stream holds").
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(10);

/// The caller's changes as they happen, optionally resumed after a token.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "sync",
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: the stream first replays every change after it"),
        ("since" = Option<String>, Query, description = "The same as `Last-Event-ID` (which wins when both are sent), e.g. a `next_since` of the change feed"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: one event per change, `id:` its sync token, `event: upsert|delete`, `data:` the change object of `/api/v1/changes` on one line; a `: keep-alive` comment at least every 15 s. It ends when the bearer token expires and at server shutdown.", content_type = "text/event-stream", body = String),
        BadSyncToken,
        SyncGone,
        Authed,
    ),
    security(("bearer" = []))
)]
pub async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (field, since) = match headers.get("last-event-id") {
        Some(value) => (
            "Last-Event-ID",
            Some(value.to_str().unwrap_or_default().to_owned()),
        ),
        None => ("since", since_param(query.as_deref())),
    };
    let token = since
        .as_deref()
        .map(|text| open_token(&state, &user, field, text))
        .transpose()?;
    let cap = state.events_max_streams_per_user;
    // Registered before the first read: a change committed after that read
    // has woken this stream already.
    let subscription = state
        .store
        .signals()
        .subscribe(user.id(), cap)
        .ok_or_else(|| {
            state.metrics.rate_limited("streams");
            ApiError::TooManyRequests {
                retry_after: 1,
                limit: u32::try_from(cap).unwrap_or(u32::MAX),
            }
        })?;
    let first = match token {
        Some(token) => {
            let batch = read_batch(
                &state,
                &user,
                FeedStart::After(token.seq),
                FEED_LIMIT_DEFAULT,
                user.by,
            )
            .await?;
            still_valid(&state, token, &batch)?;
            batch
        }
        None => read_batch(&state, &user, FeedStart::Head, 1, user.by).await?,
    };
    subscription.opened_at(first.epoch, first.head);
    let stream = Stream {
        state,
        epoch: first.epoch,
        position: match token {
            Some(token) => token.seq,
            None => first.head,
        },
        subscription,
        ends: Instant::now() + until(user.expires_at),
        unsent: Some(Box::new(first)),
        drained: false,
    };
    // Pulled by the response body: no task and no queue per stream.
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let events = stream.next_events().await.ok()?;
        Some((
            futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>)),
            stream,
        ))
    })
    .flatten();
    Ok(Sse::new(events).into_response())
}

/// `since` from the query string (the last one, as elsewhere).
fn since_param(query: Option<&str>) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .ok()?
        .into_iter()
        .rev()
        .find_map(|(name, value)| (name == "since").then_some(value))
}

/// Time from now until the Unix time `at`, at most a year (an `Instant`
/// that far ahead cannot overflow; a stream that long reconnects anyway).
fn until(at: f64) -> Duration {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Duration::try_from_secs_f64((at - now).max(0.0)).map_or(YEAR, |d| d.min(YEAR))
}

/// The keep-alive comment: `: keep-alive` and a blank line.
fn keep_alive() -> Event {
    Event::default().comment("keep-alive")
}

/// One open stream: where it is in the user's feed. It is the response
/// body's state, read only when hyper asks for more: a client that stops
/// reading stops the reads, and `TCP_USER_TIMEOUT` (`server.rs`) then
/// closes its connection, which drops the stream and frees its place.
struct Stream {
    state: AppState,
    epoch: i64,
    /// Every change up to this number has been sent (or was before the
    /// stream's start).
    position: i64,
    subscription: Subscription,
    /// The bearer token's expiry: the client reconnects with a fresh one.
    ends: Instant,
    /// A batch read and not yet turned into events (the first one). Boxed:
    /// it is used once, and every idle stream would carry its size.
    unsent: Option<Box<ChangeBatch>>,
    /// The last batch read reached the feed's head: wait for a signal
    /// before the next read.
    drained: bool,
}

/// The stream ends: the client must reconnect (its token expired, the
/// server is stopping, the feed could not be read).
struct Stop;

impl Stream {
    /// The next events: the first batch's, then the feed's after each
    /// signal, until the feed is drained again; a keep-alive comment when
    /// [`KEEP_ALIVE_EVERY`] passes without an event.
    async fn next_events(&mut self) -> Result<Vec<Event>, Stop> {
        // Fixed for the call: wake-ups that bring nothing new do not put
        // the keep-alive off.
        let quiet_until = self.ends.min(Instant::now() + KEEP_ALIVE_EVERY);
        loop {
            let batch = match self.unsent.take() {
                Some(batch) => *batch,
                None => {
                    if self.drained && !self.wait(quiet_until).await? {
                        return self.quiet(quiet_until);
                    }
                    // A slow read must not put the keep-alive (or the end at
                    // expiry) off either; cut short, it is repeated on the
                    // next call (reading changes nothing).
                    let Ok(read) = tokio::time::timeout_at(quiet_until.into(), self.read()).await
                    else {
                        self.drained = false;
                        return self.quiet(quiet_until);
                    };
                    read?
                }
            };
            self.drained = !batch.more;
            let events = self.events(batch)?;
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }

    /// Waits for a signal (`true`) or until `quiet_until` (`false`); ends
    /// the stream at shutdown.
    async fn wait(&mut self, quiet_until: Instant) -> Result<bool, Stop> {
        if self.subscription.closed() {
            return Err(Stop);
        }
        tokio::select! {
            () = self.subscription.changed() => {
                if self.subscription.closed() { Err(Stop) } else { Ok(true) }
            }
            () = tokio::time::sleep_until(quiet_until.into()) => Ok(false),
        }
    }

    /// Nothing came by `quiet_until`: the stream ends if that is the
    /// token's expiry, or else sends a keep-alive comment.
    fn quiet(&self, quiet_until: Instant) -> Result<Vec<Event>, Stop> {
        if quiet_until == self.ends {
            Err(Stop)
        } else {
            Ok(vec![keep_alive()])
        }
    }

    /// The batch's changes after the stream's position, as events; the
    /// position moves past them (and to the head when the feed is drained).
    fn events(&mut self, batch: ChangeBatch) -> Result<Vec<Event>, Stop> {
        let mut events = Vec::with_capacity(batch.changes.len());
        for numbered in batch.changes {
            if numbered.seq <= self.position {
                continue;
            }
            let data = serde_json::to_string(&numbered.change).map_err(|_| Stop)?;
            events.push(
                Event::default()
                    .id(token_for(
                        &self.state,
                        self.subscription.user_id(),
                        self.epoch,
                        numbered.seq,
                    ))
                    .event(numbered.change.op())
                    .data(data),
            );
            self.position = numbered.seq;
        }
        if !batch.more {
            self.position = self.position.max(batch.head);
        }
        Ok(events)
    }

    /// The feed after the stream's position. A read that fails, or finds
    /// the user deleted (or re-created), ends the stream: the client's
    /// reconnect then gets the answer a new request would (503, 410).
    async fn read(&self) -> Result<ChangeBatch, Stop> {
        self.state.metrics.stream_read();
        let by = Deadline::after(self.state.storage_budget);
        let read = self
            .state
            .store
            .changes(
                self.subscription.user_id(),
                FeedStart::After(self.position),
                FEED_LIMIT_DEFAULT,
                by,
            )
            .await;
        match read {
            Ok(Some(batch)) if batch.epoch == self.epoch => Ok(batch),
            Ok(_) => Err(Stop),
            Err(err) => {
                tracing::info!(error = %err, "event stream ended: the change feed could not be read");
                Err(Stop)
            }
        }
    }
}
