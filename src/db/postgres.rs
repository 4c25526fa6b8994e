//! PostgreSQL backend on tokio-postgres + deadpool.
//!
//! Why not sqlx here: sqlx ignores `channel_binding=require` (Neon's
//! copy-paste URLs carry it) and, through PgBouncer in transaction mode
//! without prepared-statement support, its named prepared statements were
//! measured returning wrong rows. Statements carry explicit parameter
//! types and run one of two ways (see [`Conn`]): on a direct connection each
//! is prepared once per connection and then costs one round trip and no
//! planning; through a transaction pooler each goes out as the unnamed
//! statement (`query_typed`), also one round trip, correct through any pooler.
//! Filtered lists are always sent unnamed, so PostgreSQL plans them for
//! their actual values rather than reusing a generic plan.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, StatementCache};
use tokio_postgres::{
    Row,
    types::{ToSql, Type},
};

use super::{
    Change, Created, Deadline, IdempotentRequest, Precondition, Store, StoreError, StoreResult,
    UserProfile, WriteOutcome, migrations,
    rows::{self, Columns, RowResult},
    sql::{self, Dialect, Param, SqlBuilder},
};
use crate::domain::{
    Claims,
    listing::{ListSpec, Page},
    task::{Task, TaskInput},
};

/// Most prepared statements kept per connection. The SQL is built from a
/// finite set of shapes (values are always parameters), so this is only a
/// backstop: past it the connection's cache is emptied and refilled.
const STATEMENT_CACHE_CAP: usize = 256;

/// How statements reach the server, and how many went each way.
#[derive(Default)]
struct Statements {
    /// Prepared once per connection and reused (a direct connection), or
    /// sent unnamed each time (through a pooler). Turned off for good, for
    /// every connection of the store, once a pooler gives itself away (see
    /// [`Statements::pooler_detected`]).
    prepared: AtomicBool,
    run_prepared: AtomicU64,
    run_unnamed: AtomicU64,
}

impl Statements {
    fn new(prepared: bool) -> Self {
        Self {
            prepared: AtomicBool::new(prepared),
            ..Self::default()
        }
    }

    fn prepared(&self) -> bool {
        self.prepared.load(Ordering::Relaxed)
    }

    /// A prepared statement vanished from its connection (SQLSTATE 26000) or
    /// a name was already taken (42P05): only a transaction pooler that
    /// hands each transaction another server connection does that, so the
    /// URL did not look pooled (an unusual port or host). From now on every
    /// statement goes unnamed; said once, when the switch happens.
    fn pooler_detected(&self, err: &tokio_postgres::Error) {
        if self.prepared.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = %err,
                "a transaction pooler (PgBouncer-like) was detected: prepared statements vanished between \
                 transactions; statements are sent unnamed from now on (set DB_PREPARED_STATEMENTS=off to \
                 say so up front)"
            );
        }
    }
}

/// One connection (or a transaction on it) as the statements see it.
#[derive(Clone, Copy)]
struct Conn<'a> {
    client: &'a tokio_postgres::Client,
    /// The connection's prepared statements, when they are used at all.
    cache: Option<&'a StatementCache>,
    /// Inside an explicit transaction a failed statement aborts it, so a
    /// stale prepared statement cannot be retried unnamed.
    in_transaction: bool,
    statements: &'a Statements,
}

impl<'a> Conn<'a> {
    fn new(object: &'a deadpool_postgres::Object, statements: &'a Statements) -> Self {
        Self {
            client: object,
            cache: statements
                .prepared()
                .then(|| object.statement_cache.as_ref()),
            in_transaction: false,
            statements,
        }
    }

    fn transaction(tx: &'a deadpool_postgres::Transaction<'_>, statements: &'a Statements) -> Self {
        Self {
            client: tx.client(),
            cache: statements.prepared().then(|| tx.statement_cache.as_ref()),
            in_transaction: true,
            statements,
        }
    }
}

/// Connections that concurrent reads share.
///
/// Why: tokio-postgres pipelines the statements that several tasks issue on
/// one client. Under load they leave in one write and their answers come
/// back together, so PostgreSQL serves several per wake-up and per system
/// call, where a connection checked out per read costs both sides a
/// round trip of system calls and context switches for every statement.
/// A read is one statement in its own implicit transaction and leaves no
/// session state, so sharing cannot mix up requests. Writes keep exclusive
/// connections: they may be cancelled, and a create can run a transaction.
struct ReadLanes {
    /// Empty when every read checks out a connection of its own.
    lanes: Vec<Lane>,
    next: AtomicUsize,
}

