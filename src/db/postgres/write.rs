//! Writes: each on a connection of its own, cancelled on the server past
//! its deadline and its outcome awaited, so a 503 never hides a write that
//! commits later.

use std::time::{Duration, Instant};

use tokio_postgres::Row;

use super::{
    PostgresStore,
    errors::{outcome_unknown, unavailable},
    statements::{Conn, query},
};
use crate::db::{Deadline, StoreError, StoreResult, sql::SqlBuilder};

/// A pooled connection for a write. If the request is abandoned (its time
/// limit fired) while a statement may still be running, dropping this
/// cancels the statement on the server and keeps the connection out of the
/// pool, so a 503 never hides a write that commits later when a lock frees.
pub(super) struct WriteConnection {
    client: Option<deadpool_postgres::Object>,
    armed: bool,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl WriteConnection {
    /// The statements ran to completion: return the connection normally.
    pub(super) fn done(mut self) {
        self.armed = false;
    }
}

impl std::ops::Deref for WriteConnection {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl std::ops::DerefMut for WriteConnection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.client
            .as_mut()
            .unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl Drop for WriteConnection {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(object) = self.client.take() {
            let token = object.cancel_token();
            // Detached from the pool: the cancel can only hit this statement.
            let client = deadpool_postgres::Object::take(object);
            let tls = self.tls.clone();
            tokio::spawn(async move {
                if let Err(err) = token.cancel_query(tls).await {
                    tracing::warn!(error = %err, "could not cancel an abandoned statement");
                }
                drop(client);
            });
        }
    }
}

/// How long a statement past its deadline is cancelled again and again
/// before its connection is given up on (a link that went silent).
const CANCEL_FOR: Duration = Duration::from_secs(2);

/// Cancels what the connection runs, again every 50 ms (a cancel that
/// arrives before the statement started is lost), until the statement
/// ends. `None` after [`CANCEL_FOR`]: the connection does not answer, and
/// the caller must drop it armed, so that it never goes back to the pool.
async fn cancel_until_done<T>(
    token: &tokio_postgres::CancelToken,
    tls: &tokio_postgres_rustls::MakeRustlsConnect,
    mut running: std::pin::Pin<&mut impl std::future::Future<Output = T>>,
) -> Option<T> {
    let give_up = Instant::now() + CANCEL_FOR;
    while Instant::now() < give_up {
        if let Err(err) = tokio::time::timeout(CANCEL_FOR, token.cancel_query(tls.clone()))
            .await
            .unwrap_or_else(|_| Ok(()))
        {
            tracing::warn!(error = %err, "could not cancel a statement past its deadline");
        }
        if let Ok(done) = tokio::time::timeout(Duration::from_millis(50), running.as_mut()).await {
            return Some(done);
        }
    }
    None
}

impl PostgresStore {
    pub(super) async fn writer(&self) -> StoreResult<WriteConnection> {
        Ok(WriteConnection {
            client: Some(self.client().await?),
            armed: true,
            tls: self.tls.clone(),
        })
    }

    /// Runs one write statement on a write connection. Past `by` it is
    /// cancelled on the server and its outcome awaited: it either finished
    /// first (its rows are returned) or was cancelled (503, nothing
    /// written), so the answer always says what happened.
    pub(super) async fn write(&self, b: &SqlBuilder, by: Deadline) -> StoreResult<Vec<Row>> {
        let client = tokio::time::timeout_at(by.0.into(), self.writer())
            .await
            .map_err(|_| {
                unavailable(anyhow::anyhow!(
                    "timed out waiting for a database connection"
                ))
            })??;
        let result = {
            let token = client.cancel_token();
            let running = query(Conn::new(&client, &self.statements), b);
            tokio::pin!(running);
            match tokio::time::timeout_at(by.0.into(), &mut running).await {
                Ok(result) => result,
                Err(_) => match cancel_until_done(&token, &self.tls, running).await {
                    Some(result) => result.map_err(|err| match err {
                        StoreError::Other(cause) => StoreError::Unavailable(
                            cause.context("statement cancelled after its deadline"),
                        ),
                        unavailable => unavailable,
                    }),
                    // It did not end even then (a dead link): dropped armed,
                    // the connection never goes back to the pool.
                    None => return Err(outcome_unknown()),
                },
            }
        };
        client.done();
        result
    }
}
