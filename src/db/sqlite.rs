//! SQLite backend on sqlx: the embedded default, one file, WAL mode.
//!
//! Writes go through a pool of exactly one connection, so writers queue in
//! the pool (with its acquire timeout) instead of failing with
//! `SQLITE_BUSY`; reads use a separate pool and run concurrently under WAL.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{
    AssertSqlSafe, Row, Sqlite, SqliteConnection,
    sqlite::{
        SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
        SqliteRow, SqliteSynchronous,
    },
};

use super::{
    Change, Created, IdempotentRequest, Precondition, Store, StoreError, StoreResult, UserProfile,
    WriteOutcome,
    sql::{self, Dialect, Param, SqlBuilder},
};
use crate::{
    auth::Identity,
    config::Config,
    listing::ListSpec,
    task::{Priority, Task, TaskInput},
};

/// The embedded migrations, compiled into the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The SQLite store.
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

/// Fixed-width UTC text, so that text order is time order in indexes.
fn ts_text(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Other(anyhow::anyhow!("corrupt timestamp {text:?}: {e}")))
}

fn classify(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(err.into())
        }
        sqlx::Error::Database(ref db) if db.code().as_deref() == Some("5") => {
            // SQLITE_BUSY after the busy timeout: overloaded, retry later.
            StoreError::Unavailable(err.into())
        }
        other => StoreError::Other(other.into()),
    }
}

fn bind(b: &SqlBuilder) -> sqlx::query::Query<'static, Sqlite, SqliteArguments> {
    let mut q = sqlx::query(AssertSqlSafe(b.sql.clone()));
    for param in &b.params {
        q = match param {
            Param::Text(v) => q.bind(v.clone()),
            Param::Int(v) => q.bind(*v),
            Param::SmallInt(v) => q.bind(i64::from(*v)),
            Param::Bool(v) => q.bind(*v),
            Param::Timestamp(v) => q.bind(ts_text(v)),
            Param::TextList(v) => q.bind(serde_json::to_string(v).unwrap_or_else(|_| "[]".into())),
            Param::IntList(v) => q.bind(serde_json::to_string(v).unwrap_or_else(|_| "[]".into())),
            Param::OptText(v) => q.bind(v.clone()),
            Param::OptTimestamp(v) => q.bind(v.as_ref().map(ts_text)),
        };
    }
    q
}

async fn fetch(conn: &mut SqliteConnection, b: &SqlBuilder) -> StoreResult<Vec<SqliteRow>> {
    bind(b).fetch_all(conn).await.map_err(classify)
}

async fn fetch_pool(pool: &SqlitePool, b: &SqlBuilder) -> StoreResult<Vec<SqliteRow>> {
    bind(b).fetch_all(pool).await.map_err(classify)
}

fn task_from_row(row: &SqliteRow) -> StoreResult<Task> {
    let get = |e: sqlx::Error| StoreError::Other(e.into());
    let tags: String = row.try_get(6).map_err(get)?;
    let rank: i64 = row.try_get(5).map_err(get)?;
    let opt_ts = |i: usize| -> StoreResult<Option<DateTime<Utc>>> {
        row.try_get::<Option<String>, _>(i)
            .map_err(get)?
            .as_deref()
            .map(parse_ts)
            .transpose()
    };
    Ok(Task {
        id: row.try_get(0).map_err(get)?,
        user_id: row.try_get(1).map_err(get)?,
        title: row.try_get(2).map_err(get)?,
        description: row.try_get(3).map_err(get)?,
        completed: row.try_get(4).map_err(get)?,
        priority: Priority::from_rank(rank)
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("corrupt priority {rank}")))?,
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::Other(e.into()))?,
        due_date: opt_ts(7)?,
        completed_at: opt_ts(8)?,
        created_at: parse_ts(&row.try_get::<String, _>(9).map_err(get)?)?,
        updated_at: parse_ts(&row.try_get::<String, _>(10).map_err(get)?)?,
        version: row.try_get(11).map_err(get)?,
    })
}

fn first_task(rows: &[SqliteRow]) -> StoreResult<Option<Task>> {
    rows.first().map(task_from_row).transpose()
}

