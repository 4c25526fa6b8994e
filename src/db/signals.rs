//! Wake-ups for open event streams: "user U's tasks changed, read the feed".
//!
//! A signal carries no change, only a nudge; the stream then reads the feed
//! from where it is. So a signal can be lost, duplicated or merged with the
//! next one without losing or repeating an event, and a slow stream never
//! makes anything queue up here (a `watch` channel holds one value).
//!
//! Who signals: each store after a write commits (at once, for the streams
//! of this process), PostgreSQL's `LISTEN` connection for writes of other
//! instances (and a sweep of the users' change counters for notifications
//! that were lost), and on SQLite a watcher of the file's `data_version`
//! for writes of other processes (it runs the same sweep when the file
//! changed). A source that may have missed signals (the listening
//! connection dropped, a notification was not sent) wakes nobody: the
//! sweep finds the users whose counter moved. Nothing here wakes every
//! stream, which would cost a feed read per open stream at once.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::watch;

/// Most users whose counters one statement of a sweep reads.
const SWEEP_CHUNK: usize = 1000;

/// Users' `(epoch, change counter)`, as a sweep reads them.
pub type Counters = Vec<(String, (i64, i64))>;

/// The streams waiting for changes, by user.
#[derive(Default)]
pub struct ChangeSignals {
    users: Mutex<BTreeMap<String, Waiting>>,
}

/// One user's streams.
struct Waiting {
    wake: watch::Sender<u64>,
    /// The user's `(epoch, change counter)` up to which every stream of the
    /// user has read or been woken; `None` until the first stream's first
    /// read. A sweep ([`ChangeSignals::sweep`]) wakes the streams when the
    /// database's counter differs (a change no signal announced).
    read_to: Option<(i64, i64)>,
}

