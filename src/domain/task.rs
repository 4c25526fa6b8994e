//! The task resource: its wire shape, its validation rules, and the inputs the
//! store accepts. Validation lives here, not in handlers or SQL, so both
//! backends receive only values that already satisfy API.md (the database
//! CHECK constraints are a second line of defence, not the first).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::invalid::{FieldError, Invalid};
// The names the validator and the list parser use for the one timestamp
// module's input parser and wire form.
pub use super::time::{format as format_ts, parse_input as parse_timestamp};

/// Longest title, in Unicode scalar values, after trimming.
pub const TITLE_MAX: usize = 200;
/// Longest description, in Unicode scalar values.
pub const DESCRIPTION_MAX: usize = 1000;
/// Longest tag, in Unicode scalar values, after trimming.
pub const TAG_MAX: usize = 50;
/// Most distinct tags on one task.
pub const TAGS_MAX: usize = 20;

/// Task urgency; ordered low < medium < high, which is also the sort order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
}

impl Priority {
    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// Parses the wire spelling (exact, lowercase).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    /// Stored as a small integer so that SQL `order by` sorts by urgency.
    pub fn rank(self) -> i16 {
        match self {
            Self::Low => 1,
            Self::Medium => 2,
            Self::High => 3,
        }
    }

    /// Inverse of [`Priority::rank`]; `None` means a corrupt row.
    pub fn from_rank(rank: i64) -> Option<Self> {
        match rank {
            1 => Some(Self::Low),
            2 => Some(Self::Medium),
            3 => Some(Self::High),
            _ => None,
        }
    }
}

// `Deserialize` too: an idempotent create stores the task's serde JSON
// for its replay (`idempotency_keys.response`). Not a doc comment, which
// would become the schema's description.
/// A stored task exactly as API.md's twelve fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// Assigned by the database.
    #[schema(minimum = 1)]
    pub id: i64,
    /// The owner (the token's `sub`).
    pub user_id: String,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(required, max_length = 1000)]
    pub description: Option<String>,
    pub completed: bool,
    pub priority: Priority,
    #[schema(max_items = 20)]
    pub tags: Vec<String>,
    /// UTC.
    #[schema(required)]
    #[serde(with = "super::time::rfc3339::option")]
    pub due_date: Option<DateTime<Utc>>,
    /// Set when `completed` goes false→true, cleared when it goes back.
    #[schema(required)]
    #[serde(with = "super::time::rfc3339::option")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(with = "super::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "super::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Starts at 1; +1 on every change. The `ETag` is `"<version>"`.
    #[schema(minimum = 1)]
    pub version: i64,
}

impl Task {
    /// The strong entity tag of this version of the task.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// Lower-case hex SHA-256, for fingerprints and migration checksums.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every client-settable field with its create default applied: what POST and
/// PUT write.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInput {
    pub title: String,
    pub description: Option<String>,
    pub completed: bool,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub due_date: Option<DateTime<Utc>>,
}

impl TaskInput {
    /// Canonical JSON of the normalised input: what idempotent replays compare.
    pub fn fingerprint_json(&self) -> String {
        serde_json::json!({
            "title": self.title,
            "description": self.description,
            "completed": self.completed,
            "priority": self.priority.as_str(),
            "tags": self.tags,
            "due_date": self.due_date.as_ref().map(format_ts),
        })
        .to_string()
    }
}

/// The fields a PATCH names. The outer `Option` is "given?"; for nullable
/// fields the inner `Option` is the new value, where `None` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub completed: Option<bool>,
    pub priority: Option<Priority>,
    pub tags: Option<Vec<String>>,
    pub due_date: Option<Option<DateTime<Utc>>>,
}

const SERVER_OWNED: [&str; 6] = [
    "id",
    "user_id",
    "created_at",
    "updated_at",
    "completed_at",
    "version",
];

