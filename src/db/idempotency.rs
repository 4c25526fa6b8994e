//! The `Idempotency-Key` statements: claim a key, store the task it
//! replays, read it back, and forget expired keys.

use chrono::{DateTime, Utc};

use super::sql::{Param, SqlBuilder};
use crate::domain::task::Task;

/// Claims an idempotency key for a create in progress; affects no row when
/// the key is already taken.
pub fn claim_idempotency_key(
    user_id: &str,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let params = [
        b.bind(Param::Text(user_id.to_owned())),
        b.bind(Param::Text(key.to_owned())),
        b.bind(Param::Text(fingerprint.to_owned())),
        b.bind(Param::Timestamp(now)),
    ];
    b.sql = format!(
        "insert into idempotency_keys (user_id, key, fingerprint, response, created_at) \
         values ({}, {}, {}, null, {}) on conflict (user_id, key) do nothing returning 1",
        params[0], params[1], params[2], params[3]
    );
    b
}

/// Forgets one expired key so it can be claimed afresh.
pub fn expire_idempotency_key(user_id: &str, key: &str, not_before: DateTime<Utc>) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let params = [
        b.bind(Param::Text(user_id.to_owned())),
        b.bind(Param::Text(key.to_owned())),
        b.bind(Param::Timestamp(not_before)),
    ];
    b.sql = format!(
        "delete from idempotency_keys where user_id = {} and key = {} and created_at < {}",
        params[0], params[1], params[2]
    );
    b
}

/// Stores the task a claimed key replays, as its serde JSON: the bytes
/// earlier versions stored there too (their hand-written writer was held
/// equal to serde's), so their rows replay (tests/api/idempotency.rs).
pub fn finish_idempotency_key(user_id: &str, key: &str, task: &Task) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    // Strings, integers, booleans and timestamps always serialise.
    let response = serde_json::to_string(task).unwrap_or_default();
    let params = [
        b.bind(Param::Text(user_id.to_owned())),
        b.bind(Param::Text(key.to_owned())),
        b.bind(Param::Text(response)),
    ];
    b.sql = format!(
        "update idempotency_keys set response = {} where user_id = {} and key = {}",
        params[2], params[0], params[1]
    );
    b
}

/// The task a stored replay holds (see [`finish_idempotency_key`]).
pub fn replayed(response: &str) -> Result<Task, serde_json::Error> {
    serde_json::from_str(response)
}

/// The fingerprint and stored response of a claimed key.
pub fn select_idempotency_key(user_id: &str, key: &str) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let (user, key) = (
        b.bind(Param::Text(user_id.to_owned())),
        b.bind(Param::Text(key.to_owned())),
    );
    b.sql = format!(
        "select fingerprint, response from idempotency_keys where user_id = {user} and key = {key}"
    );
    b
}

/// Drops every key created before `cutoff`.
pub fn purge_idempotency_keys(cutoff: DateTime<Utc>) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let cutoff = b.bind(Param::Timestamp(cutoff));
    b.sql = format!("delete from idempotency_keys where created_at < {cutoff} returning 1");
    b
}
