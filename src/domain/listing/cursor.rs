//! The keyset cursor: `base64url(payload).base64url(mac)`. The MAC covers
//! the user id and the payload, and the payload names the sort and a digest
//! of the filters, so a cursor that was edited, belongs to another user, or
//! is used with another sort or other filters is refused instead of
//! returning a wrong page.

use std::sync::LazyLock;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{After, Filters, ListQuery, SortKey, SortValue};
use crate::domain::{
    invalid::FieldError,
    task::{Task, format_ts},
    time,
};

impl Filters {
    /// A digest that changes whenever the set of matching rows could.
    fn digest(&self) -> String {
        // Most lists are unfiltered; their digest is worked out once.
        static NONE_DIGEST: LazyLock<String> =
            LazyLock::new(|| Filters::NONE.digest_of_canonical());
        if *self == Self::NONE {
            return NONE_DIGEST.clone();
        }
        self.digest_of_canonical()
    }

    /// The digest proper: SHA-256 of the filters' canonical JSON, cut to
    /// 12 bytes.
    fn digest_of_canonical(&self) -> String {
        let canonical = serde_json::json!([
            self.status,
            self.priority,
            self.tags,
            self.q,
            self.due_before.as_ref().map(format_ts),
            self.due_after.as_ref().map(format_ts),
        ]);
        let hash = Sha256::digest(canonical.to_string().as_bytes());
        B64.encode(&hash[..12])
    }
}

/// The key that signs cursors; derived from the service secret so cursors
/// stay valid across restarts and across instances. Held as the MAC state
/// already keyed, so a page does not hash the key's pads again.
#[derive(Clone)]
pub struct CursorKey(Hmac<Sha256>);

