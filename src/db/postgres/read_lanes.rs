//! Reads on shared, pipelined connections, and the path of every statement
//! that is safe to repeat: run again on another connection while the ones
//! it gets turn out to be dead.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use tokio_postgres::Row;

use super::{
    PostgresStore,
    errors::{connection_lost, unavailable},
    statements::{Conn, query},
};
use crate::db::{Deadline, StoreError, StoreResult, sql::SqlBuilder};

/// Connections that concurrent reads share.
///
/// Why: tokio-postgres pipelines the statements that several tasks issue on
/// one client. Under load they leave in one write and their answers come
/// back together, so PostgreSQL serves several per wake-up and per system
/// call, where a connection checked out per read costs both sides a
/// round trip of system calls and context switches for every statement.
/// A read is one statement in its own implicit transaction and leaves no
/// session state, so sharing cannot mix up requests. Writes keep exclusive
/// connections: they may be cancelled, and a create can run a transaction.
pub(super) struct ReadLanes {
    /// Empty when every read checks out a connection of its own.
    lanes: Vec<Lane>,
    next: AtomicUsize,
}

/// A connection as reads (and other statements safe to repeat) hold it:
/// shared by the reads of a lane, or a read's own. One whose statement
/// overran its deadline is condemned: when the last read using it lets go
/// it is closed, not returned to the pool, where a write would queue
/// behind whatever holds it up.
struct ReadConnection {
    object: Option<deadpool_postgres::Object>,
    condemned: AtomicBool,
}

impl ReadConnection {
    fn new(object: deadpool_postgres::Object) -> Arc<Self> {
        Arc::new(Self {
            object: Some(object),
            condemned: AtomicBool::new(false),
        })
    }
}

impl std::ops::Deref for ReadConnection {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        self.object
            .as_ref()
            .unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl Drop for ReadConnection {
    fn drop(&mut self) {
        if self.condemned.load(Ordering::Relaxed)
            && let Some(object) = self.object.take()
        {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

/// One shared connection: checked out of the pool when first needed (and
/// again after it died or was condemned) and kept.
struct Lane {
    client: Mutex<Option<Arc<ReadConnection>>>,
    /// Held by the one read that checks out a replacement, so that the
    /// reads arriving meanwhile wait for it rather than each opening one.
    refill: tokio::sync::Mutex<()>,
}

impl Lane {
    /// The lane's connection, unless it has none or it died.
    fn live(&self) -> Option<Arc<ReadConnection>> {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|client| !client.is_closed())
    }
}

impl ReadLanes {
    pub(super) fn new(count: usize) -> Self {
        Self {
            lanes: (0..count)
                .map(|_| Lane {
                    client: Mutex::new(None),
                    refill: tokio::sync::Mutex::new(()),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next lane in turn, if there are lanes at all.
    fn pick(&self) -> Option<&Lane> {
        let n = self.lanes.len();
        (n > 0).then(|| &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % n])
    }

    /// Forgets `client` wherever a lane still holds it (it was found dead
    /// or stuck); the next read there checks out a fresh connection.
    fn forget(&self, client: &Arc<ReadConnection>) {
        for lane in &self.lanes {
            let mut slot = lane.client.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref().is_some_and(|held| Arc::ptr_eq(held, client)) {
                *slot = None;
            }
        }
    }
}

/// Whether a statement may run on a shared read connection.
#[derive(Clone, Copy)]
pub(super) enum Sharing {
    Read,
    Write,
}

impl PostgresStore {
    /// A connection for a read: the next lane's (see [`ReadLanes`]),
    /// checking one out for it when it has none or its one died; without
    /// lanes, one of its own.
    async fn read_client(&self) -> StoreResult<Arc<ReadConnection>> {
        let Some(lane) = self.lanes.pick() else {
            return Ok(ReadConnection::new(self.client().await?));
        };
        if let Some(client) = lane.live() {
            return Ok(client);
        }
        let refill = async {
            let _refill = lane.refill.lock().await;
            if let Some(client) = lane.live() {
                return Ok(client);
            }
            let fresh = ReadConnection::new(self.client().await?);
            *lane.client.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&fresh));
            Ok(fresh)
        };
        tokio::time::timeout(self.acquire_timeout, refill)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(anyhow::anyhow!(
                    "timed out waiting for a database connection"
                )))
            })
    }

    /// Runs a statement that is safe to repeat (a read, or an idempotent
    /// upsert) again on another connection while the ones it gets turn out
    /// to be dead (the server restarted, a Neon compute was suspended): after
    /// such an event every pooled connection may be dead, so up to the pool
    /// size plus one attempts. Only plain reads take a shared connection
    /// (`Sharing::Read`): they never wait for a row lock, while an upsert
    /// can, and would hold up every read queued behind it. Past `by` the
    /// call answers 503 and the connection is condemned (see
    /// [`ReadConnection`]).
    pub(super) async fn idempotent(
        &self,
        b: &SqlBuilder,
        sharing: Sharing,
        by: Deadline,
    ) -> StoreResult<Vec<Row>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = match sharing {
                Sharing::Read => self.read_client().await?,
                Sharing::Write => ReadConnection::new(self.client().await?),
            };
            let running = query(Conn::new(&client, &self.statements), b);
            let Ok(outcome) = tokio::time::timeout_at(by.0.into(), running).await else {
                // Stuck (a lock, a half-open link) or just slow: either way
                // the reads queued behind it on this connection would wait
                // too, so later reads get another one.
                client.condemned.store(true, Ordering::Relaxed);
                self.lanes.forget(&client);
                return Err(unavailable(anyhow::anyhow!(
                    "the statement did not finish within its deadline"
                )));
            };
            match outcome {
                Err(StoreError::Unavailable(err))
                    if connection_lost(&err) && attempt <= self.max_size =>
                {
                    self.lanes.forget(&client);
                    tracing::info!(attempt, error = %err, "connection lost; retrying on another");
                }
                other => return other,
            }
        }
    }
}
