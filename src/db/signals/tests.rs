//! The signals' unit tests: waking, sweeping, the per-user cap.

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

/// Shutdown wakes every stream, and each sees that it must end.
#[test]
fn close_wakes_every_stream() {
    let signals = Arc::new(ChangeSignals::default());
    let mut streams = opened(&signals, ["alice", "bob"], (1, 1));
    assert_eq!(woken(&mut streams), [false, false]);
    signals.close();
    assert_eq!(woken(&mut streams), [true, true]);
    assert!(streams.iter().all(Subscription::closed));
}