impl CursorKey {
    /// Derives the cursor key from `secret` with a purpose label, so the key
    /// is never the JWT secret itself.
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"tasks-api list cursor v1");
        let key = mac.finalize().into_bytes();
        Self(<Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap_or_else(|_| unreachable_hmac()))
    }

    fn mac(&self, user_id: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(user_id.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// The cursor that continues after `last` in this list.
    pub fn encode(&self, user_id: &str, query: &ListQuery, last: &Task) -> String {
        let value = match SortValue::of(query.sort.key, last) {
            SortValue::Timestamp(ts) => serde_json::json!(ts.as_ref().map(time::format)),
            SortValue::Rank(rank) => serde_json::json!(rank),
            SortValue::Text(text) => serde_json::Value::String(text),
        };
        let payload = CursorPayload {
            sort: query.sort.canonical(),
            filters: query.filters.digest(),
            value,
            id: last.id,
        };
        // A struct of strings, a JSON value and an integer always serialises.
        let payload = serde_json::to_vec(&payload).unwrap_or_default();
        let tag = self.mac(user_id, &payload).finalize().into_bytes();
        let mut cursor = B64.encode(&payload);
        cursor.push('.');
        B64.encode_string(&tag[..16], &mut cursor);
        cursor
    }

    /// Opens a cursor issued by [`CursorKey::encode`] for this user and query.
    pub fn decode(
        &self,
        user_id: &str,
        query: &ListQuery,
        cursor: &str,
    ) -> Result<After, FieldError> {
        let bad = || FieldError::new("cursor", "is not a cursor issued for this list");
        let (payload, tag) = cursor.split_once('.').ok_or_else(bad)?;
        let payload = B64.decode(payload).map_err(|_| bad())?;
        let tag = B64.decode(tag).map_err(|_| bad())?;
        if tag.len() != 16 {
            return Err(bad());
        }
        self.mac(user_id, &payload)
            .verify_truncated_left(&tag)
            .map_err(|_| bad())?;
        let payload: CursorPayload = serde_json::from_slice(&payload).map_err(|_| bad())?;
        if payload.sort != query.sort.canonical() || payload.filters != query.filters.digest() {
            return Err(FieldError::new(
                "cursor",
                "was issued for another sort or other filters",
            ));
        }
        let value = match query.sort.key {
            SortKey::CreatedAt | SortKey::UpdatedAt | SortKey::DueDate => match &payload.value {
                serde_json::Value::Null if query.sort.key == SortKey::DueDate => {
                    SortValue::Timestamp(None)
                }
                serde_json::Value::String(s) => {
                    SortValue::Timestamp(Some(time::parse_input(s).ok_or_else(bad)?))
                }
                _ => return Err(bad()),
            },
            SortKey::Priority => SortValue::Rank(
                payload
                    .value
                    .as_i64()
                    .and_then(|r| i16::try_from(r).ok())
                    .ok_or_else(bad)?,
            ),
            SortKey::Title => SortValue::Text(payload.value.as_str().ok_or_else(bad)?.to_owned()),
        };
        Ok(After {
            value,
            id: payload.id,
        })
    }
}

/// HMAC-SHA256 accepts keys of any length, so construction cannot fail.
fn unreachable_hmac() -> ! {
    unreachable!("HMAC accepts keys of every length")
}

#[derive(Serialize, Deserialize)]
struct CursorPayload {
    #[serde(rename = "s")]
    sort: String,
    #[serde(rename = "f")]
    filters: String,
    #[serde(rename = "v")]
    value: serde_json::Value,
    #[serde(rename = "i")]
    id: i64,
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::listing::{Limits, ListParams, V1_LIMITS};
    use crate::domain::task::Priority;

    fn parse_qs(qs: &str, limits: Limits, compat: bool) -> Result<ListQuery, FieldError> {
        ListQuery::parse(ListParams::from_query(Some(qs))?, limits, compat)
    }

    fn task(id: i64) -> Task {
        let now = time::now();
        Task {
            id,
            user_id: "u".into(),
            title: "t".into(),
            description: None,
            completed: false,
            priority: Priority::High,
            tags: vec![],
            due_date: None,
            completed_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// Cursors issued by earlier versions (these literals were minted by
    /// the hand-written payload writer this module used before serde) still
    /// open, and the same task and query still mint the same cursor.
    #[test]
    fn cursors_issued_by_earlier_versions_still_open() {
        let key = CursorKey::derive(b"cursor literal test secret");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let last = Task {
            id: 4242,
            title: "quote \" é 😀 tab\t".into(),
            priority: Priority::High,
            created_at: at("2026-11-30T10:11:12.123456Z"),
            updated_at: at("2026-12-01T09:00:00.120Z"),
            version: 3,
            ..task(4242)
        };
        let ts = |s: &str| SortValue::Timestamp(Some(at(s)));
        for (qs, cursor, value) in [
            (
                "",
                "eyJzIjoiLWNyZWF0ZWRfYXQiLCJmIjoiX3dXa3dTSFJrZXY0aU5BWSIsInYiOiIyMDI2LTExLTMwVDEwOjExOjEyLjEyMzQ1NloiLCJpIjo0MjQyfQ.uhY_8okyJXcAnwXItXfp_A",
                ts("2026-11-30T10:11:12.123456Z"),
            ),
            (
                "sort=title&tag=b&tag=a",
                "eyJzIjoidGl0bGUiLCJmIjoiS3ZQb3h5alRjTm95N25LOSIsInYiOiJxdW90ZSBcIiDDqSDwn5iAIHRhYlx0IiwiaSI6NDI0Mn0.EPp0VbrB4lDfBmzmSFXU8A",
                SortValue::Text(last.title.clone()),
            ),
            (
                "sort=-priority&status=pending&q=x",
                "eyJzIjoiLXByaW9yaXR5IiwiZiI6IkhLb1hfZkM0TC0tbHFkVlgiLCJ2IjozLCJpIjo0MjQyfQ.bxGotzHGcU3t6g70YJ4vUQ",
                SortValue::Rank(3),
            ),
            (
                "sort=due_date",
                "eyJzIjoiZHVlX2RhdGUiLCJmIjoiX3dXa3dTSFJrZXY0aU5BWSIsInYiOm51bGwsImkiOjQyNDJ9._8sDpO6t8bfcnWqB3Y4dCg",
                SortValue::Timestamp(None),
            ),
            (
                "sort=-updated_at&due_before=2026-12-01T00:00:00Z",
                "eyJzIjoiLXVwZGF0ZWRfYXQiLCJmIjoiQXJRYXIwcHF4RUlhSjBGeiIsInYiOiIyMDI2LTEyLTAxVDA5OjAwOjAwLjEyMFoiLCJpIjo0MjQyfQ.AHnOUK1G2THP2ZjBglIMlw",
                ts("2026-12-01T09:00:00.120Z"),
            ),
        ] {
            let query = parse_qs(qs, V1_LIMITS, false).unwrap();
            let after = key.decode("u\"1", &query, cursor).unwrap();
            assert_eq!(after, After { value, id: 4242 }, "{qs}");
            assert_eq!(key.encode("u\"1", &query, &last), cursor, "{qs}");
        }
    }
}
