//! The backstop for lost notifications: every [`SWEEP_EVERY`] one query
//! reads the change counter (`users.sync_seq`) of every user with an open
//! stream on this instance, and wakes the streams of those whose counter
//! moved since the last look.
//!
//! Why: a `NOTIFY` is sent after its write commits (`changes.rs` says why),
//! so a change whose notification never went out — its instance died in
//! between, the statement failed, or nobody listens because only a pooled
//! URL is known — would reach other instances' streams only with the
//! user's next change. With the sweep it reaches them within
//! `SWEEP_EVERY` plus one feed read, inside API.md's 1 s. It costs one
//! indexed read per instance per period while streams are open, and a
//! spurious feed read for a user whose change the notification already
//! delivered (the stream then finds nothing new).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::types::Type;

use crate::db::ChangeSignals;

/// How often the counters are read.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Most users named by one statement.
const CHUNK: usize = 1000;

/// Sweeps until aborted.
pub async fn sweep_forever(pool: Pool, signals: Arc<ChangeSignals>) {
    // The counter each user had at the last look. A user seen for the first
    // time is woken once: a notification lost just before the first look
    // would otherwise go unnoticed.
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let users = signals.users();
        seen.retain(|user, _| users.binary_search(user).is_ok());
        for chunk in users.chunks(CHUNK) {
            match tokio::time::timeout(SWEEP_EVERY * 4, counters(&pool, chunk)).await {
                Ok(Ok(counters)) => wake_moved(&signals, &mut seen, chunk, &counters),
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "could not read the change counters");
                }
                Err(_) => tracing::debug!("reading the change counters timed out"),
            }
        }
    }
}

/// The change counters of `users` that still exist.
async fn counters(pool: &Pool, users: &[String]) -> anyhow::Result<HashMap<String, i64>> {
    let client = pool.get().await?;
    let rows = client
        .query_typed(
            "select id, sync_seq from users where id = any($1)",
            &[(&users, Type::TEXT_ARRAY)],
        )
        .await?;
    let counters = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(counters)
}

/// Wakes the users of `chunk` whose counter moved, appeared or vanished (a
/// deleted user's stream then reads and ends).
fn wake_moved(
    signals: &ChangeSignals,
    seen: &mut HashMap<String, i64>,
    chunk: &[String],
    counters: &HashMap<String, i64>,
) {
    for user in chunk {
        let now = counters.get(user).copied().unwrap_or(-1);
        if seen.insert(user.clone(), now) != Some(now) {
            signals.notify(user);
        }
    }
}
