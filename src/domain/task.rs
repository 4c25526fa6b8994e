//! The task resource: its wire shape, its validation rules, and the inputs the
//! store accepts. Validation lives here, not in handlers or SQL, so both
//! backends receive only values that already satisfy API.md (the database
//! CHECK constraints are a second line of defence, not the first).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

// Read from a `RawTask` (domain/input.rs), which reports every bad field.
// The schema attributes repeat the limits above (they take literals only);
// tests/api/openapi.rs holds them equal. The doc comment is the schema's.
/// A create or full-replace body (PUT is a full replace: omitted fields take
/// these defaults). Unknown and server-owned fields are refused with 422.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(try_from = "super::input::RawTask", deny_unknown_fields)]
pub struct TaskInput {
    /// Trimmed of whitespace at both ends, then 1-200 characters.
    #[schema(min_length = 1, max_length = 200, examples("Buy milk"))]
    pub title: String,
    /// Not trimmed; may be empty.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Default false.
    #[serde(default)]
    #[schema(default = false)]
    pub completed: bool,
    #[serde(default)]
    #[schema(inline)]
    pub priority: Priority,
    /// Trimmed, 1-50 characters each, duplicates dropped, at most 20 distinct.
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
    /// RFC 3339 with seconds and an offset; returned in UTC.
    pub due_date: Option<DateTime<Utc>>,
}

impl TaskInput {
    /// Canonical JSON of the normalised input: what idempotent replays compare.
    pub fn fingerprint_json(&self) -> String {
        serde_json::json!({
            "title": self.title,
            "description": self.description,
            "completed": self.completed,
            "priority": self.priority,
            "tags": self.tags,
            "due_date": self.due_date.as_ref().map(format_ts),
        })
        .to_string()
    }
}

/// A partial update: only the fields given change; `null` clears
/// `description` and `due_date` and is refused elsewhere.
// The outer `Option` is "given?"; for nullable fields the inner `Option` is
// the new value, where `None` clears it.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(try_from = "super::input::RawTask", deny_unknown_fields)]
pub struct TaskPatch {
    #[schema(min_length = 1, max_length = 200, nullable = false)]
    pub title: Option<String>,
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub description: Option<Option<String>>,
    #[schema(nullable = false)]
    pub completed: Option<bool>,
    #[schema(inline, nullable = false)]
    pub priority: Option<Priority>,
    #[schema(schema_with = tags_schema)]
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_date: Option<Option<DateTime<Utc>>>,
}

/// A full replace (PUT) is a patch that names every field, so the store has
/// one update path and a new field is added here, not in each handler.
impl From<TaskInput> for TaskPatch {
    fn from(input: TaskInput) -> Self {
        Self {
            title: Some(input.title),
            description: Some(input.description),
            completed: Some(input.completed),
            priority: Some(input.priority),
            tags: Some(input.tags),
            due_date: Some(input.due_date),
        }
    }
}

/// The schema of `tags` in a request body, built from the limits above.
fn tags_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let tag = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("One tag."))
        .min_length(Some(1))
        .max_length(Some(TAG_MAX));
    ArrayBuilder::new()
        .items(tag)
        .description(Some(
            "Trimmed, 1-50 characters each, duplicates dropped, at most 20 distinct.",
        ))
        .max_items(Some(TAGS_MAX))
        .build()
}
