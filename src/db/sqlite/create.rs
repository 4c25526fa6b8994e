//! A create under an `Idempotency-Key`: the key's claim, the insert and the
//! stored replay in one writer transaction, so concurrent retries create
//! exactly one task and a replay answers what the first create answered.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::{
    SqliteStore,
    errors::is_missing_user,
    statements::{query, query_first},
};
use crate::db::{Created, Deadline, IdempotentRequest, StoreResult, idempotency};

impl SqliteStore {
    /// Runs `insert` (which takes the change number and inserts the task)
    /// inside the key's transaction, unless the key was used before.
    pub(super) async fn create_keyed(
        &self,
        user_id: &str,
        idem: &IdempotentRequest,
        now: DateTime<Utc>,
        insert: impl FnOnce(&Connection) -> rusqlite::Result<Created> + Send + 'static,
        by: Deadline,
    ) -> StoreResult<Created> {
        let (user_id, key) = (user_id.to_owned(), idem.key.clone());
        let expire = idempotency::expire_idempotency_key(&user_id, &key, idem.not_before);
        let claim = idempotency::claim_idempotency_key(&user_id, &key, &idem.fingerprint, now);
        let lookup = idempotency::select_idempotency_key(&user_id, &key);
        let fingerprint = idem.fingerprint.clone();
        self.write(by, move |tx| {
            // One transaction: all of this or none of it.
            query(tx, &expire, |_| Ok(()))?;
            match query_first(tx, &claim, |_| Ok(())) {
                Ok(Some(())) => {}
                Ok(None) => {
                    // Nothing was written: the expired-key delete found no
                    // row (the key is live), and the claim did nothing.
                    let stored =
                        query_first(tx, &lookup, |r| idempotency::replay(r, &fingerprint))?;
                    return Ok(stored.unwrap_or(Created::KeyReused));
                }
                Err(e) if is_missing_user(&e) => return Ok(Created::UserMissing),
                Err(e) => return Err(e),
            }
            let task = match insert(tx)? {
                Created::New(task) => task,
                other => return Ok(other),
            };
            let finish = idempotency::finish_idempotency_key(&user_id, &key, &task);
            query(tx, &finish, |_| Ok(()))?;
            Ok(Created::New(task))
        })
        .await
    }
}
