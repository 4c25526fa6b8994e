//! The task statements and the task row: the column list, the insert, the
//! update, and [`decode_task`], side by side, so that a new task field is
//! one change to this file (plus the domain types and a migration).

use chrono::{DateTime, Utc};

use super::{
    Change, Precondition,
    changes::Numbering,
    columns::{Columns, RowResult},
    sql::{Dialect, Param, SqlBuilder, precondition},
};
use crate::domain::task::{Priority, Task, TaskInput};

/// Column list shared by every statement that returns tasks.
pub const TASK_COLUMNS: &str = "id, user_id, title, description, completed, priority, tags, \
     due_date, completed_at, created_at, updated_at, version";

/// A task from a row of [`TASK_COLUMNS`].
pub(super) fn decode_task(row: &impl Columns) -> RowResult<Task> {
    let rank = row.small_int("priority")?;
    Ok(Task {
        id: row.int("id")?,
        user_id: row.text("user_id")?,
        title: row.text("title")?,
        description: row.opt_text("description")?,
        completed: row.flag("completed")?,
        priority: Priority::from_rank(rank.into())
            .ok_or_else(|| anyhow::anyhow!("corrupt task row: priority {rank}"))?,
        tags: row.tags("tags")?,
        due_date: row.opt_ts("due_date")?,
        completed_at: row.opt_ts("completed_at")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
        version: row.int("version")?,
    })
}

/// Lower-cased copy used by `q` search, so matching is case-insensitive in
/// the same way on both backends (SQLite's own `lower` is ASCII-only).
fn search_copy(text: &str) -> String {
    text.to_lowercase()
}

/// Inserts a task and returns it. No row when the user row is missing.
pub fn insert_task(
    user_id: &str,
    input: &TaskInput,
    now: DateTime<Utc>,
    numbering: Numbering,
) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let values = [
        b.text(user_id),
        b.text(&input.title),
        b.bind(Param::Text(search_copy(&input.title))),
        b.bind(Param::OptText(input.description.clone())),
        b.bind(Param::OptText(
            input.description.as_deref().map(search_copy),
        )),
        b.bind(Param::Bool(input.completed)),
        b.bind(Param::SmallInt(input.priority.rank())),
        b.bind(Param::TextList(input.tags.clone())),
        b.bind(Param::OptTimestamp(input.due_date)),
        b.bind(Param::OptTimestamp(input.completed.then_some(now))),
        b.bind(Param::Timestamp(now)),
    ];
    let (with, seq) = numbering.parts(&mut b, &values[0]);
    let from = match numbering {
        Numbering::InStatement => " from s",
        Numbering::Taken(_) => "",
    };
    b.sql = format!(
        "{with}insert into tasks (user_id, title, title_lc, description, description_lc, completed, \
         priority, tags, due_date, completed_at, created_at, updated_at, version, sync_seq) \
         select {}, {}, 1, {seq}{from} returning {TASK_COLUMNS}",
        values.join(", "),
        values[10],
    );
    b
}

/// One task of one user.
pub fn select_task(user_id: &str, id: i64) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let (id, user) = (b.bind(Param::Int(id)), b.text(user_id));
    b.sql = format!("select {TASK_COLUMNS} from tasks where id = {id} and user_id = {user}");
    b
}

