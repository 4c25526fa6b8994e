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
//!   thread, so a read still running after [`INLINE_BUDGET`](reads::INLINE_BUDGET) is
//!   interrupted and run again on tokio's blocking pool; and a read still
//!   running at three quarters of `REQUEST_TIMEOUT_MS` from its request's
//!   start is interrupted and answers 503, as on PostgreSQL (see
//!   [`ReadPool::read`]). Under WAL a reader never waits for a writer, so
//!   a read cannot stall the thread on a lock. Each read is one statement
//!   in autocommit mode, so it sees every write committed before it began,
//!   whoever made it.
//! - **Writes** go to exactly one write connection, on its own thread, one
//!   transaction per write (see `writer.rs`). Writers queue there,
//!   with the acquire timeout, instead of failing with `SQLITE_BUSY`, and
//!   waiting for another process's lock on the file (the `sqlite3` shell, a
//!   second server) never stalls a runtime thread.
//!
//! Migrations are applied by refinery under a file lock (`migrations/`),
//! which also adopts the history of databases created by earlier versions.
//!
//! The files by role: `open.rs` (the file, its settings, migrations),
//! `reads.rs` (the read connections and their deadlines), `writer.rs` (the
//! writer thread), `statements.rs` (binding and running the shared SQL),
//! `columns.rs` (rows by column name), `errors.rs` (503 or 500),
//! `create.rs` (the idempotent create's transaction), `changes.rs` (change
//! numbers, other processes' commits).

mod changes;
mod columns;
mod create;
mod errors;
mod open;
mod reads;
mod statements;
mod writer;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::{
    Change, ChangeSignals, Created, Deadline, IdempotentRequest, PoolStats, Precondition, Store,
    StoreError, StoreResult, UserProfile, WriteOutcome,
    changes::{self as feed, Numbering},
    idempotency, list, migrations,
    sql::Dialect,
    tasks, users,
};
use crate::domain::{
    Claims,
    changes::{ChangeBatch, FeedStart},
    listing::{ListSpec, Page},
    task::Task,
    time,
};
use changes::take_number;
use reads::ReadPool;
use statements::{query, query_first};
use writer::Writer;

/// The SQLite store.
pub struct SqliteStore {
    readers: Arc<ReadPool>,
    writer: Writer,
    acquire_timeout: Duration,
    /// Wakes event streams: after each write of this process at once, and
    /// when another process's commit is seen (`changes.rs`).
    signals: Arc<ChangeSignals>,
}

