//! The change feed's statements and rows (see `domain::changes`): how a
//! write takes its number, the tombstone a delete leaves, the feed read
//! and the purge. The task writes themselves (`tasks.rs`) take the number
//! as [`Numbering`] says.

use chrono::{DateTime, Utc};

use super::{
    columns::{Columns, RowResult},
    sql::{Dialect, Param, SqlBuilder, one_of},
    tasks::{TASK_COLUMNS, decode_task},
};
use crate::domain::changes::{ChangeBatch, FeedStart, Numbered, TaskChange};

/// Where a write's change number comes from (see `domain::changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// PostgreSQL: the statement itself takes the next number, in a `with`
    /// clause that increments the user's counter. That update locks the
    /// user's row until commit, which is what hands numbers out in commit
    /// order; it runs first, so every write locks the user before the task
    /// (one order, no deadlock between writes).
    InStatement,
    /// SQLite: the writer took the number with [`take_number`] just before,
    /// in the same transaction.
    Taken(i64),
}

impl Numbering {
    /// The `with` clause (empty when the number was taken already) and the
    /// expression naming the number, for a statement whose user id is
    /// bound as `user`.
    pub(super) fn parts(self, b: &mut SqlBuilder, user: &str) -> (String, String) {
        match self {
            Self::InStatement => (
                format!(
                    "with s as (update users set sync_seq = sync_seq + 1 where id = {user} returning sync_seq) "
                ),
                "(select sync_seq from s)".to_owned(),
            ),
            Self::Taken(seq) => (String::new(), b.bind(Param::Int(seq))),
        }
    }
}

/// SQLite: takes the user's next change number (no row: the user is gone).
pub fn take_number(user_id: &str) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let user = b.text(user_id);
    b.sql =
        format!("update users set sync_seq = sync_seq + 1 where id = {user} returning sync_seq");
    b
}

/// SQLite: the tombstone of a task just deleted under change number `seq`.
pub fn insert_tombstone(user_id: &str, seq: i64, task_id: i64, now: DateTime<Utc>) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let params = [
        b.text(user_id),
        b.bind(Param::Int(seq)),
        b.bind(Param::Int(task_id)),
        b.bind(Param::Timestamp(now)),
    ];
    b.sql = format!(
        "insert into task_tombstones (user_id, sync_seq, task_id, deleted_at) values ({})",
        params.join(", ")
    );
    b
}

/// The `(epoch, change counter)` of those of `users` that exist: what a
/// sweep compares with what their streams have read (`signals.rs`).
pub fn counters(users: Vec<String>, dialect: Dialect) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let ids = b.bind(Param::TextList(users));
    b.sql = format!(
        "select id, sync_epoch, sync_seq from users where id {}",
        one_of(&ids, dialect)
    );
    b
}

/// A row of [`counters`].
pub(super) fn decode_counter(row: &impl Columns) -> RowResult<(String, (i64, i64))> {
    Ok((
        row.text("id")?,
        (row.int("sync_epoch")?, row.int("sync_seq")?),
    ))
}

/// The user's changes from `start`, at most `limit` (plus one look-ahead
/// row), in one statement so they come from one snapshot: a row per change
/// (`seq`, `gone`, `deleted_at`, and the task's columns for an upsert), or
/// one row with `seq` 0 when there is none; no row when the user is
/// missing. Every row carries the user's `epoch` and `head`.
pub fn changes(user_id: &str, start: FeedStart, limit: u32, dialect: Dialect) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let user = b.text(user_id);
    let after = b.bind(Param::Int(match start {
        FeedStart::Full => 0,
        FeedStart::After(seq) => seq,
        FeedStart::Head => i64::MAX,
    }));
    let no_ts = match dialect {
        Dialect::Postgres => "cast(null as timestamptz)",
        Dialect::Sqlite => "null",
    };
    let tombstones = match start {
        FeedStart::Full => String::new(),
        _ => format!(
            " union all select sync_seq, task_id, 1, deleted_at from task_tombstones \
             where user_id = {user} and sync_seq > {after}"
        ),
    };
    let limit = b.bind(Param::Int(i64::from(limit) + 1));
    let columns = TASK_COLUMNS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    b.sql = format!(
        "with u as (select sync_epoch, sync_seq from users where id = {user}), \
         ch as (select * from (select sync_seq as seq, id as task_id, cast(0 as bigint) as gone, \
         {no_ts} as deleted_at from tasks where user_id = {user} and sync_seq > {after}{tombstones}) \
         as c order by seq limit {limit}) \
         select u.sync_epoch as epoch, u.sync_seq as head, coalesce(ch.seq, 0) as seq, \
         coalesce(ch.gone, 0) as gone, ch.task_id as task_id, ch.deleted_at as deleted_at, {columns} \
         from u left join ch on true left join tasks t on t.id = ch.task_id and ch.gone = 0 \
         order by ch.seq"
    );
    b
}

/// Drops up to `batch` tombstones of deletes before `cutoff`.
pub fn purge_tombstones(cutoff: DateTime<Utc>, batch: u32) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let cutoff = b.bind(Param::Timestamp(cutoff));
    let batch = b.bind(Param::Int(i64::from(batch)));
    b.sql = format!(
        "delete from task_tombstones where (user_id, sync_seq) in \
         (select user_id, sync_seq from task_tombstones where deleted_at < {cutoff} limit {batch}) \
         returning 1"
    );
    b
}

/// One row of [`changes`]: the user's epoch and head, and a
/// change unless the row only carries those.
pub(super) struct ChangeRow {
    epoch: i64,
    head: i64,
    change: Option<Numbered>,
}

/// Decodes one row of [`changes`].
pub(super) fn decode_change(row: &impl Columns) -> RowResult<ChangeRow> {
    let seq = row.int("seq")?;
    let change = match seq {
        // The user's row alone: no change after the start.
        0 => None,
        _ if row.int("gone")? != 0 => Some(TaskChange::Delete {
            id: row.int("task_id")?,
            deleted_at: row.ts("deleted_at")?,
        }),
        _ => Some(TaskChange::Upsert {
            task: decode_task(row)?,
        }),
    };
    Ok(ChangeRow {
        epoch: row.int("epoch")?,
        head: row.int("head")?,
        change: change.map(|change| Numbered { seq, change }),
    })
}

/// The batch the rows of [`changes`] make (fetched with one
/// look-ahead row past `limit`); `None` when there is no row at all: the
/// user row is missing.
pub(super) fn change_batch(rows: Vec<ChangeRow>, limit: u32) -> Option<ChangeBatch> {
    let (epoch, head) = rows.first().map(|r| (r.epoch, r.head))?;
    let mut changes: Vec<Numbered> = rows.into_iter().filter_map(|r| r.change).collect();
    let more = changes.len() > limit as usize;
    changes.truncate(limit as usize);
    Some(ChangeBatch {
        epoch,
        head,
        changes,
        more,
    })
}
