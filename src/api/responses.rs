//! The error answers shared by many operations, written once as
//! `IntoResponses` types so each `#[utoipa::path]` lists only what is
//! particular to it: `responses((status = 200, ...), TaskMissing, Authed)`.
//!
//! Every body is the real [`Problem`] that `ApiError` serialises, under
//! `application/problem+json`. The types are only ever read by the document
//! generator; the answers themselves come from `ApiError`.

use utoipa::IntoResponses;

use crate::domain::task::Task;
use crate::error::Problem;

/// The task as it now stands, with the version a later `If-Match` can name.
#[derive(IntoResponses)]
#[response(
    status = 200,
    description = "The task",
    headers(("ETag" = String, description = "`\"<version>\"`"))
)]
pub struct TaskOk(pub Task);

/// A new task (or the replay of an earlier create under the same key).
#[derive(IntoResponses)]
#[response(
    status = 201,
    description = "Created (or the replay of an earlier create with the same key)",
    headers(
        ("ETag" = String, description = "`\"<version>\"`"),
        ("Location" = String, description = "URL of the new task")
    )
)]
pub struct TaskCreated(pub Task);

/// What any authenticated, rate-limited, database-backed route can answer.
#[derive(IntoResponses)]
pub enum Authed {
    /// Missing or invalid bearer token
    #[response(
        status = 401,
        content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_token\"` when a token was presented"))
    )]
    Unauthorized(Problem<'static>),
    /// Request budget spent (per user, or per IP for failed authentication)
    #[response(
        status = 429,
        content_type = "application/problem+json",
        headers(
            ("Retry-After" = u64, description = "Seconds to wait"),
            ("RateLimit-Limit" = u32),
            ("RateLimit-Remaining" = u32),
            ("RateLimit-Reset" = u64)
        )
    )]
    TooMany(Problem<'static>),
    /// Database or key server unavailable
    #[response(
        status = 503,
        content_type = "application/problem+json",
        headers(("Retry-After" = u32, description = "Seconds to wait"))
    )]
    Unavailable(Problem<'static>),
}

/// The 503 alone, for the unauthenticated readiness probe.
#[derive(IntoResponses)]
#[response(
    status = 503,
    content_type = "application/problem+json",
    headers(("Retry-After" = u32, description = "Seconds to wait")),
    description = "Database or key server unavailable"
)]
pub struct Unavailable(pub Problem<'static>);

/// What a route reading a JSON body can answer about that body.
#[derive(IntoResponses)]
pub enum BadBody {
    /// Malformed JSON (or, on create, a bad `Idempotency-Key` header)
    #[response(status = 400, content_type = "application/problem+json")]
    Malformed(Problem<'static>),
    /// Body over 65,536 bytes
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem<'static>),
    /// Body is not `application/json`
    #[response(status = 415, content_type = "application/problem+json")]
    NotJson(Problem<'static>),
    /// Well-formed JSON that fails validation
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem<'static>),
}

/// A list's query string is invalid.
#[derive(IntoResponses)]
#[response(
    status = 400,
    content_type = "application/problem+json",
    description = "A query parameter is invalid"
)]
pub struct BadQuery(pub Problem<'static>);

/// The task id names no task of the caller's (or another user's task).
#[derive(IntoResponses)]
#[response(
    status = 404,
    content_type = "application/problem+json",
    description = "No such task for this user"
)]
pub struct TaskMissing(pub Problem<'static>);

/// A conditional write lost to a newer version.
#[derive(IntoResponses)]
#[response(
    status = 412,
    content_type = "application/problem+json",
    description = "`If-Match` does not match the current version"
)]
pub struct Stale(pub Problem<'static>);

/// A create retried under the same key with another body.
#[derive(IntoResponses)]
#[response(
    status = 409,
    content_type = "application/problem+json",
    description = "`Idempotency-Key` reused with a different body"
)]
pub struct IdemConflict(pub Problem<'static>);

/// A compatibility route naming a user other than the caller.
#[derive(IntoResponses)]
#[response(
    status = 403,
    content_type = "application/problem+json",
    description = "The path names another user"
)]
pub struct CompatForbidden(pub Problem<'static>);

/// The change feed's or event stream's query is invalid.
#[derive(IntoResponses)]
#[response(
    status = 400,
    content_type = "application/problem+json",
    description = "A bad `limit`, or a `since` / `Last-Event-ID` that is not a sync token issued to this user (edited, or another user's)"
)]
pub struct BadSyncToken(pub Problem<'static>);

/// A sync token that can no longer be served.
#[derive(IntoResponses)]
#[response(
    status = 410,
    content_type = "application/problem+json",
    description = "The token is older than the tombstone retention (`CHANGES_RETENTION_DAYS`) or from before `DELETE /api/v1/me`: drop the local copy and sync in full"
)]
pub struct SyncGone(pub Problem<'static>);
