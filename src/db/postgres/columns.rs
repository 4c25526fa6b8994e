//! Rows by column name, as tokio-postgres decodes them.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use crate::db::{
    StoreError, StoreResult,
    columns::{Columns, RowResult},
    tasks,
};
use crate::domain::task::Task;

/// Columns by name, decoded by tokio-postgres (`timestamptz` through its
/// chrono support, which refuses PostgreSQL's `infinity`).
impl Columns for Row {
    fn int(&self, name: &str) -> RowResult<i64> {
        Ok(self.try_get(name)?)
    }
    fn small_int(&self, name: &str) -> RowResult<i16> {
        Ok(self.try_get(name)?)
    }
    fn text(&self, name: &str) -> RowResult<String> {
        Ok(self.try_get(name)?)
    }
    fn opt_text(&self, name: &str) -> RowResult<Option<String>> {
        Ok(self.try_get(name)?)
    }
    fn flag(&self, name: &str) -> RowResult<bool> {
        Ok(self.try_get(name)?)
    }
    fn ts(&self, name: &str) -> RowResult<DateTime<Utc>> {
        Ok(self.try_get(name)?)
    }
    fn opt_ts(&self, name: &str) -> RowResult<Option<DateTime<Utc>>> {
        Ok(self.try_get(name)?)
    }
    fn tags(&self, name: &str) -> RowResult<Vec<String>> {
        Ok(self.try_get(name)?)
    }
}

/// A task from a row of [`tasks::TASK_COLUMNS`]; a corrupt row is a 500.
pub(super) fn task_from_row(row: &Row) -> StoreResult<Task> {
    tasks::decode_task(row).map_err(StoreError::Other)
}
