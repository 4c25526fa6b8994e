//! The `Idempotency-Key` statements: claim a key, store the task it
//! replays, read it back, and forget expired keys.

use chrono::{DateTime, Utc};

use anyhow::Context as _;

use super::{
    Created,
    columns::{Columns, RowResult},
    sql::{Param, SqlBuilder},
};
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
        b.text(user_id),
        b.text(key),
        b.text(fingerprint),
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
        b.text(user_id),
        b.text(key),
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
    let params = [b.text(user_id), b.text(key), b.bind(Param::Text(response))];
    b.sql = format!(
        "update idempotency_keys set response = {} where user_id = {} and key = {}",
        params[2], params[0], params[1]
    );
    b
}

/// What a create answers for a key claimed before, from its row of
/// [`select_idempotency_key`]: the task stored for a replay (see
/// [`finish_idempotency_key`]) when the body is the same, else
/// [`Created::KeyReused`].
pub(super) fn replay(row: &impl Columns, fingerprint: &str) -> RowResult<Created> {
    let used_with = row.text("fingerprint")?;
    match row.opt_text("response")? {
        Some(body) if used_with == fingerprint => Ok(Created::Replay(
            serde_json::from_str(&body).context("corrupt replay")?,
        )),
        _ => Ok(Created::KeyReused),
    }
}

/// The fingerprint and stored response of a claimed key.
pub fn select_idempotency_key(user_id: &str, key: &str) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let (user, key) = (b.text(user_id), b.text(key));
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