/// A connection as reads (and other statements safe to repeat) hold it:
/// shared by the reads of a lane, or a read's own. One whose statement
/// overran its deadline is condemned: when the last read using it lets go
/// it is closed, not returned to the pool, where a write would queue
/// behind whatever holds it up.
struct ReadConnection {
    object: Option<deadpool_postgres::Object>,
    condemned: AtomicBool,
}

impl ReadConnection {
    fn new(object: deadpool_postgres::Object) -> Arc<Self> {
        Arc::new(Self {
            object: Some(object),
            condemned: AtomicBool::new(false),
        })
    }
}

impl std::ops::Deref for ReadConnection {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        self.object
            .as_ref()
            .unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl Drop for ReadConnection {
    fn drop(&mut self) {
        if self.condemned.load(Ordering::Relaxed)
            && let Some(object) = self.object.take()
        {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

/// One shared connection: checked out of the pool when first needed (and
/// again after it died or was condemned) and kept.
struct Lane {
    client: Mutex<Option<Arc<ReadConnection>>>,
    /// Held by the one read that checks out a replacement, so that the
    /// reads arriving meanwhile wait for it rather than each opening one.
    refill: tokio::sync::Mutex<()>,
}

impl Lane {
    /// The lane's connection, unless it has none or it died.
    fn live(&self) -> Option<Arc<ReadConnection>> {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|client| !client.is_closed())
    }
}

impl ReadLanes {
    fn new(count: usize) -> Self {
        Self {
            lanes: (0..count)
                .map(|_| Lane {
                    client: Mutex::new(None),
                    refill: tokio::sync::Mutex::new(()),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next lane in turn, if there are lanes at all.
    fn pick(&self) -> Option<&Lane> {
        let n = self.lanes.len();
        (n > 0).then(|| &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % n])
    }

    /// Forgets `client` wherever a lane still holds it (it was found dead
    /// or stuck); the next read there checks out a fresh connection.
    fn forget(&self, client: &Arc<ReadConnection>) {
        for lane in &self.lanes {
            let mut slot = lane.client.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref().is_some_and(|held| Arc::ptr_eq(held, client)) {
                *slot = None;
            }
        }
    }
}

/// Whether a statement may run on a shared read connection.
#[derive(Clone, Copy)]
enum Sharing {
    Read,
    Write,
}

/// The PostgreSQL store: a pool of tokio-postgres clients.
pub struct PostgresStore {
    pool: Pool,
    lanes: ReadLanes,
    statements: Statements,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// How long a read waits for a shared connection (`DB_ACQUIRE_TIMEOUT_MS`).
    acquire_timeout: Duration,
    /// The pool's size: how many dead connections a read may meet in a row.
    max_size: usize,
}

/// Runs a write statement with a deadline. Past it the statement is
/// cancelled on the server and its outcome awaited: it either finished
/// first (its rows are returned) or was cancelled (503, nothing written).
/// `None`: it did not end even then (a dead link); the caller must drop its
/// [`WriteConnection`] still armed, so that it never goes back to the pool.
async fn write_query(
    conn: Conn<'_>,
    b: &SqlBuilder,
    deadline: Instant,
    tls: &tokio_postgres_rustls::MakeRustlsConnect,
) -> Option<StoreResult<Vec<Row>>> {
    let token = conn.client.cancel_token();
    let running = query(conn, b);
    tokio::pin!(running);
    match tokio::time::timeout_at(deadline.into(), &mut running).await {
        Ok(result) => Some(result),
        Err(_) => cancel_until_done(&token, tls, running).await.map(|result| {
            result.map_err(|err| match err {
                StoreError::Other(cause) => {
                    StoreError::Unavailable(cause.context("statement cancelled after its deadline"))
                }
                unavailable => unavailable,
            })
        }),
    }
}

/// The answer for writes whose connection was given up on mid-statement.
fn outcome_unknown() -> StoreError {
    unavailable(anyhow::anyhow!(
        "the database stopped answering during a write; whether it was stored is unknown"
    ))
}

/// A pooled connection for a write. If the request is abandoned (its time
/// limit fired) while a statement may still be running, dropping this
/// cancels the statement on the server and keeps the connection out of the
/// pool, so a 503 never hides a write that commits later when a lock frees.
struct WriteConnection {
    client: Option<deadpool_postgres::Object>,
    armed: bool,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl WriteConnection {
    /// The statements ran to completion: return the connection normally.
    fn done(mut self) {
        self.armed = false;
    }
}

impl std::ops::Deref for WriteConnection {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl std::ops::DerefMut for WriteConnection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl Drop for WriteConnection {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(object) = self.client.take() {
            let token = object.cancel_token();
            // Detached from the pool: the cancel can only hit this statement.
            let client = deadpool_postgres::Object::take(object);
            let tls = self.tls.clone();
            tokio::spawn(async move {
                if let Err(err) = token.cancel_query(tls).await {
                    tracing::warn!(error = %err, "could not cancel an abandoned statement");
                }
                drop(client);
            });
        }
    }
}

fn unavailable(err: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(err.into())
}

/// Connection-level failures are 503s; statement failures are bugs.
fn classify(err: tokio_postgres::Error) -> StoreError {
    let transient = err.is_closed()
        || match err.code() {
            // 08: connection exception; 57P0x: admin shutdown, crash,
            // cannot connect now; 53300: too many connections.
            Some(code) => {
                let code = code.code();
                code.starts_with("08") || code.starts_with("57P") || code == "53300"
            }
            // No SQLSTATE and no server error: the socket or the protocol.
            None => err.as_db_error().is_none(),
        };
    if transient {
        StoreError::Unavailable(err.into())
    } else {
        StoreError::Other(err.into())
    }
}

enum Permanence {
    Transient,
    Permanent,
}

/// Server errors that no retry fixes: authentication, unknown database or
/// role, and TLS/channel-binding refusals.
fn classify_ref(err: &tokio_postgres::Error) -> Permanence {
    match err.code().map(|c| c.code()) {
        Some(code) if code.starts_with("28") || code == "3D000" => Permanence::Permanent,
        // PgBouncer reports everything as 08P01, a database missing from its
        // configuration ("no such database: x") or on the server behind it
        // ("database \"x\" does not exist") too.
        Some("08P01")
            if err.as_db_error().is_some_and(|db| {
                db.message().starts_with("no such database")
                    || db.message().ends_with("does not exist")
            }) =>
        {
            Permanence::Permanent
        }
        // Client-side refusals: SCRAM failed, or channel binding was
        // required and the server or TLS could not provide it.
        None if err.to_string().contains("authentication")
            || err.to_string().contains("channel binding") =>
        {
            Permanence::Permanent
        }
        _ => Permanence::Transient,
    }
}

/// Neon's pooled endpoints carry `-pooler` in the host; PgBouncer's
/// customary port is 6432, and Supabase's transaction pooler listens on
/// 6543. A pooler elsewhere is found out by its first vanished prepared
/// statement instead (see [`Statements::pooler_detected`]).
fn looks_pooled(url: &str) -> bool {
    const POOLER_PORTS: [&str; 2] = ["6432", "6543"];
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    // After the credentials, which may contain anything.
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    hosts.split(',').any(|host| {
        let port = host.rsplit_once(':').map(|(_, port)| port);
        host.contains("-pooler") || port.is_some_and(|p| POOLER_PORTS.contains(&p))
    })
}

/// A connection that died under us, as opposed to a server refusing work.
fn connection_lost(err: &anyhow::Error) -> bool {
    err.downcast_ref::<tokio_postgres::Error>()
        .is_some_and(|e| {
            e.is_closed()
                || e.code().is_none_or(|c| {
                    c.code().starts_with("08")
                        || c == &tokio_postgres::error::SqlState::ADMIN_SHUTDOWN
                })
        })
}

/// A failure to open a connection as an operator can act on it. deadpool
/// and tokio-postgres each wrap the cause in a generic sentence ("Error
/// occurred while creating a new object: db error"); this gives the
/// server's (or the pooler's) own message and SQLSTATE instead, say
/// `database "x" does not exist (SQLSTATE 3D000)`, or the chain of causes
/// of a network or TLS failure. Neither holds the URL, so never its password.
fn describe_pool_error(err: &deadpool_postgres::PoolError) -> String {
    match err {
        deadpool_postgres::PoolError::Backend(err) => describe_pg_error(err),
        other => other.to_string(),
    }
}

/// See [`describe_pool_error`].
fn describe_pg_error(err: &tokio_postgres::Error) -> String {
    use std::fmt::Write as _;
    if let Some(db) = err.as_db_error() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            let _ = write!(text, "; detail: {detail}");
        }
        if let Some(hint) = db.hint() {
            let _ = write!(text, "; hint: {hint}");
        }
        return text;
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        let _ = write!(text, ": {inner}");
        cause = inner.source();
    }
    text
}

fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => classify(err),
        other => unavailable(anyhow::anyhow!("{other}")),
    }
}

/// The driver's view of one parameter.
fn to_pg(param: &Param) -> (Box<dyn ToSql + Sync + Send>, Type) {
    match param {
        Param::Text(v) => (Box::new(v.clone()), Type::TEXT),
        Param::Int(v) => (Box::new(*v), Type::INT8),
        Param::SmallInt(v) => (Box::new(*v), Type::INT2),
        Param::Bool(v) => (Box::new(*v), Type::BOOL),
        Param::Timestamp(v) => (Box::new(*v), Type::TIMESTAMPTZ),
        Param::TextList(v) => (Box::new(v.clone()), Type::TEXT_ARRAY),
        Param::IntList(v) => (Box::new(v.clone()), Type::INT8_ARRAY),
        Param::OptText(v) => (Box::new(v.clone()), Type::TEXT),
        Param::OptTimestamp(v) => (Box::new(*v), Type::TIMESTAMPTZ),
    }
}

/// Runs one statement on a connection or in a transaction: through the
/// connection's prepared statement for this SQL when statements are
/// prepared, as the unnamed statement otherwise.
async fn query(conn: Conn<'_>, b: &SqlBuilder) -> StoreResult<Vec<Row>> {
    let owned: Vec<_> = b.params.iter().map(to_pg).collect();
    if let Some(cache) = conn.cache.filter(|_| !b.plan_each_time) {
        match query_prepared(conn.client, cache, b, &owned).await {
            Err(err) if stale_statement(&err) => {
                // Dropped by the server (a pooler swapped the connection) or
                // invalidated by a schema change: forget them all. The
                // statement did not run, so outside a transaction it can be
                // sent again, unnamed; a transaction it aborted is retried
                // whole by its caller (see [`create_on`]).
                cache.clear();
                if pooler_gave_away(&err) {
                    conn.statements.pooler_detected(&err);
                } else {
                    tracing::warn!(error = %err, "prepared statement unusable; statement cache cleared");
                }
                if conn.in_transaction {
                    return Err(classify(err));
                }
            }
            other => {
                conn.statements.run_prepared.fetch_add(1, Ordering::Relaxed);
                return other.map_err(classify);
            }
        }
    }
    conn.statements.run_unnamed.fetch_add(1, Ordering::Relaxed);
    let params: Vec<(&(dyn ToSql + Sync), Type)> = owned
        .iter()
        .map(|(v, t)| (v.as_ref() as &(dyn ToSql + Sync), t.clone()))
        .collect();
    conn.client
        .query_typed(&b.sql, &params)
        .await
        .map_err(classify)
}

/// Prepares `b` once per connection (one extra round trip the first time),
/// then binds and executes it: no parsing or planning on the server.
async fn query_prepared(
    client: &tokio_postgres::Client,
    cache: &StatementCache,
    b: &SqlBuilder,
    owned: &[(Box<dyn ToSql + Sync + Send>, Type)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let types: Vec<Type> = owned.iter().map(|(_, t)| t.clone()).collect();
    if cache.size() >= STATEMENT_CACHE_CAP {
        cache.clear();
    }
    let statement = cache.prepare_typed(client, &b.sql, &types).await?;
    let params: Vec<&(dyn ToSql + Sync)> = owned
        .iter()
        .map(|(v, _)| v.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client.query(&statement, &params).await
}

/// A prepared statement the server no longer has (26000) or a name it
/// already has (42P05, refused at Parse), or whose plan a schema change
/// invalidated (0A000 "cached plan must not change result type"): in each
/// case nothing ran.
fn stale_statement(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    err.code().is_some_and(|c| {
        *c == SqlState::INVALID_SQL_STATEMENT_NAME
            || *c == SqlState::DUPLICATE_PSTATEMENT
            || *c == SqlState::FEATURE_NOT_SUPPORTED
    })
}

/// The stale-statement errors only a transaction pooler causes: a session
/// keeps its prepared statements, and tokio-postgres never reuses a name.
fn pooler_gave_away(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    err.code().is_some_and(|c| {
        *c == SqlState::INVALID_SQL_STATEMENT_NAME || *c == SqlState::DUPLICATE_PSTATEMENT
    })
}

/// Whether a statement of a transaction failed because its prepared
/// statement was unusable ([`stale_statement`]): nothing of the
/// transaction was stored, and it can be run again from the start.
fn aborted_by_stale_statement(err: &StoreError) -> bool {
    let (StoreError::Unavailable(e) | StoreError::Other(e)) = err;
    e.downcast_ref::<tokio_postgres::Error>()
        .is_some_and(stale_statement)
}

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

/// A task from a row of [`sql::TASK_COLUMNS`]; a corrupt row is a 500.
fn task_from_row(row: &Row) -> StoreResult<Task> {
    rows::decode_task(row).map_err(StoreError::Other)
}

/// Whether the error is the tasks → users foreign key (user row missing).
fn is_missing_user(err: &StoreError) -> bool {
    match err {
        StoreError::Other(e) => e
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code())
            .is_some_and(|c| *c == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION),
        StoreError::Unavailable(_) => false,
    }
}

impl PostgresStore {
    /// Opens the pool, checks the database answers, and migrates.
    pub async fn connect(url: &str, config: &super::Settings) -> anyhow::Result<Self> {
        let settings = super::pg_tls::parse(url).map_err(anyhow::Error::msg)?;
        let manager = Manager::from_config(
            settings.config,
            settings.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let timeout = Some(config.db_acquire_timeout);
        let pool = Pool::builder(manager)
            .max_size(config.db_pool_size as usize)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .context("could not build the PostgreSQL pool")?;
        let pooled = looks_pooled(url);
        let prepared = config.db_prepared_statements.unwrap_or(!pooled);
        // Auto: one shared connection, whenever the pool leaves at least two
        // for writes. Measured here (bench/run, PostgreSQL on the same 2 cores,
        // 32 HTTP connections): against a connection per read, get 25k ->
        // 37k req/s, list 17k -> 23k, list-filtered 8.8k -> 11.5k; two
        // shared connections gained less and varied more. Through
        // PgBouncer in transaction mode the pipelined reads stay correct
        // (tests/api/neon.rs checks every value read). The cost: one slow
        // read delays the reads queued behind it on the same connection;
        // DB_SHARED_READ_CONNECTIONS raises the count or turns this off.
        let shared_reads = config
            .db_shared_read_connections
            .unwrap_or(u32::from(config.db_pool_size >= 3));
        let store = Self {
            pool,
            lanes: ReadLanes::new(shared_reads as usize),
            statements: Statements::new(prepared),
            tls: settings.tls,
            acquire_timeout: config.db_acquire_timeout,
            max_size: config.db_pool_size as usize,
        };
        store.wait_for_database(config.db_startup_timeout).await?;
        store.migrate(pooled).await?;
        Ok(store)
    }

    /// Applies pending migrations (see `migrations/`) on one pooled
    /// connection.
    async fn migrate(&self, pooled: bool) -> anyhow::Result<()> {
        let mut client = self.pool.get().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the PostgreSQL database in DATABASE_URL: {}",
                describe_pool_error(&e)
            )
        })?;
        super::migrations::postgres(&mut client, pooled).await
    }

    /// Waits for the first connection with bounded exponential backoff: a
    /// serverless database (Neon) can take seconds to wake from zero.
    /// Errors that waiting cannot fix (bad password, no such database) end
    /// the wait at once.
    async fn wait_for_database(&self, budget: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        // The last answer from a server: a later attempt may only time out
        // (a pooler retrying its own login holds the client meanwhile), and
        // the server's reason should still be in the final message.
        let mut said: Option<String> = None;
        for attempt in 1.. {
            let err = match self.pool.get().await {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let permanent = match &err {
                deadpool_postgres::PoolError::Backend(e) => {
                    matches!(classify_ref(e), Permanence::Permanent)
                }
                _ => false,
            };
            let elapsed = started.elapsed();
            let from_server = matches!(
                &err,
                deadpool_postgres::PoolError::Backend(e) if e.as_db_error().is_some()
            );
            let mut err = describe_pool_error(&err);
            if from_server {
                said = Some(err.clone());
            } else if let Some(earlier) = &said {
                err = format!("{err} (earlier: {earlier})");
            }
            if permanent || elapsed + delay > budget {
                anyhow::bail!(
                    "cannot reach the PostgreSQL database in DATABASE_URL after {attempt} attempt(s) in {:.1} s: {err}",
                    elapsed.as_secs_f64()
                );
            }
            tracing::warn!(attempt, retry_in_ms = delay.as_millis() as u64, error = %err, "database not reachable yet");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(4));
        }
        unreachable!("the loop returns or bails")
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn writer(&self) -> StoreResult<WriteConnection> {
        Ok(WriteConnection {
            client: Some(self.client().await?),
            armed: true,
            tls: self.tls.clone(),
        })
    }

    /// Runs one write statement on a write connection. Past `by` it is
    /// cancelled and its outcome awaited, so the answer always says what
    /// happened.
    async fn write(&self, b: &SqlBuilder, by: Deadline) -> StoreResult<Vec<Row>> {
        let deadline = by.0;
        let client = tokio::time::timeout_at(deadline.into(), self.writer())
            .await
            .map_err(|_| {
                unavailable(anyhow::anyhow!(
                    "timed out waiting for a database connection"
                ))
            })??;
        match write_query(Conn::new(&client, &self.statements), b, deadline, &self.tls).await {
            Some(result) => {
                client.done();
                result
            }
            // Dropped armed: detached from the pool.
            None => Err(outcome_unknown()),
        }
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

    /// A connection for a read: the next lane's (see [`ReadLanes`]),
    /// checking one out for it when it has none or its one died; without
    /// lanes, one of its own.
    async fn read_client(&self) -> StoreResult<Arc<ReadConnection>> {
        let Some(lane) = self.lanes.pick() else {
            return Ok(ReadConnection::new(self.client().await?));
        };
        if let Some(client) = lane.live() {
            return Ok(client);
        }
        let refill = async {
            let _refill = lane.refill.lock().await;
            if let Some(client) = lane.live() {
                return Ok(client);
            }
            let fresh = ReadConnection::new(self.client().await?);
            *lane.client.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&fresh));
            Ok(fresh)
        };
        tokio::time::timeout(self.acquire_timeout, refill)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(anyhow::anyhow!(
                    "timed out waiting for a database connection"
                )))
            })
    }

    /// Runs a statement that is safe to repeat (a read, or an idempotent
    /// upsert) again on another connection while the ones it gets turn out
    /// to be dead (the server restarted, a Neon compute was suspended): after
    /// such an event every pooled connection may be dead, so up to the pool
    /// size plus one attempts. Only plain reads take a shared connection
    /// (`Sharing::Read`): they never wait for a row lock, while an upsert
    /// can, and would hold up every read queued behind it. Past `by` the
    /// call answers 503 and the connection is condemned (see
    /// [`ReadConnection`]).
    async fn idempotent(
        &self,
        b: &SqlBuilder,
        sharing: Sharing,
        by: Deadline,
    ) -> StoreResult<Vec<Row>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = match sharing {
                Sharing::Read => self.read_client().await?,
                Sharing::Write => ReadConnection::new(self.client().await?),
            };
            let running = query(Conn::new(&client, &self.statements), b);
            let Ok(outcome) = tokio::time::timeout_at(by.0.into(), running).await else {
                // Stuck (a lock, a half-open link) or just slow: either way
                // the reads queued behind it on this connection would wait
                // too, so later reads get another one.
                client.condemned.store(true, Ordering::Relaxed);
                self.lanes.forget(&client);
                return Err(unavailable(anyhow::anyhow!(
                    "the statement did not finish within its deadline"
                )));
            };
            match outcome {
                Err(StoreError::Unavailable(err))
                    if connection_lost(&err) && attempt <= self.max_size =>
                {
                    self.lanes.forget(&client);
                    tracing::info!(attempt, error = %err, "connection lost; retrying on another");
                }
                other => return other,
            }
        }
    }
}

