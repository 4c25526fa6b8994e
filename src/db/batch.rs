//! Requests that share one database round: the queue behind PostgreSQL's
//! batched creates.
//!
//! Why: under load most of a create's cost in PostgreSQL is its own
//! transaction (a commit that waits for the WAL to reach the disk, a round
//! trip, a wake-up). Creates that arrive while others are being written
//! wait here, and the next round takes all of them (up to `max_batch`) and
//! writes them together. At most `runners` rounds run at once; with no
//! contention a round holds one create and costs what it did alone.
//!
//! A job whose caller gave up before its round took it is skipped, so a
//! request answered with an error never writes later. A caller that gives
//! up while its round runs marks its job abandoned and wakes the round,
//! which then cancels what it has in flight (see [`Round::abandoned`]).

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    time::Duration,
};

use std::time::Instant;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;
const ABANDONED: u8 = 3;

/// What a round does with its jobs; it must answer every one of them.
pub(super) type RunRound<I, O> =
    Arc<dyn Fn(Round<I, O>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Why a job got no answer from a round.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NotRun {
    /// No round took it within the wait limit; it never will.
    TimedOut,
    /// Its round ended without answering (it panicked).
    Lost,
}

/// One queued request.
pub(super) struct Job<I, O> {
    pub input: I,
    /// When the caller's time budget started (its request's start).
    pub started: Instant,
    state: Arc<AtomicU8>,
    reply: oneshot::Sender<O>,
}

impl<I, O> Job<I, O> {
    /// Sends the job's outcome to its caller (if it still listens).
    pub fn answer(self, outcome: O) {
        let _ = self.reply.send(outcome);
    }

    /// True once the caller stopped waiting for this job's round.
    pub fn is_abandoned(&self) -> bool {
        self.state.load(Ordering::Acquire) == ABANDONED
    }
}

/// The jobs one round took, and the signal their callers raise when they
/// stop waiting.
pub(super) struct Round<I, O> {
    pub jobs: Vec<Job<I, O>>,
    abandoned: Arc<Notify>,
}

impl<I, O> Round<I, O> {
    /// Takes the jobs for which `late` holds out of the round.
    pub fn remove_where(&mut self, late: impl Fn(&Job<I, O>) -> bool) -> Vec<Job<I, O>> {
        let (removed, kept) = std::mem::take(&mut self.jobs).into_iter().partition(late);
        self.jobs = kept;
        removed
    }

    /// Resolves once a caller of this round's jobs stopped waiting.
    pub async fn abandoned(&self) {
        loop {
            let notified = self.abandoned.notified();
            tokio::pin!(notified);
            // Registered before the check, so a caller leaving between the
            // check and the wait still wakes us.
            notified.as_mut().enable();
            if self.jobs.iter().any(Job::is_abandoned) {
                return;
            }
            notified.await;
        }
    }
}

/// The queue and its rounds.
pub(super) struct Batcher<I, O> {
    queue: Mutex<VecDeque<Job<I, O>>>,
    runners: Arc<Semaphore>,
    max_batch: usize,
    run: RunRound<I, O>,
    abandoned: Arc<Notify>,
    /// Rounds run so far (tests check that concurrent jobs share them).
    rounds: AtomicUsize,
}

/// Marks a job cancelled (still queued) or abandoned (its round runs) when
/// its caller stops waiting before the answer came.
struct Waiting<'a> {
    state: &'a AtomicU8,
    abandoned: &'a Notify,
    answered: bool,
}

