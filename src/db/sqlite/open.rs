//! Opening the database: the file the URL names, the settings every
//! connection gets, the writer's pragmas, and migrations before anything
//! else runs.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::{SqliteStore, reads::ReadPool, writer::Writer};
use crate::db::migrations;

/// Statements kept prepared per connection. The SQL comes from a finite set
/// of shapes (values are parameters), so this only bounds the rare growth
/// from filter combinations.
const STATEMENT_CACHE: usize = 128;

/// How much of the file each connection maps into memory. Pages then come
/// from the OS page cache without a `pread` per page miss, which measurably
/// mattered for lists (each touches ~20 rows spread over the table).
const MMAP_BYTES: i64 = 256 * 1024 * 1024;

/// Where the database file is, from `sqlite://PATH` or `sqlite:PATH`.
fn database_path(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .context("DATABASE_URL is not a SQLite URL")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    // `mode=rwc` (create if missing) is what this backend does anyway; it
    // is common in sqlx-style URLs, so it is accepted.
    if let Some(option) = query.split('&').find(|o| !o.is_empty() && *o != "mode=rwc") {
        anyhow::bail!(
            "DATABASE_URL: the SQLite option {option:?} is not supported; use sqlite://PATH"
        );
    }
    anyhow::ensure!(
        !path.is_empty() && path != ":memory:",
        "DATABASE_URL must name a SQLite file (sqlite://tasks.db); an in-memory database \
         cannot be shared by the server's connections"
    );
    Ok(path.to_owned())
}

/// Settings every connection gets.
pub(super) fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    Ok(())
}

fn open_writer(path: &str, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    configure(&conn, busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Persistent once set; readers never block the writer and vice versa.
    conn.pragma_update(None, "journal_mode", "wal")?;
    // In WAL mode a commit survives a crash of this process; only an OS
    // crash or power loss may lose the last commits (never corrupts).
    conn.pragma_update(None, "synchronous", "normal")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn connect(url: &str, config: &crate::db::Settings) -> anyhow::Result<Self> {
        let path = database_path(url)?;
        // Below the request time limit, so a write stuck behind another
        // process's lock fails (503, nothing written) rather than
        // committing after its request was already answered.
        let busy_timeout = (config.request_timeout / 2).min(Duration::from_secs(5));
        let open_path = path.clone();
        let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<Connection> {
            let mut conn = open_writer(&open_path, busy_timeout)
                .context("cannot open the SQLite database in DATABASE_URL")?;
            migrations::sqlite(&mut conn, &open_path)
                .context("could not apply the SQLite migrations")?;
            Ok(conn)
        })
        .await
        .context("SQLite start-up task failed")??;
        let readers = Arc::new(ReadPool {
            path,
            busy_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(config.db_pool_size.max(1) as usize)),
            open: AtomicUsize::new(0),
        });
        // Open one reader now, so a file the server cannot read fails start-up.
        let first = readers
            .open_one()
            .context("cannot open the SQLite database in DATABASE_URL for reading")?;
        readers.open.store(1, Ordering::Relaxed);
        readers
            .idle
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push(first);
        let writer = Writer::start(writer, config.db_acquire_timeout)
            .context("cannot start the SQLite writer thread")?;
        Ok(Self {
            readers,
            writer,
            acquire_timeout: config.db_acquire_timeout,
            signals: Arc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file() {
        assert_eq!(database_path("sqlite://tasks.db").unwrap(), "tasks.db");
        assert_eq!(database_path("sqlite:/tmp/t.db").unwrap(), "/tmp/t.db");
        assert_eq!(
            database_path("sqlite://tasks.db?mode=rwc").unwrap(),
            "tasks.db"
        );
        assert!(database_path("sqlite::memory:").is_err());
        assert!(database_path("sqlite://").is_err());
        assert!(database_path("sqlite://t.db?cache=shared").is_err());
    }
}
