//! The path and header parameters shared by many operations, written once as
//! `IntoParams` types so each `#[utoipa::path]` names them instead of
//! repeating their constraints: `params(CompatUserPath, TaskPath, IfMatchHeader)`.
//!
//! Like the types of [`super::responses`], these are only ever read by the
//! document generator; the values themselves come from the extractors of
//! `api::extract` (`TaskId`, `IfMatch`, `IdempotencyKey`, `CompatUser`).

use utoipa::IntoParams;

/// The `{id}` segment of a task route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskPath {
    /// Task id
    #[param(minimum = 1)]
    pub id: i64,
}

/// The `{user_id}` segment of a compatibility route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CompatUserPath {
    /// Must be the caller's user id (else 403)
    pub user_id: String,
}

/// The precondition of a conditional write.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// Strong entity tags (`"3"`, a list, or `*`); a mismatch is 412
    #[param(rename = "If-Match", nullable = false, min_length = 1)]
    pub if_match: Option<String>,
}

/// The key that makes a create safe to retry.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1-255 printable ASCII characters; a retry with the same key and body replays the original 201
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = r"^[\x20-\x7E]+$"
    )]
    pub idempotency_key: Option<String>,
}
