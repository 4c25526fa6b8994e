//! Wake-ups for open event streams: "user U's tasks changed, read the feed".
//!
//! A signal carries no change, only a nudge; the stream then reads the feed
//! from where it is. So a signal can be lost, duplicated or merged with the
//! next one without losing or repeating an event, and a slow stream never
//! makes anything queue up here (a user's signals are one counter).
//!
//! Who signals: each store after a write commits (at once, for the streams
//! of this process), PostgreSQL's `LISTEN` connection for writes of other
//! instances (and a sweep of the users' change counters for notifications
//! that were lost), and on SQLite a watcher of the file's `data_version`
//! for writes of other processes (it runs the same sweep when the file
//! changed). A source that may have missed signals (the listening
//! connection dropped, a notification was not sent) wakes nobody: the
//! sweep finds the users whose counter moved. Nothing but shutdown
//! ([`ChangeSignals::close`]) wakes every stream, which would cost a feed
//! read per open stream at once.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::sync::Notify;

/// Most users whose counters one statement of a sweep reads.
const SWEEP_CHUNK: usize = 1000;

/// Users' `(epoch, change counter)`, as a sweep reads them.
pub type Counters = Vec<(String, (i64, i64))>;

/// The streams waiting for changes, by user.
#[derive(Default)]
pub struct ChangeSignals {
    users: Mutex<BTreeMap<String, Waiting>>,
    /// The server is stopping: every stream ends (see [`Self::close`]).
    closed: AtomicBool,
}

/// One user's streams.
struct Waiting {
    nudges: Arc<Nudges>,
    /// How many streams of the user are registered (the per-user cap).
    streams: usize,
    /// The user's `(epoch, change counter)` up to which every stream of the
    /// user has read or been woken; `None` until the first stream's first
    /// read. A sweep ([`ChangeSignals::sweep`]) wakes the streams when the
    /// database's counter differs (a change no signal announced).
    read_to: Option<(i64, i64)>,
}

impl Waiting {
    /// Wakes the user's streams (wake-ups that are not yet seen merge).
    fn nudge(&self) {
        self.nudges.count.fetch_add(1, Ordering::AcqRel);
        self.nudges.notify.notify_waiters();
    }
}

/// A user's wake-ups so far, which each stream compares with the count it
/// last saw. Not a `watch` channel, which holds nine notifiers: a user's
/// registration took ~450 bytes with one and ~170 with this (heaptrack,
/// 2,000 users; bench/README.md "What an idle stream holds").
#[derive(Default)]
struct Nudges {
    count: AtomicU64,
    notify: Notify,
}

/// One stream's registration; dropping it unregisters the stream.
pub struct Subscription {
    signals: Arc<ChangeSignals>,
    user_id: String,
    nudges: Arc<Nudges>,
    /// The count of wake-ups this stream has seen.
    seen: u64,
}

