//! Reads: read-only connections, a read started on the calling thread and
//! moved to the blocking pool when it runs long, and interrupted at its
//! deadline.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::Semaphore;

use super::{errors::classify, open::configure};
use crate::db::{StoreError, StoreResult};

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
pub(super) const INLINE_BUDGET: Duration = Duration::from_micros(500);

/// Read-only connections, opened on demand up to the pool size and reused
/// last-in first-out (the most recently used one has the warmest cache).
pub(super) struct ReadPool {
    pub(super) path: String,
    pub(super) busy_timeout: Duration,
    pub(super) idle: Mutex<Vec<Connection>>,
    /// One per connection in use; a read holds its permit until its
    /// blocking job ends, even when its request was dropped meanwhile.
    pub(super) permits: Arc<Semaphore>,
    pub(super) open: AtomicUsize,
}

impl ReadPool {
    pub(super) fn open_one(&self) -> rusqlite::Result<Connection> {
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
    pub(super) async fn read<T: Send + 'static>(
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
