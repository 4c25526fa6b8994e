//! What a list request asks for: filters, sort, page size and position,
//! parsed from the query string (every mistake a [`FieldError`] naming the
//! parameter, which the HTTP layer answers 400), and the keyset cursor that
//! carries a position between pages.
//!
//! The cursor is `base64url(payload).base64url(mac)`. The MAC covers the
//! user id and the payload, and the payload names the sort and a digest of the
//! filters, so a cursor that was edited, belongs to another user, or is used
//! with another sort or other filters is refused instead of returning a wrong
//! page.

use std::sync::LazyLock;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    invalid::FieldError,
    task::{Priority, TAGS_MAX, Task, format_ts, parse_timestamp},
    time,
};

/// Columns a list can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    CreatedAt,
    UpdatedAt,
    DueDate,
    Priority,
    Title,
}

impl SortKey {
    fn name(self) -> &'static str {
        match self {
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::DueDate => "due_date",
            Self::Priority => "priority",
            Self::Title => "title",
        }
    }
}

/// A sort key and direction; ties are always broken by `id` the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Sort {
    /// API.md's default: newest first.
    pub const DEFAULT: Self = Self {
        key: SortKey::CreatedAt,
        descending: true,
    };

    /// Parses `key` or `-key`; `compat` also accepts the spelling of the
    /// `/api/{user_id}/tasks` front ends (`created`).
    pub fn parse(raw: &str, compat: bool) -> Option<Self> {
        let (descending, name) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let key = match name {
            "created_at" => SortKey::CreatedAt,
            "created" if compat => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "due_date" => SortKey::DueDate,
            "priority" => SortKey::Priority,
            "title" => SortKey::Title,
            _ => return None,
        };
        Some(Self { key, descending })
    }

    fn canonical(self) -> String {
        format!(
            "{}{}",
            if self.descending { "-" } else { "" },
            self.key.name()
        )
    }
}

/// Which tasks by completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Status {
    All,
    Pending,
    Completed,
}

/// Row filters; all combine with AND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    pub status: Status,
    pub priority: Option<Priority>,
    /// Every tag a task must carry; sorted and deduplicated.
    pub tags: Vec<String>,
    /// Lower-cased substring to look for in title or description.
    pub q: Option<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
}

impl Filters {
    /// No filter: every task of the user.
    pub const NONE: Self = Self {
        status: Status::All,
        priority: None,
        tags: Vec::new(),
        q: None,
        due_before: None,
        due_after: None,
    };

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
            match self.status {
                Status::All => "all",
                Status::Pending => "pending",
                Status::Completed => "completed",
            },
            self.priority.map(Priority::as_str),
            self.tags,
            self.q,
            self.due_before.as_ref().map(format_ts),
            self.due_after.as_ref().map(format_ts),
        ]);
        let hash = Sha256::digest(canonical.to_string().as_bytes());
        B64.encode(&hash[..12])
    }
}

/// The sort-key value of the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    Timestamp(Option<DateTime<Utc>>),
    Rank(i16),
    Text(String),
}

impl SortValue {
    /// The value of `key` in `task`.
    pub fn of(key: SortKey, task: &Task) -> Self {
        match key {
            SortKey::CreatedAt => Self::Timestamp(Some(task.created_at)),
            SortKey::UpdatedAt => Self::Timestamp(Some(task.updated_at)),
            SortKey::DueDate => Self::Timestamp(task.due_date),
            SortKey::Priority => Self::Rank(task.priority.rank()),
            SortKey::Title => Self::Text(task.title.clone()),
        }
    }
}

/// A keyset position: rows strictly after `(value, id)` in the sort order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub value: SortValue,
    pub id: i64,
}

/// Everything the store needs to fetch one page of one user's tasks.
#[derive(Debug, Clone)]
pub struct ListSpec {
    pub user_id: String,
    pub filters: Filters,
    pub sort: Sort,
    /// Rows to return; the store fetches one more to learn whether more follow.
    pub limit: u32,
    pub offset: u64,
    pub after: Option<After>,
}

/// A parsed list query string, before the cursor is opened.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filters: Filters,
    pub sort: Sort,
    pub limit: u32,
    pub offset: Option<u64>,
    pub cursor: Option<String>,
}

/// Page-size bounds, which differ between v1 and the compatibility list.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub default: u32,
    pub max: u32,
}

/// v1: 20 by default, at most 100.
pub const V1_LIMITS: Limits = Limits {
    default: 20,
    max: 100,
};
/// Compatibility list: 100 by default, at most 100.
pub const COMPAT_LIMITS: Limits = Limits {
    default: 100,
    max: 100,
};