impl Waiting<'_> {
    /// True when the job had not started and now never will.
    fn cancel(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered && !self.cancel() {
            self.state.store(ABANDONED, Ordering::Release);
            self.abandoned.notify_waiters();
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// A queue whose rounds run `run`, at most `runners` at once, each with
    /// at most `max_batch` jobs.
    pub fn new(runners: usize, max_batch: usize, run: RunRound<I, O>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            runners: Arc::new(Semaphore::new(runners.max(1))),
            max_batch: max_batch.max(1),
            run,
            abandoned: Arc::new(Notify::new()),
            rounds: AtomicUsize::new(0),
        })
    }

    /// Rounds run so far.
    #[cfg(test)]
    pub fn rounds(&self) -> usize {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Queues `input` and waits for its round's answer. A job no round has
    /// taken after `wait` is withdrawn ([`NotRun::TimedOut`]); once taken,
    /// the caller waits for the round, which bounds its own time.
    pub async fn submit(
        self: &Arc<Self>,
        input: I,
        started: Instant,
        wait: Duration,
    ) -> Result<O, NotRun> {
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (reply, answer) = oneshot::channel();
        self.lock().push_back(Job {
            input,
            started,
            state: Arc::clone(&state),
            reply,
        });
        if let Ok(permit) = Arc::clone(&self.runners).try_acquire_owned() {
            tokio::spawn(Arc::clone(self).drain(permit));
        }
        let mut waiting = Waiting {
            state: &state,
            abandoned: &self.abandoned,
            answered: false,
        };
        tokio::pin!(answer);
        let outcome = match tokio::time::timeout(wait, &mut answer).await {
            Ok(outcome) => outcome,
            Err(_) if waiting.cancel() => {
                waiting.answered = true;
                return Err(NotRun::TimedOut);
            }
            Err(_) => answer.await,
        };
        waiting.answered = true;
        outcome.map_err(|_| NotRun::Lost)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job<I, O>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to `max_batch` queued jobs whose callers still wait, each marked
    /// started; the cancelled ones are dropped on the way.
    fn take(&self) -> Vec<Job<I, O>> {
        let mut queue = self.lock();
        let mut jobs = Vec::new();
        while jobs.len() < self.max_batch {
            let Some(job) = queue.pop_front() else { break };
            if job
                .state
                .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                jobs.push(job);
            }
        }
        jobs
    }

    /// Runs rounds while jobs are queued, holding one runner permit.
    async fn drain(self: Arc<Self>, mut permit: OwnedSemaphorePermit) {
        loop {
            let jobs = self.take();
            if jobs.is_empty() {
                drop(permit);
                // A job queued after `take` whose caller found every permit
                // taken would otherwise wait for the next caller.
                if self.lock().is_empty() {
                    return;
                }
                match Arc::clone(&self.runners).try_acquire_owned() {
                    Ok(again) => {
                        permit = again;
                        continue;
                    }
                    Err(_) => return,
                }
            }
            self.rounds.fetch_add(1, Ordering::Relaxed);
            (self.run)(Round {
                jobs,
                abandoned: Arc::clone(&self.abandoned),
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batcher whose rounds answer each job with (input, round size),
    /// after `hold`.
    fn sizes(runners: usize, max_batch: usize, hold: Duration) -> Arc<Batcher<u32, (u32, usize)>> {
        Batcher::new(
            runners,
            max_batch,
            Arc::new(move |round: Round<u32, (u32, usize)>| {
                Box::pin(async move {
                    tokio::time::sleep(hold).await;
                    let n = round.jobs.len();
                    for job in round.jobs {
                        let input = job.input;
                        job.answer((input, n));
                    }
                })
            }),
        )
    }

    #[tokio::test]
    async fn jobs_queued_behind_a_round_share_the_next_one() {
        let batcher = sizes(1, 64, Duration::from_millis(50));
        let calls: Vec<_> = (0..20)
            .map(|i| {
                let b = Arc::clone(&batcher);
                tokio::spawn(
                    async move { b.submit(i, Instant::now(), Duration::from_secs(5)).await },
                )
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap().unwrap());
        }
        // Every job got its own input back.
        assert!(answers.iter().enumerate().all(|(i, a)| a.0 == i as u32));
        // One runner: the first round may take few, the rest wait together.
        assert!(batcher.rounds() <= 3, "{} rounds", batcher.rounds());
        assert!(answers.iter().any(|a| a.1 > 1));
    }

    #[tokio::test]
    async fn rounds_take_at_most_max_batch() {
        let batcher = sizes(1, 4, Duration::from_millis(20));
        let calls: Vec<_> = (0..13)
            .map(|i| {
                let b = Arc::clone(&batcher);
                tokio::spawn(
                    async move { b.submit(i, Instant::now(), Duration::from_secs(5)).await },
                )
            })
            .collect();
        for call in calls {
            let (_, size) = call.await.unwrap().unwrap();
            assert!(size <= 4);
        }
        assert!(batcher.rounds() >= 4);
    }

    #[tokio::test]
    async fn a_job_no_round_takes_in_time_is_withdrawn_and_never_runs() {
        let ran = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&ran);
        let batcher: Arc<Batcher<u32, u32>> = Batcher::new(
            1,
            1,
            Arc::new(move |round: Round<u32, u32>| {
                let seen = Arc::clone(&seen);
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    for job in round.jobs {
                        seen.fetch_add(1, Ordering::Relaxed);
                        let input = job.input;
                        job.answer(input);
                    }
                })
            }),
        );
        let b = Arc::clone(&batcher);
        let first =
            tokio::spawn(async move { b.submit(1, Instant::now(), Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The only runner is busy for 300 ms: this one gives up after 50.
        assert_eq!(
            batcher
                .submit(2, Instant::now(), Duration::from_millis(50))
                .await,
            Err(NotRun::TimedOut)
        );
        assert_eq!(first.await.unwrap(), Ok(1));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(ran.load(Ordering::Relaxed), 1, "the withdrawn job ran");
    }

    #[tokio::test]
    async fn a_caller_leaving_a_running_round_wakes_it() {
        let woke = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&woke);
        let batcher: Arc<Batcher<u32, u32>> = Batcher::new(
            1,
            8,
            Arc::new(move |round: Round<u32, u32>| {
                let seen = Arc::clone(&seen);
                Box::pin(async move {
                    tokio::select! {
                        () = round.abandoned() => { seen.fetch_add(1, Ordering::Relaxed); }
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    for job in round.jobs {
                        let input = job.input;
                        job.answer(input);
                    }
                })
            }),
        );
        let b = Arc::clone(&batcher);
        let leaving =
            tokio::spawn(async move { b.submit(1, Instant::now(), Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        leaving.abort();
        let start = std::time::Instant::now();
        while woke.load(Ordering::Relaxed) == 0 && start.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(woke.load(Ordering::Relaxed), 1);
        // The runner is free again.
        assert_eq!(
            batcher
                .submit(2, Instant::now(), Duration::from_secs(1))
                .await,
            Ok(2)
        );
    }
}
