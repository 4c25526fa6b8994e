//! Schema migrations, applied by refinery (a maintained library that speaks
//! both rusqlite and tokio-postgres) instead of a runner of our own per
//! backend.
//!
//! The scripts are `migrations/{postgres,sqlite}/V<n>__<name>.sql`, embedded
//! at build time; refinery keeps its history in `refinery_schema_history`
//! (a SipHash of version, name and script per row) and refuses to start when
//! an applied script was changed. What refinery does not do, and this module
//! adds:
//!
//! - **a lock**, so two instances starting at once on a fresh database do
//!   not both run a script: PostgreSQL's session-level advisory lock (taken
//!   only when something is pending), and on SQLite an OS lock on a file
//!   next to the database (refinery's rusqlite driver opens deferred
//!   transactions, which would let two processes race on `create table`);
//! - **adoption** of databases migrated by earlier versions of this server
//!   (see [`legacy`]);
//! - errors in the words operators already know ("migration 1 (init) was
//!   changed after it was applied").

mod legacy;

use std::{fs::File, path::Path, sync::LazyLock};

use anyhow::Context as _;
use refinery::{Migration, Runner, Target, error::Kind};
use tokio_postgres::types::Type;

mod embedded {
    pub mod postgres {
        refinery::embed_migrations!("migrations/postgres");
    }
    pub mod sqlite {
        refinery::embed_migrations!("migrations/sqlite");
    }
}

/// refinery's history table (its default name).
const HISTORY: &str = "refinery_schema_history";

/// The highest version recorded in refinery's history: what `/ready`
/// compares with [`latest`]. `bigint` so both drivers read it as an `i64`
/// (refinery's column is a 4-byte integer on PostgreSQL).
pub(crate) const CURRENT_VERSION_SQL: &str =
    "select cast(coalesce(max(version), 0) as bigint) from refinery_schema_history";

/// Arbitrary constant naming the advisory lock that serialises migrations
/// across PostgreSQL instances starting at once (the same as earlier
/// versions took, so an older instance starting meanwhile waits too).
const PG_LOCK: i64 = 0x7461_736b_7361_7069; // "tasksapi"

/// Which set of scripts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// A refinery runner over this backend's embedded scripts. It refuses
    /// (its defaults) an applied script that differs from the embedded one
    /// and an applied version this build does not have.
    fn runner(self) -> Runner {
        match self {
            Self::Postgres => embedded::postgres::migrations::runner(),
            Self::Sqlite => embedded::sqlite::migrations::runner(),
        }
    }
}

/// The last embedded version of each backend, computed once: `/ready`
/// asks on every probe.
static LATEST: LazyLock<[i64; 2]> = LazyLock::new(|| {
    let last = |b: Backend| {
        b.runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0)
    };
    [last(Backend::Postgres), last(Backend::Sqlite)]
});

/// The version a fully migrated database of this backend is at.
pub(crate) fn latest(backend: Backend) -> i64 {
    LATEST[backend as usize]
}

/// Brings a PostgreSQL database up to date on `client`. When refinery's
/// history already holds every embedded script unchanged (a second
/// instance, or a start through a transaction pooler after `tasks-api
/// migrate` ran on the direct URL) no lock is taken at all.
pub(crate) async fn postgres(
    client: &mut tokio_postgres::Client,
    pooled: bool,
) -> anyhow::Result<()> {
    if pg_is_current(client).await? {
        return Ok(());
    }
    if pooled {
        tracing::warn!(
            "applying migrations through what looks like a pooled connection (PgBouncer / Neon -pooler); \
             the migration lock is session-level, so run `tasks-api migrate` against the direct URL"
        );
    }
    client
        .query_typed("select pg_advisory_lock($1)", &[(&PG_LOCK, Type::INT8)])
        .await
        .context("could not take the migration lock")?;
    let result = pg_apply(client).await;
    // Released explicitly: the pooled connection outlives this function.
    let unlock = client
        .query_typed("select pg_advisory_unlock($1)", &[(&PG_LOCK, Type::INT8)])
        .await;
    result?;
    unlock.context("could not release the migration lock")?;
    Ok(())
}

/// Whether refinery's history holds every embedded script, unchanged.
async fn pg_is_current(client: &mut tokio_postgres::Client) -> anyhow::Result<bool> {
    if !pg_has_history(client).await? {
        return Ok(false);
    }
    let runner = Backend::Postgres.runner();
    let applied = runner
        .get_applied_migrations_async(client)
        .await
        .map_err(|e| explain(e, Backend::Postgres))?;
    // Every embedded script is applied, with the same name and checksum.
    Ok(runner.get_migrations().iter().all(|m| applied.contains(m)))
}

