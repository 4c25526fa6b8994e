//! SQLite backend on rusqlite: the embedded default, one file, WAL mode.
//!
//! Why rusqlite rather than an async driver: SQLite runs in this process, so
//! a read of a page of tasks costs tens of microseconds of CPU, and an async
//! driver's hand-off to a worker thread and back (plus copying every value
//! out of SQLite) cost several times the query itself (measured with `perf`
//! on sqlx: ~60% of a list request). So:
//!
//! - **Reads** run on the calling task's thread, on a connection taken from
//!   a small stack of read-only connections: nearly all take tens of
//!   microseconds. One that can scan thousands of rows (a long `q` over a
//!   big list: 0.1–0.2 s) would hold up every request queued on that
//!   thread, so a read still running after [`INLINE_BUDGET`] is
//!   interrupted and run again on tokio's blocking pool; and a read still
//!   running at three quarters of `REQUEST_TIMEOUT_MS` from its request's
//!   start is interrupted and answers 503, as on PostgreSQL (see
//!   [`ReadPool::read`]). Under WAL a reader never waits for a writer, so
//!   a read cannot stall the thread on a lock. Each read is one statement
//!   in autocommit mode, so it sees every write committed before it began,
//!   whoever made it.
//! - **Writes** go to exactly one write connection, on its own thread, one
//!   transaction per write (see `sqlite_writer.rs`). Writers queue there,
//!   with the acquire timeout, instead of failing with `SQLITE_BUSY`, and
//!   waiting for another process's lock on the file (the `sqlite3` shell, a
//!   second server) never stalls a runtime thread.
//!
//! Migrations are applied by refinery under a file lock (`migrations/`),
//! which also adopts the history of databases created by earlier versions.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{
    Connection, ErrorCode, OpenFlags, Row, Statement,
    types::{Type, ValueRef},
};
use tokio::sync::Semaphore;

use super::{
    Change, Created, Deadline, IdempotentRequest, PoolStats, Precondition, Store, StoreError,
    StoreResult, UserProfile, WriteOutcome, migrations,
    rows::{self, Columns, RowResult},
    sql::{self, Dialect, Param, SqlBuilder},
    sqlite_writer::Writer,
};
use crate::domain::{
    Claims,
    listing::{ListSpec, Page},
    task::Task,
    time,
};

/// Statements kept prepared per connection. The SQL comes from a finite set
/// of shapes (values are parameters), so this only bounds the rare growth
/// from filter combinations.
const STATEMENT_CACHE: usize = 128;

/// How much of the file each connection maps into memory. Pages then come
/// from the OS page cache without a `pread` per page miss, which measurably
/// mattered for lists (each touches ~20 rows spread over the table).
const MMAP_BYTES: i64 = 256 * 1024 * 1024;

/// How many SQLite virtual-machine steps a read runs between checks of the
/// time: a check is a clock read (~25 ns), a hundred steps take a few
/// microseconds (more when a step compares long strings).
const TIME_CHECK_STEPS: i32 = 100;

/// How long a read may run on the async worker thread that asked for it
/// before it is interrupted and run again on the blocking pool.
///
/// Why not always the blocking pool: nearly every read (a page of tasks,
/// one task, the caller's counts) takes tens of microseconds, and handing
/// each to another thread and back took a list request from ~40 to
/// ~110 µs of CPU (in-process, 16 clients, 2 cores; throughput ~2.5×
/// lower). A slow read (a long `q` over thousands of tasks) wastes at most
/// this much before it moves.
const INLINE_BUDGET: Duration = Duration::from_micros(500);

/// The SQLite store.
pub struct SqliteStore {
    readers: Arc<ReadPool>,
    writer: Writer,
    acquire_timeout: Duration,
}

/// Read-only connections, opened on demand up to the pool size and reused
/// last-in first-out (the most recently used one has the warmest cache).
struct ReadPool {
    path: String,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    /// One per connection in use; a read holds its permit until its
    /// blocking job ends, even when its request was dropped meanwhile.
    permits: Arc<Semaphore>,
    open: AtomicUsize,
}

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

/// A value that cannot be what the schema promises (a corrupt row).
fn corrupt(column: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, what.into())
}