impl SqliteStore {
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
        let b = users::upsert_user(who, now, Dialect::Sqlite);
        self.write(by, move |conn| query(conn, &b, |_| Ok(())).map(drop))
            .await
    }

    async fn get_user(&self, user_id: &str, by: Deadline) -> StoreResult<Option<UserProfile>> {
        let b = users::select_user(user_id);
        self.read(by, move |conn| {
            query_first(conn, &b, |r| users::decode_profile(r))
        })
        .await
    }

    async fn delete_user(&self, user_id: &str, by: Deadline) -> StoreResult<bool> {
        let b = users::delete_user(user_id);
        let deleted = self
            .write(by, move |conn| {
                query_first(conn, &b, |_| Ok(())).map(|r| r.is_some())
            })
            .await?;
        if deleted {
            // Its streams read the feed, find the user gone, and end.
            self.signals.notify(user_id);
        }
        Ok(deleted)
    }

    async fn create_task(
        &self,
        user_id: &str,
        input: &crate::domain::task::TaskInput,
        now: DateTime<Utc>,
        idempotency: Option<&IdempotentRequest>,
        by: Deadline,
    ) -> StoreResult<Created> {
        let owned = (user_id.to_owned(), input.clone());
        let insert = move |conn: &Connection| -> rusqlite::Result<Created> {
            let (user_id, input) = &owned;
            let Some(seq) = take_number(conn, user_id)? else {
                return Ok(Created::UserMissing);
            };
            let b = tasks::insert_task(user_id, input, now, Numbering::Taken(seq));
            match query_first(conn, &b, |r| tasks::decode_task(r))? {
                Some(task) => Ok(Created::New(task)),
                None => Err(rusqlite::Error::QueryReturnedNoRows),
            }
        };
        let created = match idempotency {
            None => self.write(by, insert).await?,
            Some(idem) => self.create_keyed(user_id, idem, now, insert, by).await?,
        };
        if matches!(created, Created::New(_)) {
            self.signals.notify(user_id);
        }
        Ok(created)
    }

    async fn get_task(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<Option<Task>> {
        let b = tasks::select_task(user_id, id);
        self.read(by, move |conn| {
            query_first(conn, &b, |r| tasks::decode_task(r))
        })
        .await
    }

    async fn task_exists(&self, user_id: &str, id: i64, by: Deadline) -> StoreResult<bool> {
        let b = tasks::task_exists(user_id, id);
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
        let owned = (user_id.to_owned(), change.clone(), condition.clone());
        let updated = self
            .write(by, move |conn| {
                let (user_id, change, condition) = &owned;
                let Some(seq) = take_number(conn, user_id)? else {
                    return Ok(None);
                };
                let b =
                    tasks::update_task(user_id, id, change, condition, now, Numbering::Taken(seq));
                query_first(conn, &b, |r| tasks::decode_task(r))
            })
            .await?;
        match updated {
            Some(task) => {
                self.signals.notify(user_id);
                Ok(WriteOutcome::Done(task))
            }
            None => super::missing_or_stale(self, user_id, id, by).await,
        }
    }

    async fn delete_task(
        &self,
        user_id: &str,
        id: i64,
        condition: &Precondition,
        by: Deadline,
    ) -> StoreResult<WriteOutcome<Task>> {
        let now = time::now();
        let b = tasks::delete_task(user_id, id, condition, Dialect::Sqlite, now);
        let user = user_id.to_owned();
        let deleted = self
            .write(by, move |conn| {
                let Some(seq) = take_number(conn, &user)? else {
                    return Ok(None);
                };
                let task = query_first(conn, &b, |r| tasks::decode_task(r))?;
                if let Some(task) = &task {
                    let tombstone = feed::insert_tombstone(&user, seq, task.id, now);
                    query(conn, &tombstone, |_| Ok(()))?;
                }
                Ok(task)
            })
            .await?;
        match deleted {
            Some(task) => {
                self.signals.notify(user_id);
                Ok(WriteOutcome::Done(task))
            }
            None => super::missing_or_stale(self, user_id, id, by).await,
        }
    }

    async fn list_tasks(&self, spec: &ListSpec, by: Deadline) -> StoreResult<Page<Task>> {
        let b = list::list_query(spec, Dialect::Sqlite);
        let tasks = self
            .read(by, move |conn| query(conn, &b, |r| tasks::decode_task(r)))
            .await?;
        Ok(Page::from_look_ahead(tasks, spec.limit))
    }

    async fn purge_idempotency_keys(
        &self,
        cutoff: DateTime<Utc>,
        by: Deadline,
    ) -> StoreResult<u64> {
        let b = idempotency::purge_idempotency_keys(cutoff);
        let purged = self
            .write(by, move |conn| query(conn, &b, |_| Ok(())))
            .await?;
        Ok(purged.len() as u64)
    }

    async fn changes(
        &self,
        user_id: &str,
        start: FeedStart,
        limit: u32,
        by: Deadline,
    ) -> StoreResult<Option<ChangeBatch>> {
        // One statement in autocommit mode: one snapshot.
        let b = feed::changes(user_id, start, limit, Dialect::Sqlite);
        let rows = self
            .read(by, move |conn| query(conn, &b, |r| feed::decode_change(r)))
            .await?;
        Ok(feed::change_batch(rows, limit))
    }

    async fn purge_tombstones(
        &self,
        cutoff: DateTime<Utc>,
        batch: u32,
        by: Deadline,
    ) -> StoreResult<u64> {
        let b = feed::purge_tombstones(cutoff, batch);
        let purged = self
            .write(by, move |conn| query(conn, &b, |_| Ok(())))
            .await?;
        Ok(purged.len() as u64)
    }

    fn signals(&self) -> &Arc<ChangeSignals> {
        &self.signals
    }

    async fn relay_other_writers(&self) {
        self.watch_other_writers().await;
    }
}