/// Collects field errors while walking a JSON object, so a client learns about
/// every bad field in one response.
#[derive(Default)]
struct Checker {
    invalid: Invalid,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.invalid.push(FieldError::new(field, message));
    }

    fn object<'a>(&mut self, body: &'a Value) -> Option<&'a Map<String, Value>> {
        match body {
            Value::Object(map) => {
                for key in map.keys() {
                    if SERVER_OWNED.contains(&key.as_str()) {
                        self.fail(key.clone(), "is set by the server and cannot be written");
                    } else if !matches!(
                        key.as_str(),
                        "title" | "description" | "completed" | "priority" | "tags" | "due_date"
                    ) {
                        self.fail(key.clone(), "is not a task field");
                    }
                }
                Some(map)
            }
            _ => {
                self.fail("body", "must be a JSON object");
                None
            }
        }
    }

    fn finish<T>(self, value: T) -> Result<T, Invalid> {
        if self.invalid.is_empty() {
            Ok(value)
        } else {
            Err(self.invalid)
        }
    }

    fn title(&mut self, value: &Value) -> Option<String> {
        let Value::String(raw) = value else {
            self.fail("title", "must be a string");
            return None;
        };
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if len == 0 || len > TITLE_MAX {
            self.fail("title", format!("must be 1-{TITLE_MAX} characters"));
            return None;
        }
        self.no_nul("title", trimmed).then(|| trimmed.to_owned())
    }

    fn description(&mut self, value: &Value) -> Option<Option<String>> {
        match value {
            Value::Null => Some(None),
            Value::String(s) if s.chars().count() > DESCRIPTION_MAX => {
                self.fail(
                    "description",
                    format!("must be at most {DESCRIPTION_MAX} characters"),
                );
                None
            }
            Value::String(s) => self.no_nul("description", s).then(|| Some(s.clone())),
            _ => {
                self.fail("description", "must be a string or null");
                None
            }
        }
    }

    fn completed(&mut self, value: &Value) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.fail("completed", "must be true or false");
                None
            }
        }
    }

    fn priority(&mut self, value: &Value) -> Option<Priority> {
        match value.as_str().and_then(Priority::parse) {
            Some(p) => Some(p),
            None => {
                self.fail("priority", "must be one of low, medium, high");
                None
            }
        }
    }

    /// Checks the items in order and stops at the first tag past
    /// [`TAGS_MAX`] distinct ones: the answer is then known (422), and the
    /// rest of a 64 KB body of tags is not worth reading. `tags` never holds
    /// more than `TAGS_MAX + 1` entries, so de-duplication costs at most that
    /// many comparisons per item: linear in the body, not quadratic. Errors
    /// of items before the stop are reported too; later items are not read.
    fn tags(&mut self, value: &Value) -> Option<Vec<String>> {
        let Value::Array(items) = value else {
            self.fail("tags", "must be a list of strings");
            return None;
        };
        let mut tags: Vec<String> = Vec::with_capacity(items.len().min(TAGS_MAX));
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let Some(tag) = self.tag(i, item) else {
                ok = false;
                continue;
            };
            if tags.iter().any(|t| t == tag) {
                continue;
            }
            if tags.len() == TAGS_MAX {
                self.fail(
                    "tags",
                    format!("must hold at most {TAGS_MAX} distinct tags"),
                );
                return None;
            }
            tags.push(tag.to_owned());
        }
        ok.then_some(tags)
    }

    /// One item of `tags`, trimmed, or `None` after recording why not. The
    /// field name is only formatted for an error.
    fn tag<'a>(&mut self, i: usize, item: &'a Value) -> Option<&'a str> {
        let message = match item {
            Value::String(raw) => {
                let tag = raw.trim();
                let len = tag.chars().take(TAG_MAX + 1).count();
                if len == 0 || len > TAG_MAX {
                    format!("must be 1-{TAG_MAX} characters")
                } else if tag.contains('\0') {
                    "must not contain the NUL character".to_owned()
                } else {
                    return Some(tag);
                }
            }
            _ => "must be a string".to_owned(),
        };
        self.fail(format!("tags[{i}]"), message);
        None
    }

    fn due_date(&mut self, value: &Value) -> Option<Option<DateTime<Utc>>> {
        match value {
            Value::Null => Some(None),
            Value::String(s) => match parse_timestamp(s) {
                Some(ts) => Some(Some(ts)),
                None => {
                    self.fail(
                        "due_date",
                        "must be an RFC 3339 date-time with seconds and an offset",
                    );
                    None
                }
            },
            _ => {
                self.fail("due_date", "must be an RFC 3339 date-time string or null");
                None
            }
        }
    }

    fn no_nul(&mut self, field: &str, s: &str) -> bool {
        if s.contains('\0') {
            self.fail(field.to_owned(), "must not contain the NUL character");
            false
        } else {
            true
        }
    }

    fn not_null(&mut self, field: &str, value: &Value) -> bool {
        if value.is_null() {
            self.fail(field.to_owned(), "cannot be null");
            false
        } else {
            true
        }
    }
}

/// Validates a POST or PUT body: `title` required, other fields defaulted.
pub fn parse_input(body: &Value) -> Result<TaskInput, Invalid> {
    let mut c = Checker::default();
    let Some(map) = c.object(body) else {
        return c.finish(TaskInput::placeholder());
    };
    let title = match map.get("title") {
        Some(v) => c.title(v),
        None => {
            c.fail("title", "is required");
            None
        }
    };
    let mut input = TaskInput::placeholder();
    input.title = title.unwrap_or_default();
    if let Some(v) = map.get("description") {
        input.description = c.description(v).flatten();
    }
    if let Some(v) = map.get("completed")
        && c.not_null("completed", v)
    {
        input.completed = c.completed(v).unwrap_or_default();
    }
    if let Some(v) = map.get("priority")
        && c.not_null("priority", v)
    {
        input.priority = c.priority(v).unwrap_or_default();
    }
    if let Some(v) = map.get("tags")
        && c.not_null("tags", v)
    {
        input.tags = c.tags(v).unwrap_or_default();
    }
    if let Some(v) = map.get("due_date") {
        input.due_date = c.due_date(v).flatten();
    }
    c.finish(input)
}