/// Whether `err` means "retry later" (503) rather than a bug (500): another
/// connection kept the lock past the busy timeout, or the file cannot be
/// opened or written right now.
fn is_unavailable(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull,
        )
    )
}

pub(super) fn classify(err: rusqlite::Error) -> StoreError {
    if is_unavailable(&err) {
        StoreError::Unavailable(err.into())
    } else {
        StoreError::Other(err.into())
    }
}

fn is_missing_user(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// Binds `b`'s parameters. The shared SQL numbers them `$1`, `$2`…, which
/// SQLite treats as names and indexes in order of first appearance; the
/// number in each name says which parameter it is.
fn bind(stmt: &mut Statement<'_>, b: &SqlBuilder) -> rusqlite::Result<()> {
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

/// A row with its statement's column names, read once per statement:
/// rusqlite's own lookup by name asks SQLite for each column's name again
/// on every call, which a page of tasks would do about a thousand times.
struct Named<'r, 's> {
    row: &'r Row<'s>,
    names: &'r [String],
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
fn row_error(err: anyhow::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Null, err.into())
}

/// A task from a row of [`sql::TASK_COLUMNS`].
fn task_of(row: &Named<'_, '_>) -> rusqlite::Result<Task> {
    rows::decode_task(row).map_err(row_error)
}

/// Runs `b` and maps every row it returns.
fn query<T>(
    conn: &Connection,
    b: &SqlBuilder,
    mut map: impl FnMut(&Named<'_, '_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(&b.sql)?;
    bind(&mut stmt, b)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(&Named { row, names: &names })?);
    }
    Ok(out)
}

/// Runs `b`, which returns at most one row of interest.
fn query_first<T>(
    conn: &Connection,
    b: &SqlBuilder,
    map: impl FnOnce(&Named<'_, '_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let mut stmt = conn.prepare_cached(&b.sql)?;
    bind(&mut stmt, b)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.raw_query();
    let first = match rows.next()? {
        Some(row) => Some(map(&Named { row, names: &names })?),
        None => None,
    };
    // Step a `returning` statement to its end so the write completes.
    while rows.next()?.is_some() {}
    Ok(first)
}

/// Settings every connection gets.
fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
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

impl ReadPool {
    fn open_one(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        configure(&conn, self.busy_timeout)?;
        Ok(conn)
    }

    /// Runs `f` on a read connection and interrupts it at `deadline`.
    ///
    /// `f` runs first on this thread for up to [`INLINE_BUDGET`]; if it is
    /// still running then, it is interrupted and run again from the start
    /// on the blocking pool (a read is safe to repeat), so a slow read holds
    /// an async worker thread for no longer than that budget.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        acquire_timeout: Duration,
        deadline: Instant,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tokio::time::timeout(acquire_timeout, Arc::clone(&self.permits).acquire_owned())
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable(anyhow::anyhow!(
                            "timed out waiting for a SQLite read connection"
                        ))
                    })?
                    .map_err(|e| StoreError::Unavailable(e.into()))?
            }
        };
        let inline_until = deadline.min(Instant::now() + INLINE_BUDGET);
        match self.read_here(inline_until, &mut f) {
            Err(err) if is_interrupted(&err) && Instant::now() < deadline => {}
            done => return done.map_err(read_error),
        }
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // Held until the read ends, even if its request is dropped.
            let _permit = permit;
            pool.read_here(deadline, &mut f)
        })
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("a SQLite read failed: {e}")))?
        .map_err(read_error)
    }

    /// Runs `f` on a read connection, on this thread, interrupted at
    /// `until`.
    ///
    /// Why a progress handler rather than `sqlite3_interrupt` from a timer:
    /// it checks the time on the thread that runs the statement, so there
    /// is no moment at which an interrupt finds no statement running and is
    /// lost, and no timer per read. The read ends by its deadline even when
    /// nobody waits for it any more.
    fn read_here<T>(
        &self,
        until: Instant,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        // Pushing and popping cannot leave the list half-changed.
        let idle = || self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let pooled = idle().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = self.open_one()?;
                self.open.fetch_add(1, Ordering::Relaxed);
                conn
            }
        };
        // Each read sets its own deadline, so the last one's can stay.
        let result = conn
            .progress_handler(TIME_CHECK_STEPS, Some(move || Instant::now() >= until))
            .and_then(|()| f(&conn));
        // Its statements were reset when their rows were dropped, which
        // ended their read transactions: an idle connection holds no
        // snapshot, so it never holds back a checkpoint.
        idle().push(conn);
        result
    }
}