impl Waiting {
    /// Wakes the user's streams (wake-ups that are not yet seen merge).
    fn nudge(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One stream's registration; dropping it unregisters the stream.
pub struct Subscription {
    signals: Arc<ChangeSignals>,
    user_id: String,
    receiver: Option<watch::Receiver<u64>>,
}

impl ChangeSignals {
    /// Registers a stream for `user_id`, unless `cap` streams of that user
    /// are already registered (the per-user stream limit).
    pub fn subscribe(self: &Arc<Self>, user_id: &str, cap: usize) -> Option<Subscription> {
        let mut users = self.lock();
        let waiting = users.entry(user_id.to_owned()).or_insert_with(|| Waiting {
            wake: watch::channel(0).0,
            read_to: None,
        });
        if waiting.wake.receiver_count() >= cap {
            return None;
        }
        let mut receiver = waiting.wake.subscribe();
        receiver.mark_unchanged();
        Some(Subscription {
            signals: self.clone(),
            user_id: user_id.to_owned(),
            receiver: Some(receiver),
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

    /// How many streams are registered (`/metrics`: `event_streams_open`).
    pub fn streams(&self) -> usize {
        self.lock()
            .values()
            .map(|waiting| waiting.wake.receiver_count())
            .sum()
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

    /// Waits for the next signal (signals that came meanwhile merge).
    pub async fn changed(&mut self) {
        match self.receiver.as_mut() {
            Some(receiver) => {
                if receiver.changed().await.is_err() {
                    // The sender lives as long as a receiver is registered.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut users = self.signals.lock();
        if users
            .get(&self.user_id)
            .is_some_and(|waiting| waiting.wake.receiver_count() == 0)
        {
            users.remove(&self.user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_wakes_only_that_users_streams() {
        let signals = Arc::new(ChangeSignals::default());
        let mut alice = signals.subscribe("alice", 16).unwrap();
        let mut bob = signals.subscribe("bob", 16).unwrap();
        signals.notify("alice");
        alice.changed().await;
        let woke = tokio::time::timeout(std::time::Duration::from_millis(50), bob.changed()).await;
        assert!(woke.is_err(), "bob's stream must not wake");
        signals.notify("bob");
        bob.changed().await;
    }

    /// A database holding `counters`, as a sweep reads it.
    fn database(
        counters: &[(&str, (i64, i64))],
    ) -> impl FnMut(Vec<String>) -> std::future::Ready<Result<Counters, String>> {
        let counters: HashMap<String, (i64, i64)> = counters
            .iter()
            .map(|(user, at)| ((*user).to_owned(), *at))
            .collect();
        move |users| {
            let found = users
                .into_iter()
                .filter_map(|user| counters.get(&user).map(|at| (user, *at)))
                .collect();
            std::future::ready(Ok(found))
        }
    }

    /// Whether the stream was woken since it last looked (without waiting;
    /// outside tokio's budget, which would make the 129th poll of one test
    /// answer "not yet").
    fn woke(stream: &mut Subscription) -> bool {
        let mut changed = Box::pin(tokio::task::unconstrained(stream.changed()));
        let waker = std::task::Waker::noop();
        changed
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
            .is_ready()
    }

    /// One stream for each of `users`, each having read to `(epoch, head)`.
    fn opened<'a>(
        signals: &Arc<ChangeSignals>,
        users: impl IntoIterator<Item = &'a str>,
        (epoch, head): (i64, i64),
    ) -> Vec<Subscription> {
        users
            .into_iter()
            .map(|user| {
                let stream = signals.subscribe(user, 16).unwrap();
                stream.opened_at(epoch, head);
                stream
            })
            .collect()
    }

    /// Which of `streams` were woken since they last looked.
    fn woken(streams: &mut [Subscription]) -> Vec<bool> {
        streams.iter_mut().map(woke).collect()
    }

    /// The sweep wakes a user's streams only when the database is past
    /// what the oldest of them read, and a stream's first read never
    /// raises that mark above an older stream's. A user whose first
    /// stream has not read yet makes the sweep incomplete.
    #[tokio::test]
    async fn the_sweep_wakes_streams_behind_the_database() {
        let signals = Arc::new(ChangeSignals::default());
        let mut old = signals.subscribe("alice", 16).unwrap();
        assert!(
            !signals.sweep(database(&[("alice", (1, 5))])).await,
            "not read yet"
        );
        assert!(!woke(&mut old));
        old.opened_at(1, 5);
        assert!(signals.sweep(database(&[("alice", (1, 5))])).await);
        assert!(!woke(&mut old), "nothing new: no wake");
        let mut new = signals.subscribe("alice", 16).unwrap();
        new.opened_at(1, 6);
        assert!(signals.sweep(database(&[("alice", (1, 6))])).await);
        assert!(woke(&mut old), "the old stream had read only to 5");
        assert!(woke(&mut new));
        signals.sweep(database(&[("alice", (1, 6))])).await;
        assert!(!woke(&mut old), "woken for 6 already");
        signals.sweep(database(&[])).await;
        assert!(woke(&mut old), "the user is gone");
    }

    /// A sweep wakes the streams of the users whose counter moved, not
    /// everyone's; a user gone from the database counts as moved. A chunk
    /// that cannot be read wakes nobody and makes the sweep incomplete.
    #[tokio::test]
    async fn a_sweep_wakes_only_users_whose_counter_moved() {
        let signals = Arc::new(ChangeSignals::default());
        let mut streams = opened(&signals, ["alice", "bob", "carol"], (1, 5));
        let now = [("alice", (1, 5)), ("bob", (1, 6))];
        assert!(signals.sweep(database(&now)).await);
        assert_eq!(
            woken(&mut streams),
            [false, true, true],
            "alice unchanged, bob wrote, carol gone"
        );
        assert!(!signals.sweep(|_| async { Err("unreadable") }).await);
        assert_eq!(woken(&mut streams), [false, false, false]);
        assert!(signals.sweep(database(&now)).await);
        assert_eq!(
            woken(&mut streams),
            [false, false, true],
            "carol's streams until they end"
        );
    }

    /// Every user is looked up once, in chunks of at most `SWEEP_CHUNK`.
    #[tokio::test]
    async fn a_sweep_reads_every_user_once_in_chunks() {
        let signals = Arc::new(ChangeSignals::default());
        let users: Vec<String> = (0..2 * SWEEP_CHUNK + 7).map(|i| format!("u{i}")).collect();
        let mut streams = opened(&signals, users.iter().map(String::as_str), (1, 1));
        let mut asked = Vec::new();
        let complete = signals
            .sweep(|chunk: Vec<String>| {
                assert!(chunk.len() <= SWEEP_CHUNK);
                asked.extend(chunk.iter().cloned());
                let moved = chunk.into_iter().map(|user| (user, (1, 2))).collect();
                std::future::ready(Ok::<_, String>(moved))
            })
            .await;
        assert!(complete);
        asked.sort();
        let mut expected = users.clone();
        expected.sort();
        assert_eq!(asked, expected);
        assert!(woken(&mut streams).into_iter().all(|w| w));
    }

    /// A user deleted and re-created: the new stream's first read is in a
    /// new epoch, and the older streams are woken (they then end).
    #[test]
    fn a_new_epoch_wakes_older_streams() {
        let signals = Arc::new(ChangeSignals::default());
        let mut old = signals.subscribe("alice", 16).unwrap();
        old.opened_at(1, 10);
        let new = signals.subscribe("alice", 16).unwrap();
        new.opened_at(1, 12);
        assert!(!woke(&mut old), "same epoch: no wake");
        new.opened_at(2, 0);
        assert!(woke(&mut old));
    }

    #[test]
    fn the_cap_counts_open_streams_and_drop_frees_them() {
        let signals = Arc::new(ChangeSignals::default());
        let first = signals.subscribe("alice", 2).unwrap();
        let second = signals.subscribe("alice", 2).unwrap();
        assert!(signals.subscribe("alice", 2).is_none());
        assert_eq!(signals.streams(), 2);
        drop(first);
        assert!(signals.subscribe("alice", 2).is_some());
        drop(second);
        assert!(signals.is_idle());
    }
}