/// Validates a PATCH body: every field optional, `null` only where nullable.
pub fn parse_patch(body: &Value) -> Result<TaskPatch, Invalid> {
    let mut c = Checker::default();
    let Some(map) = c.object(body) else {
        return c.finish(TaskPatch::default());
    };
    let mut patch = TaskPatch::default();
    if let Some(v) = map.get("title")
        && c.not_null("title", v)
    {
        patch.title = c.title(v);
    }
    if let Some(v) = map.get("description") {
        patch.description = c.description(v);
    }
    if let Some(v) = map.get("completed")
        && c.not_null("completed", v)
    {
        patch.completed = c.completed(v);
    }
    if let Some(v) = map.get("priority")
        && c.not_null("priority", v)
    {
        patch.priority = c.priority(v);
    }
    if let Some(v) = map.get("tags")
        && c.not_null("tags", v)
    {
        patch.tags = c.tags(v);
    }
    if let Some(v) = map.get("due_date") {
        patch.due_date = c.due_date(v);
    }
    c.finish(patch)
}

impl TaskInput {
    fn placeholder() -> Self {
        Self {
            title: String::new(),
            description: None,
            completed: false,
            priority: Priority::Medium,
            tags: Vec::new(),
            due_date: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn title_counts_scalar_values_after_trimming() {
        let ok = "é".repeat(200);
        assert_eq!(
            parse_input(&json!({"title": format!("  {ok}\u{3000}")}))
                .unwrap()
                .title,
            ok
        );
        let too_long = "é".repeat(201);
        assert!(parse_input(&json!({"title": too_long})).is_err());
        assert!(parse_input(&json!({"title": " \t\u{2003} "})).is_err());
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated_in_order() {
        let input = parse_input(&json!({"title": "t", "tags": [" b", "a", "b ", "A"]})).unwrap();
        assert_eq!(input.tags, ["b", "a", "A"]);
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(parse_input(&json!({"title": "t", "tags": many})).is_err());
        let dup_heavy: Vec<String> = (0..40).map(|i| format!("t{}", i % 20)).collect();
        assert_eq!(
            parse_input(&json!({"title": "t", "tags": dup_heavy}))
                .unwrap()
                .tags
                .len(),
            20
        );
    }

    #[test]
    fn tag_checking_stops_at_the_first_tag_past_the_limit() {
        // 21 distinct tags, then items that would each be an error: they are
        // never read, because the 21st distinct tag already decides the 422.
        let mut tags: Vec<Value> = (0..=TAGS_MAX).map(|i| json!(format!("t{i}"))).collect();
        tags.extend([json!(1), json!(""), json!("x".repeat(TAG_MAX + 1))]);
        let expected = [FieldError::new(
            "tags",
            "must hold at most 20 distinct tags",
        )];
        let errors = parse_input(&json!({"title": "t", "tags": tags})).unwrap_err();
        assert_eq!(errors.errors(), expected);
        let errors = parse_patch(&json!({"tags": tags})).unwrap_err();
        assert_eq!(errors.errors(), expected);
        // Errors of items before the stop are kept.
        tags.insert(0, json!(7));
        let errors = parse_patch(&json!({"tags": tags})).unwrap_err();
        let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["tags[0]", "tags"]);
    }

    #[test]
    fn server_owned_and_unknown_fields_are_rejected() {
        let errors = parse_input(&json!({"title": "t", "id": 3, "owner": "x"})).unwrap_err();
        let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields.len(), 2);
        assert!(fields.contains(&"id") && fields.contains(&"owner"));
    }

    #[test]
    fn patch_allows_null_only_for_nullable_fields() {
        let patch = parse_patch(&json!({"description": null, "due_date": null})).unwrap();
        assert_eq!(patch.description, Some(None));
        assert_eq!(patch.due_date, Some(None));
        assert!(parse_patch(&json!({"title": null})).is_err());
        assert!(parse_patch(&json!({"tags": null})).is_err());
        assert_eq!(parse_patch(&json!({})).unwrap(), TaskPatch::default());
    }

    #[test]
    fn due_date_needs_an_offset_and_is_normalised_to_utc() {
        let input =
            parse_input(&json!({"title": "t", "due_date": "2026-12-01T10:00:00+01:00"})).unwrap();
        assert_eq!(format_ts(&input.due_date.unwrap()), "2026-12-01T09:00:00Z");
        assert!(parse_input(&json!({"title": "t", "due_date": "2026-12-01T10:00:00"})).is_err());
        assert!(parse_input(&json!({"title": "t", "due_date": "2026-12-01"})).is_err());
    }

    #[test]
    fn nul_is_rejected_in_every_text_field() {
        assert!(parse_input(&json!({"title": "a\u{0}b"})).is_err());
        assert!(parse_input(&json!({"title": "a", "description": "\u{0}"})).is_err());
        assert!(parse_input(&json!({"title": "a", "tags": ["x\u{0}"]})).is_err());
    }
}