fn is_missing_user(err: &StoreError) -> bool {
    match err {
        StoreError::Other(e) => e
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .is_some_and(|db| db.is_foreign_key_violation()),
        StoreError::Unavailable(_) => false,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn connect(url: &str, config: &Config) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("DATABASE_URL is not a valid SQLite URL: {e}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Below the request time limit, so a write stuck behind another
            // process's lock fails (503, nothing written) rather than
            // committing after its request was already answered.
            .busy_timeout((config.request_timeout / 2).min(Duration::from_secs(5)))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.db_acquire_timeout)
            .connect_with(options.clone())
            .await
            .with_context(|| "cannot open the SQLite database in DATABASE_URL")?;
        MIGRATOR
            .run(&writer)
            .await
            .context("could not apply the SQLite migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(config.db_pool_size.max(1))
            .acquire_timeout(config.db_acquire_timeout)
            .connect_with(options.read_only(true))
            .await
            .context("cannot open the SQLite database in DATABASE_URL for reading")?;
        Ok(Self { reader, writer })
    }

    /// 404 or 412 after a conditional write touched no row.
    async fn missing_or_stale<T>(&self, user_id: &str, id: i64) -> StoreResult<WriteOutcome<T>> {
        Ok(if self.task_exists(user_id, id).await? {
            WriteOutcome::PreconditionFailed
        } else {
            WriteOutcome::NotFound
        })
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn pool_stats(&self) -> super::PoolStats {
        let (size, idle) = [&self.reader, &self.writer]
            .iter()
            .fold((0, 0), |(s, i), p| {
                (s + p.size() as usize, i + p.num_idle())
            });
        super::PoolStats {
            in_use: size.saturating_sub(idle),
            idle,
            waiting: 0,
            statements: None,
        }
    }

    async fn ready(&self) -> StoreResult<()> {
        let row =
            sqlx::query("select coalesce(max(version), 0) from _sqlx_migrations where success")
                .fetch_one(&self.reader)
                .await
                .map_err(classify)?;
        let current: i64 = row.try_get(0).map_err(|e| StoreError::Other(e.into()))?;
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        if current < latest {
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "database is not migrated"
            )));
        }
        Ok(())
    }

    async fn upsert_user(&self, who: &Identity, now: DateTime<Utc>) -> StoreResult<()> {
        fetch_pool(&self.writer, &sql::upsert_user(who, now, Dialect::Sqlite)).await?;
        Ok(())
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<UserProfile>> {
        let rows = fetch_pool(&self.reader, &sql::select_user(user_id)).await?;
        let get = |e: sqlx::Error| StoreError::Other(e.into());
        rows.first()
            .map(|r| {
                Ok(UserProfile {
                    id: r.try_get(0).map_err(get)?,
                    email: r.try_get(1).map_err(get)?,
                    name: r.try_get(2).map_err(get)?,
                    created_at: parse_ts(&r.try_get::<String, _>(3).map_err(get)?)?,
                    updated_at: parse_ts(&r.try_get::<String, _>(4).map_err(get)?)?,
                    total: r.try_get(5).map_err(get)?,
                    completed: r.try_get(6).map_err(get)?,
                })
            })
            .transpose()
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<bool> {
        Ok(!fetch_pool(&self.writer, &sql::delete_user(user_id))
            .await?
            .is_empty())
    }

    async fn create_task(
        &self,
        user_id: &str,
        input: &TaskInput,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotentRequest>,
        render: for<'t> fn(&'t Task) -> String,
    ) -> StoreResult<Created> {
        let insert = sql::insert_task(user_id, input, now);
        let missing = || StoreError::Other(anyhow::anyhow!("insert returned no row"));
        let Some(idem) = idempotency else {
            return match fetch_pool(&self.writer, &insert).await {
                Ok(rows) => Ok(Created::New(first_task(&rows)?.ok_or_else(missing)?)),
                Err(e) if is_missing_user(&e) => Ok(Created::UserMissing),
                Err(e) => Err(e),
            };
        };
        // The single writer connection serialises this whole transaction.
        let mut tx = self.writer.begin().await.map_err(classify)?;
        fetch(
            &mut tx,
            &sql::expire_idempotency_key(user_id, &idem.key, idem.not_before),
        )
        .await?;
        let claim = sql::claim_idempotency_key(user_id, &idem.key, &idem.fingerprint, now);
        match fetch(&mut tx, &claim).await {
            Ok(rows) if !rows.is_empty() => {}
            Ok(_) => {
                let rows = fetch(&mut tx, &sql::select_idempotency_key(user_id, &idem.key)).await?;
                tx.rollback().await.map_err(classify)?;
                let Some(row) = rows.first() else {
                    return Ok(Created::KeyReused);
                };
                let fingerprint: String =
                    row.try_get(0).map_err(|e| StoreError::Other(e.into()))?;
                let response: Option<String> =
                    row.try_get(1).map_err(|e| StoreError::Other(e.into()))?;
                return Ok(match response {
                    Some(body) if fingerprint == idem.fingerprint => Created::Replay(body),
                    _ => Created::KeyReused,
                });
            }
            Err(e) if is_missing_user(&e) => return Ok(Created::UserMissing),
            Err(e) => return Err(e),
        }
        let task = match fetch(&mut tx, &insert).await {
            Ok(rows) => first_task(&rows)?.ok_or_else(missing)?,
            Err(e) if is_missing_user(&e) => return Ok(Created::UserMissing),
            Err(e) => return Err(e),
        };
        fetch(
            &mut tx,
            &sql::finish_idempotency_key(user_id, &idem.key, &render(&task)),
        )
        .await?;
        tx.commit().await.map_err(classify)?;
        Ok(Created::New(task))
    }

    async fn get_task(&self, user_id: &str, id: i64) -> StoreResult<Option<Task>> {
        first_task(&fetch_pool(&self.reader, &sql::select_task(user_id, id)).await?)
    }

    async fn task_exists(&self, user_id: &str, id: i64) -> StoreResult<bool> {
        Ok(!fetch_pool(&self.reader, &sql::task_exists(user_id, id))
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
    ) -> StoreResult<WriteOutcome<Task>> {
        let b = sql::update_task(user_id, id, change, condition, now, Dialect::Sqlite);
        match first_task(&fetch_pool(&self.writer, &b).await?)? {
            Some(task) => Ok(WriteOutcome::Done(task)),
            None => self.missing_or_stale(user_id, id).await,
        }
    }

    async fn delete_task(
        &self,
        user_id: &str,
        id: i64,
        condition: &Precondition,
    ) -> StoreResult<WriteOutcome<()>> {
        let b = sql::delete_task(user_id, id, condition, Dialect::Sqlite);
        if fetch_pool(&self.writer, &b).await?.is_empty() {
            self.missing_or_stale(user_id, id).await
        } else {
            Ok(WriteOutcome::Done(()))
        }
    }

    async fn list_tasks(&self, spec: &ListSpec) -> StoreResult<Vec<Task>> {
        let rows = fetch_pool(&self.reader, &sql::list_query(spec, Dialect::Sqlite)).await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn purge_idempotency_keys(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let rows = fetch_pool(&self.writer, &sql::purge_idempotency_keys(cutoff)).await?;
        Ok(rows.len() as u64)
    }
}
