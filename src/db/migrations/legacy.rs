//! Databases migrated by earlier versions of this server, which kept their
//! own history: `schema_migrations(version, name, checksum, applied_at)`
//! with a SHA-256 (hex) of each script, on both backends; and on SQLite,
//! before that, sqlx's `_sqlx_migrations` with a SHA-384 (bytes).
//!
//! Called under the migration lock when refinery's history is absent. Each
//! script recorded there is checked against the embedded one as those
//! versions did (a changed script stops start-up with the same sentence),
//! and the highest version is returned for refinery to record as applied
//! without running it. The old tables are left as they are.

use std::collections::BTreeMap;

use sha2::Digest as _;

use super::{Backend, changed, unknown};
use crate::domain::task::sha256_hex;

/// Versions an earlier runner applied, with the checksum it recorded.
type History = BTreeMap<i64, Checksum>;

/// A checksum as the earlier runner kept it.
enum Checksum {
    /// `schema_migrations`: SHA-256, lower-case hex.
    Sha256Hex(String),
    /// `_sqlx_migrations`: SHA-384, raw bytes.
    Sha384(Vec<u8>),
}

/// The version up to which a PostgreSQL database was migrated by an
/// earlier version, checked; `None` when there is no earlier history.
pub(super) async fn postgres(client: &tokio_postgres::Client) -> anyhow::Result<Option<i64>> {
    let exists = client
        .query_typed(
            "select to_regclass('schema_migrations')::text is not null",
            &[],
        )
        .await?;
    if !exists.first().is_some_and(|r| r.get::<_, bool>(0)) {
        return Ok(None);
    }
    let rows = client
        .query_typed("select version, checksum from schema_migrations", &[])
        .await?;
    let history = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, Checksum::Sha256Hex(r.try_get(1)?))))
        .collect::<Result<History, tokio_postgres::Error>>()?;
    verified(Backend::Postgres, &history)
}

/// The version up to which a SQLite database was migrated by an earlier
/// version (through this server's runner, or before it through sqlx),
/// checked; `None` when there is no earlier history.
pub(super) fn sqlite(conn: &rusqlite::Connection) -> anyhow::Result<Option<i64>> {
    let mut history = History::new();
    if sqlite_has(conn, "_sqlx_migrations")? {
        let mut stmt =
            conn.prepare("select version, checksum from _sqlx_migrations where success")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, Checksum::Sha384(r.get(1)?))))?;
        history = rows.collect::<rusqlite::Result<_>>()?;
    }
    if sqlite_has(conn, "schema_migrations")? {
        let mut stmt = conn.prepare("select version, checksum from schema_migrations")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, Checksum::Sha256Hex(r.get(1)?))))?;
        // Both tables name the same script when both exist (sqlx's
        // history was copied into schema_migrations); either checks it.
        for row in rows {
            history.extend([row?]);
        }
    }
    verified(Backend::Sqlite, &history)
}

/// Whether the SQLite database has a table named `table`.
pub(super) fn sqlite_has(conn: &rusqlite::Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "select exists (select 1 from sqlite_master where type = 'table' and name = ?1)",
        [table],
        |r| r.get(0),
    )
}

/// Checks each recorded script against the embedded one and that the
/// history is a prefix (1, 2, … n, as the earlier runners applied them in
/// order): refinery will record 1 to n as applied, so a gap must not be
/// papered over. Returns n, or `None` for an empty history.
fn verified(backend: Backend, history: &History) -> anyhow::Result<Option<i64>> {
    let runner = backend.runner();
    let embedded = runner.get_migrations();
    for (&version, sum) in history {
        let Some(script) = embedded.iter().find(|m| i64::from(m.version()) == version) else {
            return Err(unknown(version));
        };
        let sql = script.sql().unwrap_or_default().as_bytes();
        let same = match sum {
            Checksum::Sha256Hex(hex) => *hex == sha256_hex(sql),
            Checksum::Sha384(bytes) => sha2::Sha384::digest(sql).as_slice() == bytes.as_slice(),
        };
        if !same {
            return Err(changed(version, script.name()));
        }
    }
    let Some((&last, _)) = history.last_key_value() else {
        return Ok(None);
    };
    anyhow::ensure!(
        history.keys().copied().eq(1..=last),
        "the earlier migration history has gaps (versions {:?}); repair it by hand",
        history.keys().collect::<Vec<_>>()
    );
    Ok(Some(last))
}
