//! Storage: one `Store` trait, one implementation per backend, chosen once at
//! start-up from the URL scheme. Every method takes the caller's user id and
//! every statement filters by it in SQL, so isolation does not depend on the
//! handlers remembering to check ownership.

mod changes;
mod columns;
mod idempotency;
mod list;
mod migrations;
mod postgres;
mod signals;
mod sql;
mod sqlite;
mod tasks;
mod users;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use crate::domain::{
    Claims,
    changes::{ChangeBatch, FeedStart},
    listing::{ListSpec, Page},
    task::{Task, TaskInput, TaskPatch},
};

pub use postgres::PostgresStore;
pub use signals::{ChangeSignals, Counters, Subscription};
pub use sqlite::SqliteStore;

/// What opening a store needs of the configuration (`app::db_settings`
/// builds it from `Config`), so storage depends on nothing above it. The
/// names are those of the `Config` fields they come from. No `Debug`: the
/// URL may hold a password.
#[derive(Clone)]
pub struct Settings {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Most connections (PostgreSQL) or concurrent reads (SQLite).
    pub db_pool_size: u32,
    /// Longest wait for a pooled connection.
    pub db_acquire_timeout: Duration,
    /// Longest wait for PostgreSQL to answer at start-up.
    pub db_startup_timeout: Duration,
    /// Prepared statements on or off; `None` decides by the URL.
    pub db_prepared_statements: Option<bool>,
    /// Connections shared by pipelined reads; `None` decides by the pool.
    pub db_shared_read_connections: Option<u32>,
    /// The request time limit; SQLite's busy timeout is kept under it.
    pub request_timeout: Duration,
    /// `DATABASE_LISTEN_URL`: where PostgreSQL's `LISTEN` connection goes
    /// (`None`: `database_url`, unless that looks pooled).
    pub database_listen_url: Option<String>,
}

/// When a storage call must have ended: past it a PostgreSQL statement is
/// cancelled (a write's outcome awaited) and a SQLite read interrupted, and
/// the call answers [`StoreError::Unavailable`]. An argument rather than
/// something the store looks up, so that any caller (a request handler, a
/// background job, a tool run in a task of its own) states its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }
}

/// Why a storage call failed, in the two ways the HTTP layer distinguishes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (503, retry later).
    #[error("database unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// Anything else: a bug or a corrupt row (500).
    #[error("database error: {0:#}")]
    Other(anyhow::Error),
}

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

/// The `users` row and its task counts, for `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserProfile {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub total: i64,
    pub completed: i64,
}

/// The `If-Match` condition of a write, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No `If-Match`: unconditional.
    None,
    /// `If-Match: *`: any existing task.
    Any,
    /// Strong tags: one of these versions (an empty list never matches).
    Versions(Vec<i64>),
}

/// A change to an existing task. PUT is a patch that names every field.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Patch(TaskPatch),
    Toggle,
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome<T> {
    Done(T),
    NotFound,
    PreconditionFailed,
}

/// An `Idempotency-Key` with the fingerprint of the body it came with.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    pub key: String,
    pub fingerprint: String,
    /// Keys older than this are treated as never seen.
    pub not_before: DateTime<Utc>,
}

/// The result of a create.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new task.
    New(Task),
    /// The key was used before with the same body: the task the original
    /// create answered, as it was then (stored as its serde JSON).
    Replay(Task),
    /// The key was used before with another body.
    KeyReused,
    /// The user row is gone (deleted through another instance): re-create it.
    UserMissing,
}

/// Connection pool occupancy, for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub in_use: usize,
    pub idle: usize,
    pub waiting: usize,
    /// Statements run so far through a prepared statement and as the
    /// unnamed statement (PostgreSQL only), so an operator can see which
    /// path `DB_PREPARED_STATEMENTS` chose.
    pub statements: Option<StatementCounts>,
}

/// Statements run, by how they reached the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatementCounts {
    pub prepared: u64,
    pub unnamed: u64,
}

