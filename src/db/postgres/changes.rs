//! How instances sharing one PostgreSQL database tell each other that a
//! user's tasks changed, so every instance's event streams hear of every
//! write: `NOTIFY` on one channel, and one `LISTEN` connection per instance.
//!
//! **Why the `NOTIFY` is sent after the commit, not inside the write.**
//! PostgreSQL serialises the commits of every transaction that notified,
//! under one database-wide lock held through the commit's WAL flush. So a
//! `pg_notify` inside each write turns concurrent commits into a queue:
//! measured here with pgbench at 32 clients, a one-row update went from
//! 3,330 to 370–460 transactions per second (−86%) once it also called
//! `pg_notify`. Sent after the commit by one task per instance, many
//! users per statement, the notification costs the writes nothing, and it
//! cannot announce a change that then rolls back. The price: an instance
//! that dies between a commit and its notification sends none, and other
//! instances' streams hear of that change from `sweep.rs` instead (within
//! half a second); the change feed itself is unaffected.
//!
//! The payload is `<instance>:<user id>`; an instance skips its own, whose
//! streams it woke already. A notification that is not sent (the queue
//! overflowed, the statement failed) or not heard (the listening
//! connection was down) is not made up for here: the sweep (`sweep.rs`)
//! finds that user's counter moved and wakes only that user's streams.
//! Waking every stream instead would be a burst of one feed read per open
//! stream, under load or after each reconnect.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, types::Type};

use super::tls::PgConnectSettings;
use crate::db::ChangeSignals;

/// The channel every instance notifies and listens on.
const CHANNEL: &str = "tasks_api_changes";
/// Users queued for notification; beyond that, changes are left to the
/// sweep.
const QUEUE: usize = 4096;
/// Most users named by one `NOTIFY` statement.
const BATCH: usize = 256;
/// How long the first change of a batch waits for others to join it:
/// streams on other instances hear of a change this much later (API.md
/// allows 1 s); a write costs a `NOTIFY` transaction the less.
const GATHER: Duration = Duration::from_millis(10);
/// The listener's `application_name` when the URL names none; one it does
/// name gets " listener" appended, so it can be found in `pg_stat_activity`.
const LISTENER_NAME: &str = "tasks-api listener";

/// Sends this instance's changes to the other instances.
pub struct Notifier {
    queue: mpsc::Sender<String>,
    /// This instance's id, the payload's prefix.
    pub instance: String,
}

impl Notifier {
    /// Starts the task that sends the notifications, on connections from
    /// `pool` (a transaction pooler is fine: `NOTIFY` is one statement).
    pub fn start(pool: Pool) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let instance = format!("{:016x}", rand::random::<u64>());
        tokio::spawn(send_forever(pool, receiver, instance.clone()));
        Self { queue, instance }
    }

    /// Queues a notification that `user_id`'s tasks changed (after commit);
    /// with the queue full, the sweep tells the other instances instead.
    pub fn changed(&self, user_id: &str) {
        let _ = self.queue.try_send(user_id.to_owned());
    }
}

async fn send_forever(pool: Pool, mut receiver: mpsc::Receiver<String>, instance: String) {
    let sql = format!("select pg_notify('{CHANNEL}', p) from unnest($1::text[]) as p");
    let mut users = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut users, BATCH).await > 0 {
        // Each `NOTIFY` is a transaction of its own, and notifying commits
        // queue on one lock: gathering the changes of a few milliseconds
        // into one statement keeps that off the writes' throughput.
        tokio::time::sleep(GATHER).await;
        while users.len() < BATCH
            && let Ok(user) = receiver.try_recv()
        {
            users.push(user);
        }
        users.sort_unstable();
        users.dedup();
        let payloads: Vec<String> = users.drain(..).map(|u| format!("{instance}:{u}")).collect();
        let sent = async {
            let client = pool.get().await.map_err(anyhow::Error::new)?;
            client
                .query_typed(&sql, &[(&payloads, Type::TEXT_ARRAY)])
                .await
                .map_err(anyhow::Error::new)
        };
        if let Err(err) = tokio::time::timeout(Duration::from_secs(5), sent)
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
        {
            // Other instances' streams hear of it from the sweep (sweep.rs).
            tracing::warn!(error = %err, "could not notify other instances of changes");
        }
    }
}

/// Listens for other instances' changes until aborted, reconnecting with
/// backoff. Notifications sent while nobody listened are lost; the sweep
/// (`sweep.rs`) wakes the streams of the users they were about.
pub async fn relay_forever(settings: &PgConnectSettings, signals: &ChangeSignals, instance: &str) {
    let mut delay = Duration::from_millis(100);
    loop {
        match listen(settings, signals, instance).await {
            Ok(()) => {
                tracing::warn!("the listening connection closed; reconnecting");
                delay = Duration::from_millis(100);
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "cannot listen for other instances' changes");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One listening connection, until it drops.
async fn listen(
    settings: &PgConnectSettings,
    signals: &ChangeSignals,
    instance: &str,
) -> anyhow::Result<()> {
    let mut config = settings.config.clone();
    let name = match config.get_application_name() {
        Some(name) => format!("{name} listener"),
        None => LISTENER_NAME.to_owned(),
    };
    config.application_name(&name);
    let connecting = config.connect(settings.tls.clone());
    let (client, mut connection) = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting"))??;
    let own = format!("{instance}:");
    let messages = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    let payload = note.payload();
                    if payload.starts_with(&own) {
                        continue;
                    }
                    if let Some((_, user)) = payload.split_once(':') {
                        signals.notify(user);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(anyhow::Error::new(err)),
                None => return Ok(()),
            }
        }
    };
    tokio::pin!(messages);
    let listen = format!("listen {CHANNEL}");
    tokio::select! {
        listening = client.batch_execute(&listen) => listening?,
        ended = &mut messages => return ended,
    }
    tracing::info!("listening for other instances' changes");
    let ended = messages.await;
    drop(client);
    ended
}