impl ChangeSignals {
    /// Registers a stream for `user_id`, unless `cap` streams of that user
    /// are already registered (the per-user stream limit).
    pub fn subscribe(self: &Arc<Self>, user_id: &str, cap: usize) -> Option<Subscription> {
        let mut users = self.lock();
        let waiting = users.entry(user_id.to_owned()).or_insert_with(|| Waiting {
            nudges: Arc::default(),
            streams: 0,
            read_to: None,
        });
        if waiting.streams >= cap {
            return None;
        }
        waiting.streams += 1;
        Some(Subscription {
            signals: self.clone(),
            user_id: user_id.to_owned(),
            nudges: waiting.nudges.clone(),
            seen: waiting.nudges.count.load(Ordering::Acquire),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Waiting>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the streams of `user_id`, if any.
    pub fn notify(&self, user_id: &str) {
        if let Some(waiting) = self.lock().get(user_id) {
            waiting.nudge();
        }
    }

    /// Ends every stream: the server is stopping. A waiting stream is
    /// woken, sees [`Subscription::closed`] and ends without reading the
    /// feed; one that is reading ends at its next wait. Here
    /// rather than a shutdown channel of its own in every stream, whose
    /// wait would cost another ~130 bytes (bench/README.md "What an idle
    /// stream holds").
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for waiting in self.lock().values() {
            waiting.nudge();
        }
    }

    /// How many streams are registered (`/metrics`: `event_streams_open`).
    pub fn streams(&self) -> usize {
        self.lock().values().map(|waiting| waiting.streams).sum()
    }

    /// One sweep: reads, [`SWEEP_CHUNK`] users a call to `counters`, the
    /// `(epoch, change counter)` of every user whose streams have read, and
    /// wakes the streams of those the database is past: changes no signal
    /// announced (PostgreSQL: a lost notification; SQLite: another
    /// process's write). Only those users' streams then read the feed, not
    /// every stream.
    ///
    /// Whether the sweep was complete: `false` when a chunk could not be
    /// read, or a user's first stream had not finished its first read (its
    /// mark is not known yet, so a change just before it could go unseen).
    /// A caller that sweeps only when something changed (SQLite) must then
    /// sweep again; PostgreSQL sweeps every half second anyway.
    pub async fn sweep<F, E>(&self, mut counters: impl FnMut(Vec<String>) -> F) -> bool
    where
        F: Future<Output = Result<Counters, E>>,
        E: std::fmt::Display,
    {
        let mut complete = !self.lock().values().any(|w| w.read_to.is_none());
        let mut after: Option<String> = None;
        loop {
            let users = self.users_after(after.as_deref(), SWEEP_CHUNK);
            let Some(last) = users.last() else {
                return complete;
            };
            after = Some(last.clone());
            match counters(users.clone()).await {
                Ok(found) => self.swept(&users, &found.into_iter().collect()),
                Err(err) => {
                    tracing::debug!(error = %err, "could not read the change counters");
                    complete = false;
                }
            }
        }
    }

    /// Up to `n` users after `after` (in order) whose streams have read, for
    /// the sweep to look up.
    fn users_after(&self, after: Option<&str>, n: usize) -> Vec<String> {
        let users = self.lock();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        users
            .range::<str, _>((from, Bound::Unbounded))
            .filter(|(_, waiting)| waiting.read_to.is_some())
            .take(n)
            .map(|(user, _)| user.clone())
            .collect()
    }

    /// A chunk's finding: the `(epoch, counter)` in the database of those
    /// of `users` that exist (a missing one is gone). Streams behind it are
    /// woken.
    fn swept(&self, users: &[String], found: &HashMap<String, (i64, i64)>) {
        let mut registered = self.lock();
        for user in users {
            let Some(waiting) = registered.get_mut(user) else {
                continue;
            };
            let now = found.get(user).copied();
            if waiting.read_to.is_some() && waiting.read_to != now {
                waiting.read_to = now.or(waiting.read_to);
                waiting.nudge();
            }
        }
    }

    /// Whether no stream is registered (the unit tests' check that a
    /// dropped subscription leaves no entry behind).
    #[cfg(test)]
    fn is_idle(&self) -> bool {
        self.lock().is_empty()
    }
}

impl Subscription {
    /// The stream's first read reached `(epoch, head)`: with no stream of
    /// the user before, the sweep starts from there; otherwise the lower of
    /// the two stays, since an older stream may not have read as far. A
    /// new epoch (the user was deleted and re-created) wakes the older
    /// streams, which then end: the sweep, now comparing against the new
    /// epoch, would not.
    pub fn opened_at(&self, epoch: i64, head: i64) {
        let mut users = self.signals.lock();
        if let Some(waiting) = users.get_mut(&self.user_id) {
            waiting.read_to = match waiting.read_to {
                Some((e, seen)) if e == epoch => Some((e, seen.min(head))),
                Some(_) => {
                    waiting.nudge();
                    Some((epoch, head))
                }
                None => Some((epoch, head)),
            };
        }
    }

    /// The user this stream is for.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Whether the server is stopping: the stream must end.
    pub fn closed(&self) -> bool {
        self.signals.closed.load(Ordering::Acquire)
    }

    /// Waits for the next signal (signals that came meanwhile merge).
    pub async fn changed(&mut self) {
        loop {
            // Created before the count is read: a nudge after that read
            // completes it (tokio's `Notify::notify_waiters` contract).
            let notified = self.nudges.notify.notified();
            let count = self.nudges.count.load(Ordering::Acquire);
            if count != self.seen {
                self.seen = count;
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut users = self.signals.lock();
        if let Some(waiting) = users.get_mut(&self.user_id) {
            waiting.streams -= 1;
            if waiting.streams == 0 {
                users.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
