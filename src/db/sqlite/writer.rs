//! SQLite's one writer: a thread that owns the write connection and runs
//! the queued writes one after another, each in its own transaction.
//!
//! SQLite allows one writer at a time. Writes wait in this queue, up to the
//! acquire timeout, instead of failing with `SQLITE_BUSY`; and a write
//! waiting for another process's lock on the file (the `sqlite3` shell, a
//! second server) holds this thread, never a runtime thread. A write is
//! answered once its transaction committed; one that fails is rolled back.
//!
//! A write whose caller gave up (acquire timeout, request time limit) before
//! it started is skipped, so a request answered with an error never commits
//! later.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::errors::classify;
use crate::db::{Deadline, StoreError, StoreResult};

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

/// A queued write: it runs only if it moves from [`QUEUED`] to [`STARTED`].
struct Job {
    state: Arc<AtomicU8>,
    run: Box<dyn FnOnce(&mut Connection) + Send>,
}

/// Handle to the writer thread.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    busy: Arc<AtomicBool>,
    acquire_timeout: Duration,
}

/// Marks a queued write as abandoned when its caller stops waiting.
struct Ticket(Arc<AtomicU8>);

impl Ticket {
    /// True when the write had not started and now never will.
    fn cancel(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Writer {
    /// Moves `conn` to a new writer thread.
    pub fn start(conn: Connection, acquire_timeout: Duration) -> std::io::Result<Self> {
        let (jobs, inbox) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let busy = Arc::new(AtomicBool::new(false));
        let (q, b) = (queued.clone(), busy.clone());
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || run(conn, &inbox, &q, &b))?;
        Ok(Self {
            jobs,
            queued,
            busy,
            acquire_timeout,
        })
    }

    /// Writes waiting for their turn, and whether one is running.
    pub fn stats(&self) -> (usize, bool) {
        (
            self.queued.load(Ordering::Relaxed),
            self.busy.load(Ordering::Relaxed),
        )
    }

    /// Runs `f` in a transaction of its own and returns its result once
    /// that transaction has committed. A write still queued after the
    /// acquire timeout or at `by` never runs.
    pub async fn write<T: Send + 'static>(
        &self,
        by: Deadline,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, mut rx) = oneshot::channel::<StoreResult<T>>();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let run = Box::new(move |conn: &mut Connection| {
            let _ = tx.send(in_transaction(conn, f).map_err(classify));
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        let ticket = Ticket(state.clone());
        if self.jobs.send(Job { state, run }).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "the SQLite writer has stopped"
            )));
        }
        let stopped = || StoreError::Other(anyhow::anyhow!("the SQLite write was abandoned"));
        let give_up = by.0.min(Instant::now() + self.acquire_timeout);
        match tokio::time::timeout_at(give_up.into(), &mut rx).await {
            Ok(result) => result.map_err(|_| stopped())?,
            // Not started: it never will, and nothing was written.
            Err(_) if ticket.cancel() => Err(StoreError::Unavailable(anyhow::anyhow!(
                "timed out waiting for the SQLite writer"
            ))),
            // Already running: its outcome is what happened.
            Err(_) => rx.await.map_err(|_| stopped())?,
        }
    }
}

/// Runs `f` between `begin immediate` and `commit`. On an error, or a
/// panic, dropping the transaction rolls it back.
fn in_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// The writer thread: one write at a time, until the store is dropped.
fn run(mut conn: Connection, inbox: &mpsc::Receiver<Job>, queued: &AtomicUsize, busy: &AtomicBool) {
    while let Ok(job) = inbox.recv() {
        queued.fetch_sub(1, Ordering::Relaxed);
        let started = job
            .state
            .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !started {
            continue;
        }
        busy.store(true, Ordering::Relaxed);
        // A bug in one write: its transaction was rolled back as the panic
        // unwound, its caller sees the reply channel close, and the thread
        // goes on with the next write.
        if std::panic::catch_unwind(AssertUnwindSafe(|| (job.run)(&mut conn))).is_err() {
            tracing::error!("a SQLite write panicked; it was rolled back");
        }
        busy.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    /// A write that fails, or panics, after its first statement stores
    /// nothing, and the writes after it go on.
    #[tokio::test]
    async fn a_failing_write_stores_none_of_its_statements() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("create table t (n integer primary key)")
            .unwrap();
        let writer = Writer::start(conn, Duration::from_secs(5)).unwrap();
        let failed = writer
            .write(by(), |c| {
                c.execute("insert into t values (1)", [])?;
                c.execute("insert into t values (1)", [])
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Other(_))), "{failed:?}");
        let panicked = writer
            .write(by(), |c| -> rusqlite::Result<()> {
                c.execute("insert into t values (2)", [])?;
                panic!("a bug in a write")
            })
            .await;
        assert!(panicked.is_err());
        writer
            .write(by(), |c| c.execute("insert into t values (3)", []))
            .await
            .unwrap();
        let rows: Vec<i64> = writer
            .write(by(), |c| {
                let mut stmt = c.prepare("select n from t order by n")?;
                stmt.query_map([], |r| r.get(0))?.collect()
            })
            .await
            .unwrap();
        assert_eq!(rows, [3]);
    }
}
