//! Running the shared SQL on rusqlite: parameters bound by their `$n`
//! names, statements cached per connection, rows mapped by column name.

use rusqlite::{Connection, Statement};

use super::columns::{Named, row_error};
use crate::db::{
    columns::RowResult,
    sql::{Param, SqlBuilder},
};
use crate::domain::time;

/// Binds `b`'s parameters. The shared SQL numbers them `$1`, `$2`…, which
/// SQLite treats as names and indexes in order of first appearance; the
/// number in each name says which parameter it is.
pub(super) fn bind(stmt: &mut Statement<'_>, b: &SqlBuilder) -> rusqlite::Result<()> {
    for index in 1..=stmt.parameter_count() {
        let param = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| b.params.get(n.checked_sub(1)?))
            .ok_or(rusqlite::Error::InvalidParameterCount(
                index,
                b.params.len(),
            ))?;
        match param {
            Param::Text(v) => stmt.raw_bind_parameter(index, v.as_str()),
            Param::Int(v) => stmt.raw_bind_parameter(index, v),
            Param::SmallInt(v) => stmt.raw_bind_parameter(index, i64::from(*v)),
            Param::Bool(v) => stmt.raw_bind_parameter(index, v),
            Param::Timestamp(v) => stmt.raw_bind_parameter(index, time::storage_text(v)),
            Param::TextList(v) => stmt.raw_bind_parameter(index, json_array(v)),
            Param::IntList(v) => stmt.raw_bind_parameter(index, json_array(v)),
            Param::OptText(v) => stmt.raw_bind_parameter(index, v.as_deref()),
            Param::OptTimestamp(v) => {
                stmt.raw_bind_parameter(index, v.as_ref().map(time::storage_text))
            }
        }?;
    }
    Ok(())
}

fn json_array<T: serde::Serialize>(items: &[T]) -> String {
    // Serialising strings or integers cannot fail.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// Runs `b` and decodes every row it returns (a decoder's error ends the
/// statement).
pub(super) fn query<T>(
    conn: &Connection,
    b: &SqlBuilder,
    mut decode: impl FnMut(&Named<'_, '_>) -> RowResult<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(&b.sql)?;
    bind(&mut stmt, b)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(&Named { row, names: &names }).map_err(row_error)?);
    }
    Ok(out)
}

/// Runs `b`, which returns at most one row (each such statement is keyed
/// by a primary key).
pub(super) fn query_first<T>(
    conn: &Connection,
    b: &SqlBuilder,
    decode: impl FnMut(&Named<'_, '_>) -> RowResult<T>,
) -> rusqlite::Result<Option<T>> {
    Ok(query(conn, b, decode)?.into_iter().next())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::db::{list, migrations, sql::Dialect};
    use crate::domain::listing::ListSpec;

    /// The default list, with or without a cursor, reads its rows from
    /// the covering index alone; a column added to the task without adding
    /// it to that index would silently bring back a table search per row.
    #[test]
    fn the_default_list_reads_only_the_covering_index() {
        use crate::domain::listing::{After, Filters, SortValue};
        let mut conn = Connection::open_in_memory().unwrap();
        migrations::sqlite_unlocked(&mut conn).unwrap();
        for after in [
            None,
            Some(After {
                value: SortValue::Timestamp(Some(Utc::now())),
                id: 7,
            }),
        ] {
            let spec = ListSpec {
                user_id: "u".into(),
                filters: Filters::NONE,
                sort: crate::domain::listing::Sort::DEFAULT,
                limit: 20,
                offset: 0,
                after,
            };
            let b = list::list_query(&spec, Dialect::Sqlite);
            let mut stmt = conn
                .prepare(&format!("explain query plan {}", b.sql))
                .unwrap();
            bind(&mut stmt, &b).unwrap();
            let mut rows = stmt.raw_query();
            let mut plan = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                plan.push(row.get::<_, String>(3).unwrap());
            }
            let covered =
                "SEARCH tasks USING COVERING INDEX tasks_user_created_cover_idx (user_id=?";
            assert!(
                plan.len() == 1 && plan[0].starts_with(covered),
                "{plan:?} for {}",
                b.sql
            );
        }
    }
}