/// Whether a read was stopped by its progress handler (its time was up).
fn is_interrupted(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code() == Some(ErrorCode::OperationInterrupted)
}

/// A read's error as the HTTP layer sees it: past its deadline it is 503,
/// as on PostgreSQL.
fn read_error(err: rusqlite::Error) -> StoreError {
    if is_interrupted(&err) {
        StoreError::Unavailable(anyhow::anyhow!(
            "the read did not finish within its deadline"
        ))
    } else {
        classify(err)
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn connect(url: &str, config: &super::Settings) -> anyhow::Result<Self> {
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
        })
    }

    /// Runs `f` (perhaps twice, see [`ReadPool::read`]) on a read
    /// connection; at `by` it is interrupted and answers 503 itself, as on
    /// PostgreSQL, rather than run on after the time limit answered.
    async fn read<T: Send + 'static>(
        &self,
        by: Deadline,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.readers.read(self.acquire_timeout, by.0, f).await
    }

    /// Runs `f` on the write connection (see [`Writer`]).
    async fn write<T: Send + 'static>(
        &self,
        by: Deadline,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.writer.write(by, f).await
    }

    /// 404 or 412 after a conditional write touched no row.
    async fn missing_or_stale<T>(
        &self,
        user_id: &str,
        id: i64,
        by: Deadline,
    ) -> StoreResult<WriteOutcome<T>> {
        Ok(if self.task_exists(user_id, id, by).await? {
            WriteOutcome::PreconditionFailed
        } else {
            WriteOutcome::NotFound
        })
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn pool_stats(&self) -> PoolStats {
        let readers_open = self.readers.open.load(Ordering::Relaxed);
        let readers_idle = self.readers.idle.lock().map_or(0, |idle| idle.len());
        let (writes_queued, writing) = self.writer.stats();
        let writing = usize::from(writing);
        PoolStats {
            in_use: readers_open.saturating_sub(readers_idle) + writing,
            idle: readers_idle + (1 - writing),
            waiting: writes_queued,
            statements: None,
        }
    }

    async fn ready(&self, by: Deadline) -> StoreResult<()> {
        let current: i64 = self
            .read(by, |conn| {
                conn.query_row(migrations::CURRENT_VERSION_SQL, [], |r| r.get(0))
            })
            .await?;
        if current < migrations::latest(migrations::Backend::Sqlite) {
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "database is not migrated"
            )));
        }
        Ok(())
    }

    async fn upsert_user(&self, who: &Claims, now: DateTime<Utc>, by: Deadline) -> StoreResult<()> {
        let b = sql::upsert_user(who, now, Dialect::Sqlite);
        self.write(by, move |conn| query(conn, &b, |_| Ok(())).map(drop))
            .await
    }

    async fn get_user(&self, user_id: &str, by: Deadline) -> StoreResult<Option<UserProfile>> {
        let b = sql::select_user(user_id);
        self.read(by, move |conn| {
            query_first(conn, &b, |r| rows::decode_profile(r).map_err(row_error))
        })
        .await
    }

    async fn delete_user(&self, user_id: &str, by: Deadline) -> StoreResult<bool> {
        let b = sql::delete_user(user_id);
        self.write(by, move |conn| {
            query_first(conn, &b, |_| Ok(())).map(|r| r.is_some())
        })
        .await
    }

    async fn create_task(
        &self,
        user_id: &str,
        input: &crate::domain::task::TaskInput,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotentRequest>,
        by: Deadline,
    ) -> StoreResult<Created> {
        let insert = sql::insert_task(user_id, input, now);
        let no_row = || rusqlite::Error::QueryReturnedNoRows;
        let Some(idem) = idempotency else {
            return self
                .write(by, move |conn| match query_first(conn, &insert, task_of) {
                    Ok(task) => task.map(Created::New).ok_or_else(no_row),
                    Err(e) if is_missing_user(&e) => Ok(Created::UserMissing),
                    Err(e) => Err(e),
                })
                .await;
        };
        let (user_id, key) = (user_id.to_owned(), idem.key.clone());
        let expire = sql::expire_idempotency_key(&user_id, &key, idem.not_before);
        let claim = sql::claim_idempotency_key(&user_id, &key, &idem.fingerprint, now);
        let lookup = sql::select_idempotency_key(&user_id, &key);
        let fingerprint = idem.fingerprint.clone();
        self.write(by, move |tx| {
            // One transaction: all of this or none of it.
            query(tx, &expire, |_| Ok(()))?;
            match query_first(tx, &claim, |_| Ok(())) {
                Ok(Some(())) => {}
                Ok(None) => {
                    let stored = query_first(tx, &lookup, |r| {
                        let read = || -> RowResult<_> {
                            Ok((r.text("fingerprint")?, r.opt_text("response")?))
                        };
                        read().map_err(row_error)
                    })?;
                    // Nothing was written: the expired-key delete found no
                    // row (the key is live), and the claim did nothing.
                    return match stored {
                        Some((used_with, Some(body))) if used_with == fingerprint => {
                            sql::replayed(&body)
                                .map(Created::Replay)
                                .map_err(|e| corrupt(1, format!("corrupt replay: {e}")))
                        }
                        _ => Ok(Created::KeyReused),
                    };
                }
                Err(e) if is_missing_user(&e) => return Ok(Created::UserMissing),
                Err(e) => return Err(e),
            }
            let task = match query_first(tx, &insert, task_of) {
                Ok(task) => task.ok_or_else(no_row)?,
                Err(e) if is_missing_user(&e) => return Ok(Created::UserMissing),
                Err(e) => return Err(e),
            };
            let finish = sql::finish_idempotency_key(&user_id, &key, &task);
            query(tx, &finish, |_| Ok(()))?;
            Ok(Created::New(task))
        })
        .await
    }

    async fn get_task(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<Option<Task>> {
        let b = sql::select_task(user_id, id);
        self.read(by, move |conn| query_first(conn, &b, task_of))
            .await
    }

    async fn task_exists(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<bool> {
        let b = sql::task_exists(user_id, id);
        self.read(by, move |conn| {
            query_first(conn, &b, |_| Ok(())).map(|r| r.is_some())
        })
        .await
    }

    async fn update_task(
        &self,
        user_id: &str,
        id: i64,
        change: &Change,
        condition: &Precondition,
        now: DateTime<Utc>,
        by: Deadline,
    ) -> StoreResult<WriteOutcome<Task>> {
        let b = sql::update_task(user_id, id, change, condition, now, Dialect::Sqlite);
        match self
            .write(by, move |conn| query_first(conn, &b, task_of))
            .await?
        {
            Some(task) => Ok(WriteOutcome::Done(task)),
            None => self.missing_or_stale(user_id, id, by).await,
        }
    }

    async fn delete_task(
        &self,
        user_id: &str,
        id: i64,
        condition: &Precondition,
        by: Deadline,
    ) -> StoreResult<WriteOutcome<Task>> {
        let b = sql::delete_task(user_id, id, condition, Dialect::Sqlite);
        let deleted = self
            .write(by, move |conn| query_first(conn, &b, task_of))
            .await?;
        match deleted {
            Some(task) => Ok(WriteOutcome::Done(task)),
            None => self.missing_or_stale(user_id, id, by).await,
        }
    }

    async fn list_tasks(&self, spec: &ListSpec, by: Deadline) -> StoreResult<Page<Task>> {
        let b = sql::list_query(spec, Dialect::Sqlite);
        let tasks = self.read(by, move |conn| query(conn, &b, task_of)).await?;
        Ok(Page::from_look_ahead(tasks, spec.limit))
    }

    async fn purge_idempotency_keys(
        &self,
        cutoff: DateTime<Utc>,
        by: Deadline,
    ) -> StoreResult<u64> {
        let b = sql::purge_idempotency_keys(cutoff);
        let purged = self
            .write(by, move |conn| query(conn, &b, |_| Ok(())))
            .await?;
        Ok(purged.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let b = sql::list_query(&spec, Dialect::Sqlite);
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
