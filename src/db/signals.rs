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
//! for writes of other processes. When a source may have missed signals (the
//! listening connection dropped), it wakes every stream.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::watch;

/// The streams waiting for changes, by user.
#[derive(Default)]
pub struct ChangeSignals {
    users: Mutex<HashMap<String, watch::Sender<u64>>>,
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
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = users
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(0).0);
        if sender.receiver_count() >= cap {
            return None;
        }
        let mut receiver = sender.subscribe();
        receiver.mark_unchanged();
        Some(Subscription {
            signals: self.clone(),
            user_id: user_id.to_owned(),
            receiver: Some(receiver),
        })
    }

    /// Wakes the streams of `user_id`, if any.
    pub fn notify(&self, user_id: &str) {
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = users.get(user_id) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every stream: a source of signals may have missed some.
    pub fn notify_all(&self) {
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        for sender in users.values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// The users with a registered stream, sorted (the PostgreSQL sweep
    /// for lost notifications reads their change counters).
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = {
            let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
            users.keys().cloned().collect()
        };
        users.sort_unstable();
        users
    }

    /// How many streams are registered (`/metrics`: `event_streams_open`).
    pub fn streams(&self) -> usize {
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        users.values().map(watch::Sender::receiver_count).sum()
    }

    /// Whether no stream is registered (the unit tests' check that a
    /// dropped subscription leaves no entry behind).
    #[cfg(test)]
    fn is_idle(&self) -> bool {
        self.users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

impl Subscription {
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
        let mut users = self
            .signals
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if users
            .get(&self.user_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
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
        signals.notify_all();
        bob.changed().await;
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
