//! The backstop for lost notifications: every [`SWEEP_EVERY`] one query
//! reads the change counter (`users.sync_seq`) of every user with an open
//! stream on this instance, and wakes the streams of those whose counter
//! is past what their streams have read or been woken for
//! ([`ChangeSignals::swept`]).
//!
//! Why: a `NOTIFY` is sent after its write commits (`changes.rs` says why),
//! so a change whose notification never went out — its instance died in
//! between, the statement failed, or nobody listens because only a pooled
//! URL is known — would reach other instances' streams only with the
//! user's next change. With the sweep it reaches them within
//! `SWEEP_EVERY` plus one feed read, inside API.md's 1 s. It costs one
//! indexed read per thousand streaming users per period, and for a user
//! who wrote, one more wake of that user's streams than needed (their read
//! then finds nothing new). Streams are not woken when first seen (that
//! burst cost 1.3 KB of RSS per stream with 10,000 opened at once): a
//! stream's first read records how far it got ([`Subscription::opened_at`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::types::Type;

use crate::db::ChangeSignals;
#[cfg(doc)]
use crate::db::Subscription;

/// How often the counters are read.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Most users named by one statement.
const CHUNK: usize = 1000;

/// Sweeps until aborted.
pub async fn sweep_forever(pool: Pool, signals: Arc<ChangeSignals>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let mut after: Option<String> = None;
        loop {
            let users = signals.users_after(after.as_deref(), CHUNK);
            let Some(last) = users.last() else { break };
            after = Some(last.clone());
            match tokio::time::timeout(SWEEP_EVERY * 4, counters(&pool, &users)).await {
                Ok(Ok(counters)) => {
                    for user in &users {
                        signals.swept(user, counters.get(user).copied());
                    }
                }
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "could not read the change counters");
                }
                Err(_) => tracing::debug!("reading the change counters timed out"),
            }
        }
    }
}

/// The `(epoch, change counter)` of those of `users` that still exist.
async fn counters(pool: &Pool, users: &[String]) -> anyhow::Result<HashMap<String, (i64, i64)>> {
    let client = pool.get().await?;
    let rows = client
        .query_typed(
            "select id, sync_epoch, sync_seq from users where id = any($1)",
            &[(&users, Type::TEXT_ARRAY)],
        )
        .await?;
    let counters = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?))))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(counters)
}
