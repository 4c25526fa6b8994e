//! Rows by column name, as SQLite stores them (timestamps as fixed-width
//! text, tags as a JSON array).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{
    Row,
    types::{Type, ValueRef},
};

use crate::db::columns::{Columns, RowResult};
use crate::domain::time;

/// A row with its statement's column names, read once per statement:
/// rusqlite's own lookup by name asks SQLite for each column's name again
/// on every call, which a page of tasks would do about a thousand times.
pub(super) struct Named<'r, 's> {
    pub(super) row: &'r Row<'s>,
    pub(super) names: &'r [String],
}

impl<'s> Named<'_, 's> {
    fn value(&self, name: &str) -> rusqlite::Result<ValueRef<'_>> {
        let at = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(name.to_owned()))?;
        self.row.get_ref(at)
    }

    fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> RowResult<T> {
        let value = self.value(name)?;
        T::column_result(value).with_context(|| format!("column {name}"))
    }
}

impl Columns for Named<'_, '_> {
    fn int(&self, name: &str) -> RowResult<i64> {
        self.get(name)
    }
    fn small_int(&self, name: &str) -> RowResult<i16> {
        self.get(name)
    }
    fn text(&self, name: &str) -> RowResult<String> {
        self.get(name)
    }
    fn opt_text(&self, name: &str) -> RowResult<Option<String>> {
        self.get(name)
    }
    fn flag(&self, name: &str) -> RowResult<bool> {
        self.get(name)
    }
    fn ts(&self, name: &str) -> RowResult<DateTime<Utc>> {
        let text: String = self.get(name)?;
        time::parse_input(&text)
            .with_context(|| format!("column {name}: corrupt timestamp {text:?}"))
    }
    fn opt_ts(&self, name: &str) -> RowResult<Option<DateTime<Utc>>> {
        match self.value(name)? {
            ValueRef::Null => Ok(None),
            _ => self.ts(name).map(Some),
        }
    }
    fn tags(&self, name: &str) -> RowResult<Vec<String>> {
        let text: String = self.get(name)?;
        serde_json::from_str(&text).with_context(|| format!("column {name}: corrupt tags"))
    }
}

/// A decoder's error as rusqlite's, so that it ends the statement's closure.
pub(super) fn row_error(err: anyhow::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Null, err.into())
}
