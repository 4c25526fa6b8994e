//! The backstop for lost notifications: every [`SWEEP_EVERY`] a sweep
//! ([`ChangeSignals::sweep`]) reads the change counter (`users.sync_seq`)
//! of every user with an open stream on this instance, and wakes the
//! streams of those whose counter is past what their streams have read or
//! been woken for.
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

use std::time::Duration;

use super::{PostgresStore, read_lanes::Sharing};
#[cfg(doc)]
use crate::db::{ChangeSignals, Subscription};
use crate::db::{
    Counters, Deadline, StoreError, StoreResult,
    changes::{counters, decode_counter},
    columns::RowResult,
    sql::Dialect,
};

/// How often the counters are read.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

impl PostgresStore {
    /// Sweeps until aborted.
    pub(super) async fn sweep_forever(&self) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // An incomplete sweep is simply repeated at the next tick.
            self.signals.sweep(|users| self.counters(users)).await;
        }
    }

    /// The `(epoch, change counter)` of those of `users` that exist.
    async fn counters(&self, users: Vec<String>) -> StoreResult<Counters> {
        let b = counters(users, Dialect::Postgres);
        let rows = self
            .idempotent(&b, Sharing::Read, Deadline::after(SWEEP_EVERY * 4))
            .await?;
        rows.iter()
            .map(decode_counter)
            .collect::<RowResult<_>>()
            .map_err(StoreError::Other)
    }
}
