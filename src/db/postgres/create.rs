//! A create: one insert, or, with an `Idempotency-Key`, one transaction
//! that claims the key, inserts and stores the task for replays.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{
    columns::task_from_row,
    errors::classify,
    statements::{Conn, Statements, aborted_by_stale_statement, query},
};
use crate::db::{
    Created, IdempotentRequest, StoreError, StoreResult, changes::Numbering, idempotency, tasks,
};
use crate::domain::task::TaskInput;

/// Attempts of an idempotent create's transaction: a prepared statement
/// found unusable aborts it (and turns statements off or clears the
/// cache), so a second attempt runs on fresh or unnamed statements; the
/// third is a backstop for a schema change racing the second.
const CREATE_ATTEMPTS: usize = 3;

/// What a create carrying an `Idempotency-Key` stores, and under which key.
#[derive(Clone, Copy)]
pub(super) struct KeyedCreate<'a> {
    pub user_id: &'a str,
    pub input: &'a TaskInput,
    pub now: DateTime<Utc>,
    pub idem: &'a IdempotentRequest,
}

/// A create carrying an `Idempotency-Key` (see [`Store::create_task`](crate::db::Store::create_task)), in
/// one transaction on a write connection, run again from its start when a
/// prepared statement turned out unusable: that statement ran nothing and
/// aborted the transaction, so nothing of the attempt was stored.
pub(super) async fn create_on(
    client: &mut deadpool_postgres::Object,
    statements: &Statements,
    create: KeyedCreate<'_>,
) -> StoreResult<Created> {
    let mut attempt = 1;
    loop {
        match create_once(client, statements, create).await {
            Err(err) if attempt < CREATE_ATTEMPTS && aborted_by_stale_statement(&err) => {
                tracing::debug!(attempt, error = %err, "idempotent create retried after a stale prepared statement");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// One attempt of [`create_on`]. Returning early drops the transaction,
/// which rolls it back.
async fn create_once(
    client: &mut deadpool_postgres::Object,
    statements: &Statements,
    create: KeyedCreate<'_>,
) -> StoreResult<Created> {
    let KeyedCreate {
        user_id,
        input,
        now,
        idem,
    } = create;
    let insert = tasks::insert_task(user_id, input, now, Numbering::InStatement);
    let tx = client.transaction().await.map_err(classify)?;
    query(
        Conn::transaction(&tx, statements),
        &idempotency::expire_idempotency_key(user_id, &idem.key, idem.not_before),
    )
    .await?;
    let claim = idempotency::claim_idempotency_key(user_id, &idem.key, &idem.fingerprint, now);
    let claimed = query(Conn::transaction(&tx, statements), &claim).await;
    match claimed {
        Ok(rows) if !rows.is_empty() => {}
        Ok(_) => {
            // Taken (possibly by a concurrent request that just committed).
            tx.rollback().await.map_err(classify)?;
            let rows = query(
                Conn::new(client, statements),
                &idempotency::select_idempotency_key(user_id, &idem.key),
            )
            .await?;
            return rows.first().map_or(Ok(Created::KeyReused), |row| {
                idempotency::replay(row, &idem.fingerprint).map_err(StoreError::Other)
            });
        }
        Err(e) if is_missing_user(&e) => return Ok(Created::UserMissing),
        Err(e) => return Err(e),
    }
    let task = match created(query(Conn::transaction(&tx, statements), &insert).await)? {
        Created::New(task) => task,
        other => return Ok(other),
    };
    query(
        Conn::transaction(&tx, statements),
        &idempotency::finish_idempotency_key(user_id, &idem.key, &task),
    )
    .await?;
    tx.commit().await.map_err(classify)?;
    Ok(Created::New(task))
}

/// A create's answer from an insert: its row, or the tasks → users
/// foreign key saying the user row is missing.
pub(super) fn created(inserted: StoreResult<Vec<Row>>) -> StoreResult<Created> {
    match inserted {
        // No row: the statement found no user row to take a number from.
        Ok(rows) => Ok(rows
            .first()
            .map(task_from_row)
            .transpose()?
            .map_or(Created::UserMissing, Created::New)),
        Err(e) if is_missing_user(&e) => Ok(Created::UserMissing),
        Err(e) => Err(e),
    }
}

/// Whether the error is the tasks → users foreign key (user row missing).
fn is_missing_user(err: &StoreError) -> bool {
    match err {
        StoreError::Other(e) => e
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code())
            .is_some_and(|c| *c == tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION),
        StoreError::Unavailable(_) => false,
    }
}
