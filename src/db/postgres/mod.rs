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
//!
//! The files by role: `connect.rs` (the pool, waiting for the database,
//! pooled-URL detection), `tls.rs` (libpq's TLS parameters),
//! `statements.rs` (prepared or unnamed, and the fallbacks when a pooler
//! drops prepared statements), `read_lanes.rs` (shared pipelined reads and
//! the retry-safe path), `write.rs` (cancellable writes), `create.rs` (the
//! idempotent create's transaction), `errors.rs` (503 or 500, and messages
//! an operator can act on), `columns.rs` (rows by column name),
//! `changes.rs` (telling other instances about writes: `NOTIFY`, `LISTEN`),
//! `sweep.rs` (the backstop for notifications that were lost).

mod changes;
mod columns;
mod connect;
mod create;
mod errors;
mod read_lanes;
mod statements;
mod sweep;
mod tls;
mod write;

use std::sync::{Arc, atomic::Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::{
    Change, ChangeSignals, Created, Deadline, IdempotentRequest, Precondition, Store, StoreError,
    StoreResult, UserProfile, WriteOutcome,
    changes::{self as feed, Numbering},
    columns::RowResult,
    idempotency, list, migrations,
    sql::Dialect,
    tasks, users,
};
use crate::domain::{
    Claims,
    changes::{ChangeBatch, FeedStart},
    listing::{ListSpec, Page},
    task::{Task, TaskInput},
    time,
};
use changes::Notifier;
use columns::task_from_row;
use create::{KeyedCreate, create_on, created};
use errors::{classify, outcome_unknown, pool_error, unavailable};
use read_lanes::{ReadLanes, Sharing};
use statements::Statements;

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
    /// Wakes this instance's event streams.
    signals: Arc<ChangeSignals>,
    /// Tells other instances about this one's writes.
    notifier: Notifier,
    /// Where the `LISTEN` connection goes; `None` when only a pooled URL
    /// is known.
    listen: Option<tls::PgConnectSettings>,
}

impl PostgresStore {
    /// After a write committed: wakes this instance's streams of the user
    /// and queues the notification for the other instances.
    fn changed(&self, user_id: &str) {
        self.signals.notify(user_id);
        self.notifier.changed(user_id);
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }
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
            &users::upsert_user(who, now, Dialect::Postgres),
            Sharing::Write,
            by,
        )
        .await?;
        Ok(())
    }

    async fn get_user(&self, user_id: &str, by: Deadline) -> StoreResult<Option<UserProfile>> {
        let rows = self
            .idempotent(&users::select_user(user_id), Sharing::Read, by)
            .await?;
        rows.first()
            .map(users::decode_profile)
            .transpose()
            .map_err(StoreError::Other)
    }

    async fn delete_user(&self, user_id: &str, by: Deadline) -> StoreResult<bool> {
        let deleted = !self
            .write(&users::delete_user(user_id), by)
            .await?
            .is_empty();
        if deleted {
            // Its streams read the feed, find the user gone, and end.
            self.changed(user_id);
        }
        Ok(deleted)
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
            let insert = tasks::insert_task(user_id, input, now, Numbering::InStatement);
            let created = created(self.write(&insert, by).await)?;
            if matches!(created, Created::New(_)) {
                self.changed(user_id);
            }
            return Ok(created);
        };
        // Past the deadline the transaction is abandoned: its connection,
        // dropped armed, cancels what runs and never returns to the pool, so
        // nothing of it commits later; the key makes the retry safe.
        let keyed = async {
            let mut client = self.writer().await?;
            let create = KeyedCreate {
                user_id,
                input,
                now,
                idem,
            };
            let result = create_on(&mut client, &self.statements, create).await;
            client.done();
            result
        };
        let created = tokio::time::timeout_at(by.0.into(), keyed)
            .await
            .unwrap_or_else(|_| Err(outcome_unknown()))?;
        if matches!(created, Created::New(_)) {
            self.changed(user_id);
        }
        Ok(created)
    }

    async fn get_task(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<Option<Task>> {
        let rows = self
            .idempotent(&tasks::select_task(user_id, id), Sharing::Read, by)
            .await?;
        rows.first().map(task_from_row).transpose()
    }

    async fn task_exists(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<bool> {
        Ok(!self
            .idempotent(&tasks::task_exists(user_id, id), Sharing::Read, by)
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
        let b = tasks::update_task(user_id, id, change, condition, now, Numbering::InStatement);
        if let Some(row) = self.write(&b, by).await?.first() {
            self.changed(user_id);
            return Ok(WriteOutcome::Done(task_from_row(row)?));
        }
        super::missing_or_stale(self, user_id, id, by).await
    }

    async fn delete_task(
        &self,
        user_id: &str,
        id: i64,
        condition: &Precondition,
        by: Deadline,
    ) -> StoreResult<WriteOutcome<Task>> {
        let b = tasks::delete_task(user_id, id, condition, Dialect::Postgres, time::now());
        if let Some(row) = self.write(&b, by).await?.first() {
            self.changed(user_id);
            return Ok(WriteOutcome::Done(task_from_row(row)?));
        }
        super::missing_or_stale(self, user_id, id, by).await
    }

    async fn list_tasks(&self, spec: &ListSpec, by: Deadline) -> StoreResult<Page<Task>> {
        let rows = self
            .idempotent(
                &list::list_query(spec, Dialect::Postgres),
                Sharing::Read,
                by,
            )
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
        let b = idempotency::purge_idempotency_keys(cutoff);
        Ok(self.idempotent(&b, Sharing::Write, by).await?.len() as u64)
    }

    async fn changes(
        &self,
        user_id: &str,
        start: FeedStart,
        limit: u32,
        by: Deadline,
    ) -> StoreResult<Option<ChangeBatch>> {
        // One statement, one snapshot: the batch and the head agree.
        let b = feed::changes(user_id, start, limit, Dialect::Postgres);
        let rows = self.idempotent(&b, Sharing::Read, by).await?;
        let rows = rows
            .iter()
            .map(feed::decode_change)
            .collect::<RowResult<_>>()
            .map_err(StoreError::Other)?;
        Ok(feed::change_batch(rows, limit))
    }

    async fn purge_tombstones(
        &self,
        cutoff: DateTime<Utc>,
        batch: u32,
        by: Deadline,
    ) -> StoreResult<u64> {
        let b = feed::purge_tombstones(cutoff, batch);
        Ok(self.idempotent(&b, Sharing::Write, by).await?.len() as u64)
    }

    fn signals(&self) -> &Arc<ChangeSignals> {
        &self.signals
    }

    async fn relay_other_writers(&self) {
        let listen = async {
            match &self.listen {
                Some(settings) => {
                    changes::relay_forever(settings, &self.signals, &self.notifier.instance).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::join!(listen, self.sweep_forever());
    }
}
