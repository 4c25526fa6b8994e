//! The change feed on SQLite: the writer takes each write's number in its
//! transaction (one writer, so in commit order), and other processes'
//! commits to the same file wake the event streams.

use std::time::Duration;

use rusqlite::Connection;

use super::{
    SqliteStore,
    statements::{query, query_first},
};
#[cfg(doc)]
use crate::db::ChangeSignals;
use crate::db::{Counters, Deadline, StoreResult, changes, columns::Columns, sql::Dialect};

/// How often the file is checked for other processes' commits (API.md:
/// their changes reach open streams within 1 s).
const OTHER_WRITERS_POLL: Duration = Duration::from_millis(250);

/// Takes the user's next change number in the writer's transaction;
/// `None` when the user row is missing.
pub(super) fn take_number(conn: &Connection, user_id: &str) -> rusqlite::Result<Option<i64>> {
    query_first(conn, &changes::take_number(user_id), |r| r.int("sync_seq"))
}

impl SqliteStore {
    /// Sweeps the streams' users ([`ChangeSignals::sweep`]) whenever the
    /// file's `data_version` moves: another connection committed (another
    /// process, or this one's writer, whose streams were woken already).
    /// Only the streams of users whose counter moved then read the feed:
    /// waking every stream on each commit cost 1.6 CPU cores with 3,000
    /// idle streams and 10 writes a second. Checked even with no stream
    /// open, so the version a new stream's first change is compared
    /// against is never stale. An incomplete sweep is repeated at the next
    /// check, and so is one after the connection was reopened (the new
    /// connection's version says nothing about the old one's).
    pub(super) async fn watch_other_writers(&self) {
        let mut conn = None;
        let mut last = None;
        let mut owed = false;
        let mut tick = tokio::time::interval(OTHER_WRITERS_POLL);
        loop {
            tick.tick().await;
            let readers = self.readers.clone();
            let polled = tokio::task::spawn_blocking(move || {
                let conn = match conn {
                    Some(conn) => conn,
                    None => readers.open_one()?,
                };
                let version: i64 = conn.query_row("pragma data_version", [], |r| r.get(0))?;
                Ok::<_, rusqlite::Error>((conn, version))
            })
            .await;
            match polled {
                Ok(Ok((open, version))) => {
                    conn = Some(open);
                    if owed || last.is_some_and(|v| v != version) {
                        owed = !self.signals.sweep(|users| self.counters(users)).await;
                    }
                    last = Some(version);
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "cannot check the SQLite file for other writers");
                    (conn, owed) = (None, true);
                }
                Err(_) => (conn, owed) = (None, true),
            }
        }
    }

    /// The `(epoch, change counter)` of those of `users` that exist.
    async fn counters(&self, users: Vec<String>) -> StoreResult<Counters> {
        let b = changes::counters(users, Dialect::Sqlite);
        self.read(Deadline::after(OTHER_WRITERS_POLL * 4), move |conn| {
            query(conn, &b, |r| changes::decode_counter(r))
        })
        .await
    }
}