/// Whether refinery's history table exists (in the schema searched).
async fn pg_has_history(client: &tokio_postgres::Client) -> anyhow::Result<bool> {
    // One round trip, no prepared statement: safe through a pooler.
    let rows = client
        .query_typed(
            "select to_regclass($1)::text is not null",
            &[(&HISTORY, Type::TEXT)],
        )
        .await?;
    Ok(rows.first().is_some_and(|r| r.get(0)))
}

/// Under the lock: adopts an earlier history, then lets refinery apply
/// what is pending.
async fn pg_apply(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    if !pg_has_history(client).await?
        && let Some(version) = legacy::postgres(client).await?
    {
        adoption(Backend::Postgres, version)
            .run_async(client)
            .await
            .map_err(|e| explain(e, Backend::Postgres))?;
        tracing::info!(version, "adopted the earlier migration history");
    }
    let report = Backend::Postgres
        .runner()
        .run_async(client)
        .await
        .map_err(|e| explain(e, Backend::Postgres))?;
    log_applied(report.applied_migrations());
    Ok(())
}

/// Brings the SQLite database at `path` up to date on `conn`, holding an OS
/// lock on `<path>.migrate-lock` meanwhile (blocking: call it off the
/// runtime). The lock file is left in place: removing it would let a
/// process that opened it just before lock a file no longer there.
pub(crate) fn sqlite(conn: &mut rusqlite::Connection, path: &str) -> anyhow::Result<()> {
    let lock_path = format!("{path}.migrate-lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(&lock_path))
        .with_context(|| format!("could not open the migration lock file {lock_path}"))?;
    lock.lock()
        .with_context(|| format!("could not lock {lock_path}"))?;
    let result = sqlite_unlocked(conn);
    drop(lock); // closing the file releases the lock
    result
}

/// [`sqlite`] without the lock, for a connection no other process can
/// reach (an in-memory database in tests).
pub(crate) fn sqlite_unlocked(conn: &mut rusqlite::Connection) -> anyhow::Result<()> {
    if !legacy::sqlite_has(conn, HISTORY)?
        && let Some(version) = legacy::sqlite(conn)?
    {
        adoption(Backend::Sqlite, version)
            .run(conn)
            .map_err(|e| explain(e, Backend::Sqlite))?;
        tracing::info!(version, "adopted the earlier migration history");
    }
    let report = Backend::Sqlite
        .runner()
        .run(conn)
        .map_err(|e| explain(e, Backend::Sqlite))?;
    log_applied(report.applied_migrations());
    Ok(())
}

/// A runner that only records versions up to `version` as applied, in one
/// transaction, without running them: refinery's own way to start its
/// history on a database whose schema is already there.
fn adoption(backend: Backend, version: i64) -> Runner {
    // `legacy` only returns versions it found embedded, so this fits.
    let version = i32::try_from(version).unwrap_or(i32::MAX);
    backend.runner().set_target(Target::FakeVersion(version))
}

fn log_applied(applied: &[Migration]) {
    for m in applied {
        tracing::info!(version = m.version(), name = m.name(), "applied migration");
    }
}

/// refinery's error in this server's words, keeping the database's own
/// message (and SQLSTATE) when a script failed.
fn explain(err: refinery::Error, backend: Backend) -> anyhow::Error {
    match err.kind() {
        Kind::DivergentVersion(applied, _) => changed(applied.version().into(), applied.name()),
        Kind::MissingVersion(m) if !embeds(backend, m) => unknown(m.version().into()),
        Kind::Connection(what, source) => {
            anyhow::anyhow!("{what}: {}", describe(source.as_ref()))
        }
        _ => anyhow::Error::new(err),
    }
}

/// Whether this build has a script with `m`'s version.
fn embeds(backend: Backend, m: &Migration) -> bool {
    backend
        .runner()
        .get_migrations()
        .iter()
        .any(|e| e.version() == m.version())
}

/// The sentence for a script changed after it was applied.
fn changed(version: i64, name: &str) -> anyhow::Error {
    anyhow::anyhow!("migration {version} ({name}) was changed after it was applied")
}

/// The sentence for a history written by a newer version of this server.
fn unknown(version: i64) -> anyhow::Error {
    anyhow::anyhow!("the database has migration {version}, which this version does not know")
}

/// A driver error as the database said it (tokio-postgres's own Display is
/// only "db error").
fn describe(err: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    match err
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
    {
        Some(db) => format!("{db} (SQLSTATE {})", db.code().code()),
        None => err.to_string(),
    }
}