/// The storage seam. Both implementations run the same HTTP test suite.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Reachable and fully migrated.
    async fn ready(&self, by: Deadline) -> StoreResult<()>;
    /// Pool occupancy right now.
    fn pool_stats(&self) -> PoolStats;
    /// Creates the user or brings `email`/`name` up to date; writes nothing
    /// when the row already matches.
    async fn upsert_user(&self, who: &Claims, now: DateTime<Utc>, by: Deadline) -> StoreResult<()>;
    /// The user's row and task counts.
    async fn get_user(&self, user_id: &str, by: Deadline) -> StoreResult<Option<UserProfile>>;
    /// Deletes the user and, by cascade in the same statement, all their data.
    async fn delete_user(&self, user_id: &str, by: Deadline) -> StoreResult<bool>;
    /// Inserts a task; with a key, atomically with the key's record, which
    /// keeps the new task for replays.
    async fn create_task(
        &self,
        user_id: &str,
        input: &TaskInput,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotentRequest>,
        by: Deadline,
    ) -> StoreResult<Created>;
    /// One task of this user.
    async fn get_task(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<Option<Task>>;
    /// Whether the task exists for this user (for 404-before-422 ordering).
    async fn task_exists(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<bool>;
    /// Applies a change in one conditional statement.
    async fn update_task(
        &self,
        user_id: &str,
        id: i64,
        change: &Change,
        condition: &Precondition,
        now: DateTime<Utc>,
        by: Deadline,
    ) -> StoreResult<WriteOutcome<Task>>;
    /// Deletes in one conditional statement and returns the task as it was
    /// (the compatibility DELETE answers with it).
    async fn delete_task(
        &self,
        user_id: &str,
        id: i64,
        condition: &Precondition,
        by: Deadline,
    ) -> StoreResult<WriteOutcome<Task>>;
    /// One page of the user's tasks. Every row fetched is decoded, the
    /// look-ahead row too, so a corrupt row is refused wherever it is.
    async fn list_tasks(&self, spec: &ListSpec, by: Deadline) -> StoreResult<Page<Task>>;
    /// Drops idempotency records created before `cutoff`.
    async fn purge_idempotency_keys(&self, cutoff: DateTime<Utc>, by: Deadline)
    -> StoreResult<u64>;
    /// The user's changes from `start`, at most `limit`, oldest first, with
    /// the user's epoch and latest change number, all from one snapshot.
    /// `None` when the user row is missing.
    async fn changes(
        &self,
        user_id: &str,
        start: FeedStart,
        limit: u32,
        by: Deadline,
    ) -> StoreResult<Option<ChangeBatch>>;
    /// Drops up to `batch` tombstones of deletes before `cutoff`; returns
    /// how many (the caller repeats while a whole batch went).
    async fn purge_tombstones(
        &self,
        cutoff: DateTime<Utc>,
        batch: u32,
        by: Deadline,
    ) -> StoreResult<u64>;
    /// Wake-ups for event streams: signalled by this store after every
    /// committed write, and by [`Store::relay_other_writers`].
    fn signals(&self) -> &Arc<ChangeSignals>;
    /// Runs until aborted, signalling changes that other instances (or, on
    /// SQLite, other processes) commit.
    async fn relay_other_writers(&self);
}

/// 404 or 412 after a conditional write touched no row: the task is
/// either missing for this user or its version did not match.
async fn missing_or_stale(
    store: &(impl Store + ?Sized),
    user_id: &str,
    id: i64,
    by: Deadline,
) -> StoreResult<WriteOutcome<Task>> {
    Ok(if store.task_exists(user_id, id, by).await? {
        WriteOutcome::PreconditionFailed
    } else {
        WriteOutcome::NotFound
    })
}

/// The backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    /// Classifies a `DATABASE_URL`, with a sentence for anything else.
    pub fn of(url: &str) -> Result<Self, String> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            _ => Err(
                "DATABASE_URL must start with sqlite:// or postgres:// (or postgresql://)."
                    .to_owned(),
            ),
        }
    }
}

/// Opens the configured database and applies pending migrations.
pub async fn connect(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let url = settings.database_url.as_str();
    match DatabaseKind::of(url).map_err(anyhow::Error::msg)? {
        DatabaseKind::Sqlite => Ok(Arc::new(SqliteStore::connect(url, settings).await?)),
        DatabaseKind::Postgres => Ok(Arc::new(PostgresStore::connect(url, settings).await?)),
    }
}

/// Applies migrations and returns, for the `migrate` command.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    // Both constructors migrate before returning.
    connect(settings).await.map(drop)
}
