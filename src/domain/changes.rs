//! The change feed (API.md "Sync: the change feed"): what one change looks
//! like on the wire, the batch storage returns, and the sync token that says
//! where a client is.
//!
//! Every write of a user's tasks takes the next number of that user's
//! change sequence, in the write's own transaction and under the lock of
//! the user's row, so numbers are handed out in commit order: once change
//! `n` is visible, every change below `n` is too. A task row carries the
//! number of its latest change and a deleted task leaves a tombstone with
//! its own, so "what changed after `n`" is one ordered range per user, and
//! a task changed several times appears once, in its latest state.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{task::Task, time};

/// Default and largest page of the feed.
pub const FEED_LIMIT_DEFAULT: u32 = 500;
/// Largest `limit` a client may ask for.
pub const FEED_LIMIT_MAX: u32 = 1000;

/// One change, as the feed and the event stream send it: a task's latest
/// state, or the fact that it was deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum TaskChange {
    /// The task as it is now (created or changed since the token).
    Upsert {
        /// The whole task, as `GET /api/v1/tasks/{id}` answers it.
        task: Task,
    },
    /// The task was deleted.
    Delete {
        /// The deleted task's id.
        id: i64,
        /// When it was deleted (RFC 3339 UTC).
        #[serde(with = "time::rfc3339")]
        #[schema(value_type = String, format = DateTime)]
        deleted_at: DateTime<Utc>,
    },
}

impl TaskChange {
    /// The SSE event name: `upsert` or `delete`.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Upsert { .. } => "upsert",
            Self::Delete { .. } => "delete",
        }
    }
}

/// A change with its number in the user's sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Numbered {
    pub seq: i64,
    pub change: TaskChange,
}

/// Where a feed read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// A full sync: every current task, no tombstones (the client has
    /// nothing a delete could remove).
    Full,
    /// Everything numbered after this.
    After(i64),
    /// No changes: only the epoch and the latest number (where a stream
    /// without a token starts).
    Head,
}

/// What one read of the feed found, all from one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    /// The user row's incarnation: a new one after `DELETE /api/v1/me`,
    /// so older tokens can be told apart (410).
    pub epoch: i64,
    /// The user's latest change number when the batch was read. With no
    /// more to come, the next token starts here: nothing at or below it is
    /// still to commit.
    pub head: i64,
    /// The changes, oldest first, at most the asked `limit`.
    pub changes: Vec<Numbered>,
    /// More changes follow the last one.
    pub more: bool,
}

impl ChangeBatch {
    /// The change number the next read continues after.
    pub fn next_after(&self) -> i64 {
        match self.changes.last() {
            Some(last) if self.more => last.seq,
            _ => self.head,
        }
    }
}

/// Where a client is in its feed: the user row's incarnation, the change
/// number it holds everything up to, and when the token was issued (a
/// token older than the tombstone retention may have missed a purged
/// delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncToken {
    pub epoch: i64,
    pub seq: i64,
    /// Unix seconds.
    pub issued: i64,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token this service issued for this user (edited, foreign,
    /// garbage): 400.
    Invalid,
    /// Issued for this user, but too old or from before `DELETE /me`: 410.
    Expired,
}

const PAYLOAD_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The key that signs sync tokens; derived from the service secret with its
/// own label (never the JWT secret itself, never the cursor key), so tokens
/// stay valid across restarts and instances.
#[derive(Clone)]
pub struct SyncKey(Hmac<Sha256>);

impl SyncKey {
    /// Derives the token key from `secret`.
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = keyed(secret);
        mac.update(b"tasks-api sync token v1");
        Self(keyed(&mac.finalize().into_bytes()))
    }

    fn tag(&self, user_id: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(user_id.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// The opaque token for `token`, bound to `user_id`.
    pub fn encode(&self, user_id: &str, token: SyncToken) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + TAG_LEN);
        bytes.extend_from_slice(&token.epoch.to_be_bytes());
        bytes.extend_from_slice(&token.seq.to_be_bytes());
        bytes.extend_from_slice(&token.issued.to_be_bytes());
        let tag = self.tag(user_id, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        B64.encode(bytes)
    }

    /// Opens a token issued by [`SyncKey::encode`] for `user_id`. Age and
    /// incarnation are the caller's to check ([`SyncToken::check`]).
    pub fn decode(&self, user_id: &str, text: &str) -> Result<SyncToken, TokenError> {
        let bytes = B64.decode(text).map_err(|_| TokenError::Invalid)?;
        if bytes.len() != PAYLOAD_LEN + TAG_LEN {
            return Err(TokenError::Invalid);
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        self.tag(user_id, payload)
            .verify_truncated_left(tag)
            .map_err(|_| TokenError::Invalid)?;
        let int = |i: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&payload[i * 8..i * 8 + 8]);
            i64::from_be_bytes(word)
        };
        Ok(SyncToken {
            epoch: int(0),
            seq: int(1),
            issued: int(2),
        })
    }
}

impl SyncToken {
    /// Refuses a token issued before the user's row was re-created
    /// (`epoch` differs) or longer ago than `retention` (its tombstones
    /// may be gone): both mean "drop your copy and sync in full" (410).
    pub fn check(
        self,
        epoch: i64,
        now: DateTime<Utc>,
        retention: chrono::Duration,
    ) -> Result<Self, TokenError> {
        if self.epoch != epoch || now.timestamp() - self.issued > retention.num_seconds() {
            return Err(TokenError::Expired);
        }
        Ok(self)
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    // HMAC-SHA256 accepts keys of every length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> SyncToken {
        SyncToken {
            epoch: 7,
            seq: 42,
            issued: 1_764_000_000,
        }
    }

    #[test]
    fn a_token_opens_for_its_user_only() {
        let key = SyncKey::derive(b"secret");
        let text = key.encode("alice", token());
        assert_eq!(key.decode("alice", &text), Ok(token()));
        assert_eq!(key.decode("bob", &text), Err(TokenError::Invalid));
        let other = SyncKey::derive(b"another secret");
        assert_eq!(other.decode("alice", &text), Err(TokenError::Invalid));
    }

    #[test]
    fn an_edited_token_is_refused() {
        let key = SyncKey::derive(b"secret");
        let text = key.encode("alice", token());
        let mut bytes = B64.decode(&text).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            assert_eq!(
                key.decode("alice", &B64.encode(&bytes)),
                Err(TokenError::Invalid),
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        for bad in ["", "x", "not base64!", &text[..text.len() - 2]] {
            assert_eq!(key.decode("alice", bad), Err(TokenError::Invalid));
        }
    }

    #[test]
    fn changes_have_the_wire_shape_of_api_md() {
        let ts = DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        let delete = TaskChange::Delete {
            id: 42,
            deleted_at: ts,
        };
        assert_eq!(
            serde_json::to_string(&delete).unwrap(),
            r#"{"op":"delete","id":42,"deleted_at":"2025-11-24T16:00:00Z"}"#
        );
        let batch = ChangeBatch {
            epoch: 1,
            head: 9,
            changes: vec![Numbered {
                seq: 5,
                change: delete,
            }],
            more: true,
        };
        assert_eq!(batch.next_after(), 5);
        assert_eq!(
            ChangeBatch {
                more: false,
                ..batch
            }
            .next_after(),
            9
        );
    }
}
