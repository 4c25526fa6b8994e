//! Rows as stored, decoded by column name: one decoder per kind of row over
//! whichever driver's row ([`Columns`], implemented once per backend). A
//! task field is read here once, not once per backend, and a reordered
//! column list cannot shift values into the wrong fields.

use chrono::{DateTime, Utc};

use super::UserProfile;
use crate::domain::task::{Priority, Task};

/// A column that is not what the schema promises: a corrupt row (500).
pub(super) type RowResult<T> = Result<T, anyhow::Error>;

/// What the decoders need of a driver's row: each column by name, as the
/// type the schema promises. Anything else (a NULL where none may be, a
/// timestamp chrono cannot hold, tags that are not a list of strings) is
/// an error naming the column.
pub(super) trait Columns {
    fn int(&self, name: &str) -> RowResult<i64>;
    fn small_int(&self, name: &str) -> RowResult<i16>;
    fn text(&self, name: &str) -> RowResult<String>;
    fn opt_text(&self, name: &str) -> RowResult<Option<String>>;
    fn flag(&self, name: &str) -> RowResult<bool>;
    fn ts(&self, name: &str) -> RowResult<DateTime<Utc>>;
    fn opt_ts(&self, name: &str) -> RowResult<Option<DateTime<Utc>>>;
    fn tags(&self, name: &str) -> RowResult<Vec<String>>;
}

/// A task from a row of [`super::sql::TASK_COLUMNS`].
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

/// A user's row and counts from [`super::sql::select_user`].
pub(super) fn decode_profile(row: &impl Columns) -> RowResult<UserProfile> {
    Ok(UserProfile {
        id: row.text("id")?,
        email: row.opt_text("email")?,
        name: row.opt_text("name")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
        total: row.int("total")?,
        completed: row.int("done")?,
    })
}