/// Applies `change` in one statement whose `where` carries the `If-Match`
/// condition, so the version check and the write are one atomic step.
pub fn update_task(
    user_id: &str,
    id: i64,
    change: &Change,
    condition: &Precondition,
    now: DateTime<Utc>,
    numbering: Numbering,
) -> SqlBuilder {
    // Only PostgreSQL takes the number in the statement (see `Numbering`).
    let dialect = match numbering {
        Numbering::InStatement => Dialect::Postgres,
        Numbering::Taken(_) => Dialect::Sqlite,
    };
    let mut b = SqlBuilder::default();
    let user = b.text(user_id);
    let (with, seq) = numbering.parts(&mut b, &user);
    let now_p = b.bind(Param::Timestamp(now));
    let mut sets = Vec::new();
    let new_completed = match change {
        Change::Toggle => "not completed".to_owned(),
        Change::Patch(patch) => {
            let mut set = |column: &str, value| sets.push(format!("{column} = {}", b.bind(value)));
            if let Some(title) = &patch.title {
                set("title", Param::Text(title.clone()));
                set("title_lc", Param::Text(search_copy(title)));
            }
            if let Some(description) = &patch.description {
                set("description", Param::OptText(description.clone()));
                set(
                    "description_lc",
                    Param::OptText(description.as_deref().map(search_copy)),
                );
            }
            if let Some(priority) = patch.priority {
                set("priority", Param::SmallInt(priority.rank()));
            }
            if let Some(tags) = &patch.tags {
                set("tags", Param::TextList(tags.clone()));
            }
            if let Some(due) = patch.due_date {
                set("due_date", Param::OptTimestamp(due));
            }
            match patch.completed {
                Some(completed) => b.bind(Param::Bool(completed)),
                None => "completed".to_owned(),
            }
        }
    };
    // Right-hand sides read the old row, so `completed` below is the old value.
    sets.push(format!(
        "completed_at = case when {new_completed} then coalesce(completed_at, {now_p}) else null end"
    ));
    sets.push(format!("completed = {new_completed}"));
    sets.push("version = version + 1".to_owned());
    sets.push(match dialect {
        // Strictly forward even if the wall clock steps back.
        Dialect::Postgres => {
            format!("updated_at = greatest({now_p}, updated_at + interval '1 microsecond')")
        }
        Dialect::Sqlite => format!("updated_at = max({now_p}, updated_at)"),
    });
    sets.push(format!("sync_seq = {seq}"));
    let id = b.bind(Param::Int(id));
    let cond = precondition(&mut b, condition, dialect);
    b.sql = format!(
        "{with}update tasks set {} where id = {id} and user_id = {user}{cond} returning {TASK_COLUMNS}",
        sets.join(", ")
    );
    b
}

/// Deletes one task under the `If-Match` condition, returning its last state
/// (the compatibility DELETE answers with it; one statement keeps the read
/// atomic with the condition). On PostgreSQL the same statement takes the
/// change number and leaves the tombstone; on SQLite the writer does both
/// around it ([`take_number`], [`insert_tombstone`]).
pub fn delete_task(
    user_id: &str,
    id: i64,
    condition: &Precondition,
    dialect: Dialect,
    now: DateTime<Utc>,
) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let (id, user) = (b.bind(Param::Int(id)), b.text(user_id));
    let cond = precondition(&mut b, condition, dialect);
    b.sql = match dialect {
        Dialect::Sqlite => format!(
            "delete from tasks where id = {id} and user_id = {user}{cond} returning {TASK_COLUMNS}"
        ),
        Dialect::Postgres => {
            let (with, _) = Numbering::InStatement.parts(&mut b, &user);
            let now = b.bind(Param::Timestamp(now));
            // `exists (select 1 from s)` makes the counter's row lock come
            // first, as in every other write.
            format!(
                "{with}, d as (delete from tasks where id = {id} and user_id = {user}{cond} \
                 and exists (select 1 from s) returning {TASK_COLUMNS}), \
                 t as (insert into task_tombstones (user_id, sync_seq, task_id, deleted_at) \
                 select d.user_id, s.sync_seq, d.id, {now} from d cross join s) \
                 select d.* from d"
            )
        }
    };
    b
}

/// Whether the user has this task (one row of `1`, or none).
pub fn task_exists(user_id: &str, id: i64) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    let (id, user) = (b.bind(Param::Int(id)), b.text(user_id));
    b.sql = format!("select 1 from tasks where id = {id} and user_id = {user}");
    b
}