/// The query string of a list as sent: what [`ListQuery::parse`] checks.
/// Unknown parameters are ignored; a repeated single-valued parameter keeps
/// its last value; `tag` collects every value.
#[derive(Debug, Clone, Default, PartialEq, Eq, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `all` (the default), `pending` or `completed`.
    #[param(value_type = Option<Status>, inline)]
    pub status: Option<String>,
    /// Only tasks of this priority.
    #[param(value_type = Option<Priority>, inline)]
    pub priority: Option<String>,
    /// Repeatable; a task must carry every given tag (exact, case-sensitive).
    /// At most 20 distinct values (a task holds at most 20 tags); more is 400.
    #[param(style = Form, explode, required = false)]
    pub tag: Vec<String>,
    /// Case-insensitive substring of title or description (`%`, `_`, `\` literal).
    pub q: Option<String>,
    /// Only tasks due strictly before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub due_before: Option<String>,
    /// Only tasks due strictly after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub due_after: Option<String>,
    // Described in `sort_schema`: utoipa drops the doc of a `schema_with` field.
    #[param(schema_with = sort_schema)]
    pub sort: Option<String>,
    /// Page size.
    #[param(value_type = Option<u32>, default = 20, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Rows to skip (not with `cursor`).
    #[param(value_type = Option<u64>, minimum = 0)]
    pub offset: Option<String>,
    /// `next_cursor` of the previous page (same sort and filters).
    pub cursor: Option<String>,
}

impl ListParams {
    /// Reads a raw query string. By hand rather than through
    /// `serde_urlencoded`'s struct support, which refuses a repeated key.
    pub fn from_query(raw: Option<&str>) -> Result<Self, FieldError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| FieldError::new("query", "is not a valid query string"))?;
        let mut params = Self::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "status" => &mut params.status,
                "priority" => &mut params.priority,
                "tag" => {
                    params.tag.push(value);
                    continue;
                }
                "q" => &mut params.q,
                "due_before" => &mut params.due_before,
                "due_after" => &mut params.due_after,
                "sort" => &mut params.sort,
                "limit" => &mut params.limit,
                "offset" => &mut params.offset,
                "cursor" => &mut params.cursor,
                _ => continue,
            };
            *slot = Some(value);
        }
        Ok(params)
    }
}

/// Every `sort` spelling of v1, for the document.
fn sort_schema() -> utoipa::openapi::schema::Object {
    sort_schema_for(false)
}

/// Every `sort` spelling the parser accepts (`compat`: also `created`),
/// for the document.
pub fn sort_schema_for(compat: bool) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let keys = [
        "created",
        "created_at",
        "updated_at",
        "due_date",
        "priority",
        "title",
    ];
    let names = keys
        .iter()
        .filter(|k| Sort::parse(k, compat).is_some())
        .flat_map(|k| [(*k).to_owned(), format!("-{k}")]);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Sort key, `-` for descending (default `-created_at`, newest first);\n\
             ties are broken by id the same way.",
        ))
        .enum_values(Some(names))
        .build()
}

impl ListQuery {
    /// Checks the parameters of a list, each in turn (`tag` and the
    /// `cursor`/`offset` pair last), and stops at the first bad one, which
    /// the error names.
    pub fn parse(params: ListParams, limits: Limits, compat: bool) -> Result<Self, FieldError> {
        let ts = |name: &str, value: Option<String>| {
            value
                .map(|v| {
                    parse_timestamp(&v).ok_or_else(|| {
                        FieldError::new(
                            name,
                            "must be an RFC 3339 date-time with seconds and an offset",
                        )
                    })
                })
                .transpose()
        };
        let status = match params.status.as_deref() {
            None | Some("all") => Status::All,
            Some("pending") => Status::Pending,
            Some("completed") => Status::Completed,
            Some(_) => {
                return Err(FieldError::new(
                    "status",
                    "must be one of all, pending, completed",
                ));
            }
        };
        let priority = params
            .priority
            .map(|p| {
                Priority::parse(&p)
                    .ok_or_else(|| FieldError::new("priority", "must be one of low, medium, high"))
            })
            .transpose()?;
        if params.q.as_deref().is_some_and(|q| q.contains('\0')) {
            return Err(FieldError::new("q", "must not contain the NUL character"));
        }
        let mut filters = Filters {
            status,
            priority,
            tags: Vec::new(),
            q: params.q.filter(|q| !q.is_empty()).map(|q| q.to_lowercase()),
            due_before: ts("due_before", params.due_before)?,
            due_after: ts("due_after", params.due_after)?,
        };
        let sort = match params.sort {
            None => Sort::DEFAULT,
            Some(raw) => Sort::parse(&raw, compat).ok_or_else(|| {
                let keys = if compat {
                    "created_at, created, updated_at, due_date, priority, title"
                } else {
                    "created_at, updated_at, due_date, priority, title"
                };
                FieldError::new(
                    "sort",
                    format!("must be one of {keys}, optionally prefixed with -"),
                )
            })?,
        };
        let limit = match params.limit {
            None => limits.default,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=limits.max).contains(l))
                .ok_or_else(|| {
                    FieldError::new(
                        "limit",
                        format!("must be a whole number from 1 to {}", limits.max),
                    )
                })?,
        };
        let offset = params
            .offset
            .map(|raw| {
                raw.parse::<u64>()
                    .ok()
                    .filter(|o| *o <= i64::MAX as u64)
                    .ok_or_else(|| FieldError::new("offset", "must be a whole number of 0 or more"))
            })
            .transpose()?;
        let mut tags = params.tag;
        if tags.iter().any(|t| t.contains('\0')) {
            return Err(FieldError::new("tag", "must not contain the NUL character"));
        }
        tags.sort();
        tags.dedup();
        // No task holds more tags, and each filter is a term of the SQL:
        // ~1,000 of them overflow SQLite's expression depth (a 500).
        if tags.len() > TAGS_MAX {
            return Err(FieldError::new(
                "tag",
                format!(
                    "must be given at most {TAGS_MAX} distinct values (a task holds at most {TAGS_MAX} tags)"
                ),
            ));
        }
        filters.tags = tags;
        if params.cursor.is_some() && offset.is_some() {
            return Err(FieldError::new("cursor", "cannot be combined with offset"));
        }
        Ok(Self {
            filters,
            sort,
            limit,
            offset,
            cursor: params.cursor,
        })
    }
}