/// Attempts of an idempotent create's transaction: a prepared statement
/// found unusable aborts it (and turns statements off or clears the
/// cache), so a second attempt runs on fresh or unnamed statements; the
/// third is a backstop for a schema change racing the second.
const CREATE_ATTEMPTS: usize = 3;

/// A create carrying an `Idempotency-Key` (see [`Store::create_task`]), in
/// one transaction on a write connection, run again from its start when a
/// prepared statement turned out unusable: that statement ran nothing and
/// aborted the transaction, so nothing of the attempt was stored.
async fn create_on(
    client: &mut deadpool_postgres::Object,
    statements: &Statements,
    user_id: &str,
    input: &TaskInput,
    now: DateTime<Utc>,
    idem: &IdempotentRequest,
) -> StoreResult<Created> {
    let mut attempt = 1;
    loop {
        match create_once(client, statements, user_id, input, now, idem).await {
            Err(err) if attempt < CREATE_ATTEMPTS && aborted_by_stale_statement(&err) => {
                tracing::debug!(attempt, error = %err, "idempotent create retried after a stale prepared statement");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One attempt of [`create_on`]. Returning early drops the transaction,
/// which rolls it back.
async fn create_once(
    client: &mut deadpool_postgres::Object,
    statements: &Statements,
    user_id: &str,
    input: &TaskInput,
    now: DateTime<Utc>,
    idem: &IdempotentRequest,
) -> StoreResult<Created> {
    let insert = sql::insert_task(user_id, input, now);
    let tx = client.transaction().await.map_err(classify)?;
    query(
        Conn::transaction(&tx, statements),
        &sql::expire_idempotency_key(user_id, &idem.key, idem.not_before),
    )
    .await?;
    let claim = sql::claim_idempotency_key(user_id, &idem.key, &idem.fingerprint, now);
    let claimed = query(Conn::transaction(&tx, statements), &claim).await;
    match claimed {
        Ok(rows) if !rows.is_empty() => {}
        Ok(_) => {
            // Taken (possibly by a concurrent request that just committed).
            tx.rollback().await.map_err(classify)?;
            let rows = query(
                Conn::new(client, statements),
                &sql::select_idempotency_key(user_id, &idem.key),
            )
            .await?;
            let Some(row) = rows.first() else {
                return Ok(Created::KeyReused);
            };
            let fingerprint = row.text("fingerprint").map_err(StoreError::Other)?;
            let response = row.opt_text("response").map_err(StoreError::Other)?;
            return match response {
                Some(body) if fingerprint == idem.fingerprint => {
                    sql::replayed(&body).map(Created::Replay).map_err(|e| {
                        StoreError::Other(anyhow::Error::new(e).context("corrupt replay"))
                    })
                }
                _ => Ok(Created::KeyReused),
            };
        }
        Err(e) if is_missing_user(&e) => return Ok(Created::UserMissing),
        Err(e) => return Err(e),
    }
    let task = match created(query(Conn::transaction(&tx, statements), &insert).await)? {
        Created::New(task) => task,
        other => return Ok(other),
    };
    query(
        Conn::transaction(&tx, statements),
        &sql::finish_idempotency_key(user_id, &idem.key, &task),
    )
    .await?;
    tx.commit().await.map_err(classify)?;
    Ok(Created::New(task))
}

/// A create's answer from an insert: its row, or the tasks → users
/// foreign key saying the user row is missing.
fn created(inserted: StoreResult<Vec<Row>>) -> StoreResult<Created> {
    match inserted {
        Ok(rows) => Ok(Created::New(
            rows.first()
                .map(task_from_row)
                .transpose()?
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("insert returned no row")))?,
        )),
        Err(e) if is_missing_user(&e) => Ok(Created::UserMissing),
        Err(e) => Err(e),
    }
}

/// How long a statement past its deadline is cancelled again and again
/// before its connection is given up on (a link that went silent).
const CANCEL_FOR: Duration = Duration::from_secs(2);

/// Cancels what the connection runs, again every 50 ms (a cancel that
/// arrives before the statement started is lost), until the statement
/// ends. `None` after [`CANCEL_FOR`]: the connection does not answer, and
/// the caller must drop it armed, so that it never goes back to the pool.
async fn cancel_until_done<T>(
    token: &tokio_postgres::CancelToken,
    tls: &tokio_postgres_rustls::MakeRustlsConnect,
    mut running: std::pin::Pin<&mut impl std::future::Future<Output = T>>,
) -> Option<T> {
    let give_up = Instant::now() + CANCEL_FOR;
    while Instant::now() < give_up {
        if let Err(err) = tokio::time::timeout(CANCEL_FOR, token.cancel_query(tls.clone()))
            .await
            .unwrap_or_else(|_| Ok(()))
        {
            tracing::warn!(error = %err, "could not cancel a statement past its deadline");
        }
        if let Ok(done) = tokio::time::timeout(Duration::from_millis(50), running.as_mut()).await {
            return Some(done);
        }
    }
    None
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn pool_stats(&self) -> super::PoolStats {
        let status = self.pool.status();
        super::PoolStats {
            in_use: status.size.saturating_sub(status.available),
            idle: status.available,
            waiting: status.waiting,
            statements: Some(super::StatementCounts {
                prepared: self.statements.run_prepared.load(Ordering::Relaxed),
                unnamed: self.statements.run_unnamed.load(Ordering::Relaxed),
            }),
        }
    }

    async fn ready(&self, by: Deadline) -> StoreResult<()> {
        let asked = async {
            let client = self.client().await?;
            client
                .query_typed(migrations::CURRENT_VERSION_SQL, &[])
                .await
                .map_err(classify)
        };
        let rows = tokio::time::timeout_at(by.0.into(), asked)
            .await
            .map_err(|_| unavailable(anyhow::anyhow!("the database did not answer in time")))??;
        let current: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
        if current < migrations::latest(migrations::Backend::Postgres) {
            return Err(unavailable(anyhow::anyhow!("database is not migrated")));
        }
        Ok(())
    }

    async fn upsert_user(&self, who: &Claims, now: DateTime<Utc>, by: Deadline) -> StoreResult<()> {
        self.idempotent(
            &sql::upsert_user(who, now, Dialect::Postgres),
            Sharing::Write,
            by,
        )
        .await?;
        Ok(())
    }

    async fn get_user(&self, user_id: &str, by: Deadline) -> StoreResult<Option<UserProfile>> {
        let rows = self
            .idempotent(&sql::select_user(user_id), Sharing::Read, by)
            .await?;
        rows.first()
            .map(rows::decode_profile)
            .transpose()
            .map_err(StoreError::Other)
    }

    async fn delete_user(&self, user_id: &str, by: Deadline) -> StoreResult<bool> {
        Ok(!self.write(&sql::delete_user(user_id), by).await?.is_empty())
    }

    async fn create_task(
        &self,
        user_id: &str,
        input: &TaskInput,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotentRequest>,
        by: Deadline,
    ) -> StoreResult<Created> {
        let Some(idem) = idempotency else {
            let insert = sql::insert_task(user_id, input, now);
            return created(self.write(&insert, by).await);
        };
        // Past the deadline the transaction is abandoned: its connection,
        // dropped armed, cancels what runs and never returns to the pool, so
        // nothing of it commits later; the key makes the retry safe.
        let keyed = async {
            let mut client = self.writer().await?;
            let result = create_on(&mut client, &self.statements, user_id, input, now, idem).await;
            client.done();
            result
        };
        tokio::time::timeout_at(by.0.into(), keyed)
            .await
            .unwrap_or_else(|_| Err(outcome_unknown()))
    }

    async fn get_task(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<Option<Task>> {
        let rows = self
            .idempotent(&sql::select_task(user_id, id), Sharing::Read, by)
            .await?;
        rows.first().map(task_from_row).transpose()
    }

    async fn task_exists(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<bool> {
        Ok(!self
            .idempotent(&sql::task_exists(user_id, id), Sharing::Read, by)
            .await?
            .is_empty())
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
        let b = sql::update_task(user_id, id, change, condition, now, Dialect::Postgres);
        if let Some(row) = self.write(&b, by).await?.first() {
            return Ok(WriteOutcome::Done(task_from_row(row)?));
        }
        self.missing_or_stale(user_id, id, by).await
    }

    async fn delete_task(
        &self,
        user_id: &str,
        id: i64,
        condition: &Precondition,
        by: Deadline,
    ) -> StoreResult<WriteOutcome<Task>> {
        let b = sql::delete_task(user_id, id, condition, Dialect::Postgres);
        if let Some(row) = self.write(&b, by).await?.first() {
            return Ok(WriteOutcome::Done(task_from_row(row)?));
        }
        self.missing_or_stale(user_id, id, by).await
    }

    async fn list_tasks(&self, spec: &ListSpec, by: Deadline) -> StoreResult<Page<Task>> {
        let rows = self
            .idempotent(&sql::list_query(spec, Dialect::Postgres), Sharing::Read, by)
            .await?;
        let tasks = rows.iter().map(task_from_row).collect::<StoreResult<_>>()?;
        Ok(Page::from_look_ahead(tasks, spec.limit))
    }

    async fn purge_idempotency_keys(
        &self,
        cutoff: DateTime<Utc>,
        by: Deadline,
    ) -> StoreResult<u64> {
        // Safe to repeat, so not a cancellable write: an armed write
        // connection dropped when the purge task is aborted at shutdown
        // would start a cancel that the ending runtime cuts short.
        let b = sql::purge_idempotency_keys(cutoff);
        Ok(self.idempotent(&b, Sharing::Write, by).await?.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::looks_pooled;

    #[test]
    fn neon_pooler_hosts_and_the_pgbouncer_port_count_as_pooled() {
        assert!(looks_pooled(
            "postgresql://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require"
        ));
        assert!(looks_pooled("postgres://u@127.0.0.1:6432/app"));
        assert!(looks_pooled("postgres://u@127.0.0.1:6432"));
        assert!(looks_pooled(
            "postgresql://postgres.abcd:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
        ));
        assert!(looks_pooled(
            "postgres://u@db.internal:6543/app?sslmode=require"
        ));
        assert!(!looks_pooled("postgres://u:6432@db.internal:5432/app"));
        assert!(!looks_pooled(
            "postgresql://u:p@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb?sslmode=require"
        ));
        assert!(!looks_pooled("postgres://u@127.0.0.1:5432/app"));
    }
}
