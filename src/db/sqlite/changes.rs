//! The change feed on SQLite: the writer takes each write's number in its
//! transaction (one writer, so in commit order), and other processes'
//! commits to the same file wake the event streams.

use std::time::Duration;

use rusqlite::Connection;

use super::{SqliteStore, statements::query_first};
use crate::db::{changes, columns::Columns};

/// How often the file is checked for other processes' commits (API.md:
/// their changes reach open streams within 1 s).
const OTHER_WRITERS_POLL: Duration = Duration::from_millis(250);

/// Takes the user's next change number in the writer's transaction;
/// `None` when the user row is missing.
pub(super) fn take_number(conn: &Connection, user_id: &str) -> rusqlite::Result<Option<i64>> {
    query_first(conn, &changes::take_number(user_id), |r| r.int("sync_seq"))
}

impl SqliteStore {
    /// Wakes every stream whenever the file's `data_version` moves: another
    /// connection committed (another process, or this one's writer, whose
    /// streams were woken already and then read nothing new). Checked even
    /// with no stream open, so the version a new stream's first change is
    /// compared against is never stale.
    pub(super) async fn watch_other_writers(&self) {
        let mut conn = None;
        let mut last = None;
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
                    if last.is_some_and(|v| v != version) {
                        self.signals.notify_all();
                    }
                    last = Some(version);
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "cannot check the SQLite file for other writers");
                    conn = None;
                }
                Err(_) => conn = None,
            }
        }
    }
}