/// One page of a list: up to the spec's `limit` items, and whether more
/// rows follow the last (the next page's cursor then starts after it).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

impl<T> Page<T> {
    /// The page of `rows` fetched with one look-ahead row past `limit`.
    pub fn from_look_ahead(mut rows: Vec<T>, limit: u32) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Self { items: rows, more }
    }

    /// The row the next page continues after, when there is a next page.
    pub fn continues_after(&self) -> Option<&T> {
        self.items.last().filter(|_| self.more)
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
    use super::*;

    fn parse_qs(qs: &str, limits: Limits, compat: bool) -> Result<ListQuery, FieldError> {
        ListQuery::parse(ListParams::from_query(Some(qs))?, limits, compat)
    }

    #[test]
    fn params_keep_the_last_value_every_tag_and_ignore_the_rest() {
        let params = ListParams::from_query(Some("limit=5&tag=b&colour=red&tag=a&limit=7"));
        let expected = ListParams {
            limit: Some("7".to_owned()),
            tag: vec!["b".to_owned(), "a".to_owned()],
            ..ListParams::default()
        };
        assert_eq!(params, Ok(expected));
        assert_eq!(ListParams::from_query(None), Ok(ListParams::default()));
    }

    #[test]
    fn parse_rejects_each_bad_parameter_by_name() {
        for (qs, field) in [
            ("status=done", "status"),
            ("priority=urgent", "priority"),
            ("sort=colour", "sort"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("offset=-1", "offset"),
            ("due_before=tomorrow", "due_before"),
            ("cursor=x&offset=0", "cursor"),
        ] {
            match parse_qs(qs, V1_LIMITS, false) {
                Err(error) => assert_eq!(error.field, field, "{qs}"),
                other => panic!("{qs}: {other:?}"),
            }
        }
        assert!(parse_qs("sort=created", V1_LIMITS, false).is_err());
        assert!(parse_qs("sort=-created", COMPAT_LIMITS, true).is_ok());
        assert!(parse_qs("whatever=1", V1_LIMITS, false).is_ok());
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

    #[test]
    fn cursor_round_trips_and_is_bound_to_user_sort_and_filters() {
        let key = CursorKey::derive(b"secret");
        let query = parse_qs("sort=-due_date&tag=a", V1_LIMITS, false).unwrap();
        let cursor = key.encode("u1", &query, &task(7));
        let after = key.decode("u1", &query, &cursor).unwrap();
        assert_eq!(
            after,
            After {
                value: SortValue::Timestamp(None),
                id: 7
            }
        );
        assert!(key.decode("u2", &query, &cursor).is_err());
        let other_sort = parse_qs("sort=due_date&tag=a", V1_LIMITS, false).unwrap();
        assert!(key.decode("u1", &other_sort, &cursor).is_err());
        let other_filter = parse_qs("sort=-due_date&tag=b", V1_LIMITS, false).unwrap();
        assert!(key.decode("u1", &other_filter, &cursor).is_err());
        let mut tampered = cursor.clone().into_bytes();
        tampered[3] ^= 1;
        assert!(
            key.decode("u1", &query, &String::from_utf8(tampered).unwrap())
                .is_err()
        );
        // limit may change between pages
        let bigger = parse_qs("sort=-due_date&tag=a&limit=50", V1_LIMITS, false).unwrap();
        assert!(key.decode("u1", &bigger, &cursor).is_ok());
    }
}
