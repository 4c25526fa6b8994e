//! Rows as stored, read by column name: [`Columns`] is what the decoders
//! need of a driver's row, implemented once per backend
//! (`postgres/columns.rs`, `sqlite/columns.rs`). The decoders themselves
//! sit next to their statements (`tasks.rs`, `users.rs`), so a task field
//! is read once, not once per backend, and a reordered column list cannot
//! shift values into the wrong fields.

use chrono::{DateTime, Utc};

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
