//! SQLite's one writer, with group commit.
//!
//! SQLite allows one writer at a time, and most of a small write's cost is
//! its commit: every page it touched (the table and five indexes, about
//! eight pages for a create) is checksummed and appended to the WAL. So the
//! write connection lives on its own thread, and writes that arrive while a
//! commit is under way wait in a queue; the next round takes all of them
//! (up to [`MAX_BATCH`]) into one transaction, each write in its own
//! savepoint so one failing write rolls back alone, and commits once.
//! A write is answered only after the commit it was part of succeeded; if the
//! commit fails, every write in it gets the error (nothing was stored).
//!
//! A write whose caller gave up (acquire timeout, request time limit) before
//! its round started is skipped, so a request answered with an error never
//! commits later.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// Most writes committed together: bounds how long the first one waits for
/// the others to run.
const MAX_BATCH: usize = 64;

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

/// Why a round failed before or at its commit, for every write in it.
#[derive(Clone)]
struct Failure {
    unavailable: bool,
    message: String,
}

impl Failure {
    fn of(err: &rusqlite::Error) -> Self {
        Self {
            unavailable: super::sqlite::is_unavailable(err),
            message: err.to_string(),
        }
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        let err = anyhow::anyhow!("SQLite commit failed: {}", f.message);
        if f.unavailable {
            StoreError::Unavailable(err)
        } else {
            StoreError::Other(err)
        }
    }
}

/// Reports a write's outcome once its round's commit is known.
type Reply = Box<dyn FnOnce(Result<(), Failure>) + Send>;

/// Runs a write on the write connection (or learns why it cannot).
type Run = Box<dyn FnOnce(Result<&Connection, Failure>) -> Reply + Send>;

/// A queued write.
struct Job {
    state: Arc<AtomicU8>,
    run: Run,
}

/// Handle to the writer thread.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    busy: Arc<AtomicBool>,
    /// Transactions committed or attempted (tests check writes share them).
    rounds: Arc<AtomicUsize>,
    acquire_timeout: Duration,
}

/// Counts the writer's commits, each counted before any write in it is
/// answered, so that a reader can tell whether a snapshot it took earlier
/// may miss a write someone has already been told about.
pub(super) type Commits = Arc<AtomicU64>;

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
    /// Moves `conn` to a new writer thread, which counts its commits in
    /// `commits`.
    pub fn start(
        conn: Connection,
        acquire_timeout: Duration,
        commits: Commits,
    ) -> std::io::Result<Self> {
        let (jobs, inbox) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let busy = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let (q, b, r) = (queued.clone(), busy.clone(), rounds.clone());
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || run(conn, &inbox, &q, &b, &r, &commits))?;
        Ok(Self {
            jobs,
            queued,
            busy,
            rounds,
            acquire_timeout,
        })
    }

    /// Writes waiting for a round, whether a round is running, and how many
    /// rounds have run.
    pub fn stats(&self) -> (usize, bool, usize) {
        (
            self.queued.load(Ordering::Relaxed),
            self.busy.load(Ordering::Relaxed),
            self.rounds.load(Ordering::Relaxed),
        )
    }

    /// Runs `f` in a savepoint of the next round and returns its result
    /// once that round has committed.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let run = Box::new(move |conn: Result<&Connection, Failure>| -> Reply {
            let outcome = conn
                .map_err(StoreError::from)
                .and_then(|conn| in_savepoint(conn, f).map_err(super::sqlite::classify));
            Box::new(move |commit: Result<(), Failure>| {
                let _ = tx.send(commit.map_err(StoreError::from).and(outcome));
            })
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
        let mut rx = rx;
        match tokio::time::timeout(self.acquire_timeout, &mut rx).await {
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

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("savepoint write")?;
    match f(conn) {
        Ok(value) => {
            conn.execute_batch("release write")?;
            Ok(value)
        }
        Err(err) => {
            // Undo this write only; the round's other writes stand.
            let _ = conn.execute_batch("rollback to write; release write");
            Err(err)
        }
    }
}

/// The writer thread: one round per wake-up, until the store is dropped.
fn run(
    conn: Connection,
    inbox: &mpsc::Receiver<Job>,
    queued: &AtomicUsize,
    busy: &AtomicBool,
    rounds: &AtomicUsize,
    commits: &AtomicU64,
) {
    while let Ok(first) = inbox.recv() {
        let mut round = Vec::with_capacity(MAX_BATCH);
        let mut next = Some(first);
        while let Some(job) = next {
            queued.fetch_sub(1, Ordering::Relaxed);
            let started = job
                .state
                .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if started {
                round.push(job);
            }
            next = if round.len() < MAX_BATCH {
                inbox.try_recv().ok()
            } else {
                None
            };
        }
        if round.is_empty() {
            continue;
        }
        busy.store(true, Ordering::Relaxed);
        rounds.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = conn.execute_batch("begin immediate") {
            let failure = Failure::of(&err);
            for job in round {
                (job.run)(Err(failure.clone()))(Ok(()));
            }
        } else {
            let mut replies: Vec<Reply> = Vec::with_capacity(round.len());
            for job in round {
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| (job.run)(Ok(&conn))));
                match ran {
                    Ok(reply) => replies.push(reply),
                    // A bug in one write: undo it (its caller sees the reply
                    // channel close) and keep the thread and the round.
                    Err(_) => {
                        tracing::error!("a SQLite write panicked; it was rolled back");
                        let _ = conn.execute_batch("rollback to write; release write");
                    }
                }
            }
            let commit = conn.execute_batch("commit").map_err(|err| {
                let failure = Failure::of(&err);
                let _ = conn.execute_batch("rollback");
                failure
            });
            // Before any reply: a read that starts after its write was
            // answered must see the count change (Release pairs with the
            // readers' Acquire).
            commits.fetch_add(1, Ordering::Release);
            for reply in replies {
                reply(commit.clone());
            }
        }
        busy.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many writes at once: those that fail roll back alone, the rest of
    /// their round commits, and every caller gets its own outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_rolls_back_alone_within_its_round() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "create table t (n integer primary key, v text not null check (v <> 'bad'))",
        )
        .unwrap();
        let writer =
            Arc::new(Writer::start(conn, Duration::from_secs(5), Commits::default()).unwrap());
        let calls = (0..200i64).map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let value = if n % 5 == 0 { "bad" } else { "good" };
                writer
                    .write(move |c| {
                        // Two statements: the first must be undone too when
                        // the second fails.
                        c.execute("insert into t (n, v) values (?1, 'x')", [n + 1000])?;
                        c.execute("insert into t (n, v) values (?1, ?2)", (n, value))
                    })
                    .await
            })
        });
        let outcomes = futures::future::join_all(calls).await;
        for (n, outcome) in outcomes.into_iter().enumerate() {
            match outcome.unwrap() {
                Ok(1) => assert_ne!(n % 5, 0, "write {n} should have failed"),
                Ok(other) => panic!("write {n} changed {other} rows"),
                Err(StoreError::Other(_)) => assert_eq!(n % 5, 0, "write {n} failed"),
                Err(e) => panic!("write {n}: {e}"),
            }
        }
        let count: i64 = writer
            .write(|c| c.query_row("select count(*) from t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(count, 2 * 160);
        // The writes shared commits (201 would be one per write).
        let (_, _, rounds) = writer.stats();
        assert!(rounds < 150, "{rounds} rounds for 201 writes");
    }
}
