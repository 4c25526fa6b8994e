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
            waiting.wake.send_modify(|n| *n = n.wrapping_add(1));
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
    /// every stream. A chunk that cannot be read waits for the next sweep.
    pub async fn sweep<F, E>(&self, mut counters: impl FnMut(Vec<String>) -> F)
    where
        F: Future<Output = Result<Vec<(String, (i64, i64))>, E>>,
        E: std::fmt::Display,
    {
        let mut after: Option<String> = None;
        loop {
            let users = self.users_after(after.as_deref(), SWEEP_CHUNK);
            let Some(last) = users.last() else { return };
            after = Some(last.clone());
            match counters(users.clone()).await {
                Ok(found) => {
                    let found: HashMap<_, _> = found.into_iter().collect();
                    for user in &users {
                        self.swept(user, found.get(user).copied());
                    }
                }
                Err(err) => tracing::debug!(error = %err, "could not read the change counters"),
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

    /// The sweep's finding: `user_id`'s `(epoch, counter)` in the database
    /// (`None`: the user is gone). Streams behind it are woken.
    fn swept(&self, user_id: &str, now: Option<(i64, i64)>) {
        let mut users = self.lock();
        let Some(waiting) = users.get_mut(user_id) else {
            return;
        };
        if waiting.read_to.is_some() && waiting.read_to != now {
            waiting.read_to = now.or(waiting.read_to);
            waiting.wake.send_modify(|n| *n = n.wrapping_add(1));
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
    /// the two stays, since an older stream may not have read as far.
    pub fn opened_at(&self, epoch: i64, head: i64) {
        let mut users = self.signals.lock();
        if let Some(waiting) = users.get_mut(&self.user_id) {
            waiting.read_to = match waiting.read_to {
                Some((e, seen)) if e == epoch => Some((e, seen.min(head))),
                _ => Some((epoch, head)),
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

    /// The sweep wakes a user's streams only when the database is past
    /// what the oldest of them read, and a stream's first read never
    /// raises that mark above an older stream's.
    #[tokio::test]
    async fn the_sweep_wakes_streams_behind_the_database() {
        let signals = Arc::new(ChangeSignals::default());
        let mut old = signals.subscribe("alice", 16).unwrap();
        assert!(signals.users_after(None, 10).is_empty(), "not read yet");
        old.opened_at(1, 5);
        signals.swept("alice", Some((1, 5)));
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), old.changed());
        assert!(quiet.await.is_err(), "nothing new: no wake");
        let new = signals.subscribe("alice", 16).unwrap();
        new.opened_at(1, 6);
        assert_eq!(signals.users_after(None, 10), ["alice"]);
        signals.swept("alice", Some((1, 6)));
        old.changed().await;
        signals.swept("alice", None);
        old.changed().await;
    }

    /// A sweep wakes the streams of the users whose counter moved, not
    /// everyone's; a user gone from the database counts as moved, and a
    /// chunk that cannot be read wakes nobody.
    #[tokio::test]
    async fn a_sweep_wakes_only_users_whose_counter_moved() {
        let signals = Arc::new(ChangeSignals::default());
        let mut streams: Vec<_> = ["alice", "bob", "carol"]
            .into_iter()
            .map(|user| {
                let stream = signals.subscribe(user, 16).unwrap();
                stream.opened_at(1, 5);
                stream
            })
            .collect();
        let database = |users: Vec<String>| async move {
            Ok::<_, String>(
                users
                    .into_iter()
                    .filter(|user| user != "carol")
                    .map(|user| {
                        let seq = if user == "bob" { 6 } else { 5 };
                        (user, (1, seq))
                    })
                    .collect(),
            )
        };
        signals.sweep(database).await;
        let woke = |stream: &mut Subscription| {
            let mut changed = Box::pin(stream.changed());
            let waker = std::task::Waker::noop();
            changed
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
                .is_ready()
        };
        let woken: Vec<bool> = streams.iter_mut().map(woke).collect();
        assert_eq!(
            woken,
            [false, true, true],
            "alice unchanged, bob wrote, carol gone"
        );
        signals.sweep(|_| async { Err("unreadable") }).await;
        let woken: Vec<bool> = streams.iter_mut().map(woke).collect();
        assert_eq!(woken, [false, false, false]);
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
