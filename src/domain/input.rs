//! How a request body becomes a [`TaskInput`] or a [`TaskPatch`]: serde reads
//! the body into a [`RawTask`] (every known field as the JSON value sent,
//! every other key by name), then `TryFrom` checks all of it in one pass and
//! reports every bad field, so a client learns about all of them in one 422.
//! Why not serde's own field types: they stop at the first bad field, and
//! the handler must be able to answer 404 before any 422.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::de::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::invalid::{FieldError, Invalid};
use super::task::{
    DESCRIPTION_MAX, Priority, TAG_MAX, TAGS_MAX, TITLE_MAX, TaskInput, TaskPatch, parse_timestamp,
};

/// A task body as sent. For each known field, `None` is "absent" and
/// `Some(Value::Null)` is an explicit `null`. A repeated key keeps its last
/// value, as a JSON object does.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RawTask {
    pub title: Option<Value>,
    pub description: Option<Value>,
    pub completed: Option<Value>,
    pub priority: Option<Value>,
    pub tags: Option<Value>,
    pub due_date: Option<Value>,
    /// Every other key (server-owned or unknown), sorted: each is a 422.
    pub other: BTreeSet<String>,
    /// The body was JSON but not an object (a 422 once 404 is ruled out).
    pub not_object: bool,
}

/// Fields the server sets; written by a client, each is its own error.
const SERVER_OWNED: [&str; 6] = [
    "id",
    "user_id",
    "created_at",
    "updated_at",
    "completed_at",
    "version",
];

// By hand rather than derived: a derived struct refuses repeated keys and
// non-objects outright, where API.md wants last-wins and a 422 that ranks
// below 404. Any JSON value deserializes; only syntax errors fail. Read as a
// whole `Value`, not skipped as `IgnoredAny`: that skip has no depth limit
// and lets invalid UTF-8 pass, and such a body must stay a 400.
impl<'de> Deserialize<'de> for RawTask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Object(map) => Self::from(map),
            _ => Self {
                not_object: true,
                ..Self::default()
            },
        })
    }
}

/// A JSON object's known fields, and every other key by name.
impl From<Map<String, Value>> for RawTask {
    fn from(map: Map<String, Value>) -> Self {
        let mut raw = Self::default();
        for (key, value) in map {
            let slot = match key.as_str() {
                "title" => &mut raw.title,
                "description" => &mut raw.description,
                "completed" => &mut raw.completed,
                "priority" => &mut raw.priority,
                "tags" => &mut raw.tags,
                "due_date" => &mut raw.due_date,
                _ => {
                    raw.other.insert(key);
                    continue;
                }
            };
            *slot = Some(value);
        }
        raw
    }
}

/// POST and PUT: `title` required, other fields defaulted.
impl TryFrom<RawTask> for TaskInput {
    type Error = Invalid;

    fn try_from(raw: RawTask) -> Result<Self, Invalid> {
        let mut c = Checker::default();
        if !c.object(&raw) {
            return Err(c.invalid);
        }
        let mut input = TaskInput {
            title: String::new(),
            description: None,
            completed: false,
            priority: Priority::default(),
            tags: Vec::new(),
            due_date: None,
        };
        match raw.title {
            Some(v) => input.title = c.title(v).unwrap_or_default(),
            None => c.fail("title", "is required"),
        }
        if let Some(v) = raw.description {
            input.description = c.description(v).flatten();
        }
        if let Some(v) = c.not_null("completed", raw.completed) {
            input.completed = c.completed(&v).unwrap_or_default();
        }
        if let Some(v) = c.not_null("priority", raw.priority) {
            input.priority = c.priority(&v).unwrap_or_default();
        }
        if let Some(v) = c.not_null("tags", raw.tags) {
            input.tags = c.tags(v).unwrap_or_default();
        }
        if let Some(v) = raw.due_date {
            input.due_date = c.due_date(&v).flatten();
        }
        c.finish(input)
    }
}

/// PATCH: every field optional, `null` only where nullable.
impl TryFrom<RawTask> for TaskPatch {
    type Error = Invalid;

    fn try_from(raw: RawTask) -> Result<Self, Invalid> {
        let mut c = Checker::default();
        if !c.object(&raw) {
            return Err(c.invalid);
        }
        let patch = TaskPatch {
            title: c.not_null("title", raw.title).and_then(|v| c.title(v)),
            description: raw.description.and_then(|v| c.description(v)),
            completed: c
                .not_null("completed", raw.completed)
                .and_then(|v| c.completed(&v)),
            priority: c
                .not_null("priority", raw.priority)
                .and_then(|v| c.priority(&v)),
            tags: c.not_null("tags", raw.tags).and_then(|v| c.tags(v)),
            due_date: raw.due_date.and_then(|v| c.due_date(&v)),
        };
        c.finish(patch)
    }
}

/// Collects field errors while checking the fields of a [`RawTask`].
#[derive(Default)]
struct Checker {
    invalid: Invalid,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.invalid.push(FieldError::new(field, message));
    }

    /// Records a non-object body (then nothing else is checked) or every
    /// key that is not a writable field; false for a non-object.
    fn object(&mut self, raw: &RawTask) -> bool {
        if raw.not_object {
            self.fail("body", "must be a JSON object");
            return false;
        }
        for key in &raw.other {
            if SERVER_OWNED.contains(&key.as_str()) {
                self.fail(key.clone(), "is set by the server and cannot be written");
            } else {
                self.fail(key.clone(), "is not a task field");
            }
        }
        true
    }

    fn finish<T>(self, value: T) -> Result<T, Invalid> {
        if self.invalid.is_empty() {
            Ok(value)
        } else {
            Err(self.invalid)
        }
    }

    /// The value, unless it is absent or a `null` (recorded as an error).
    fn not_null(&mut self, field: &str, value: Option<Value>) -> Option<Value> {
        match value {
            Some(Value::Null) => {
                self.fail(field.to_owned(), "cannot be null");
                None
            }
            other => other,
        }
    }

    fn title(&mut self, value: Value) -> Option<String> {
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

    fn description(&mut self, value: Value) -> Option<Option<String>> {
        match value {
            Value::Null => Some(None),
            Value::String(s) if s.chars().count() > DESCRIPTION_MAX => {
                self.fail(
                    "description",
                    format!("must be at most {DESCRIPTION_MAX} characters"),
                );
                None
            }
            Value::String(s) => self.no_nul("description", &s).then_some(Some(s)),
            _ => {
                self.fail("description", "must be a string or null");
                None
            }
        }
    }

    fn completed(&mut self, value: &Value) -> Option<bool> {
        let completed = value.as_bool();
        if completed.is_none() {
            self.fail("completed", "must be true or false");
        }
        completed
    }

    fn priority(&mut self, value: &Value) -> Option<Priority> {
        let priority = value.as_str().and_then(Priority::parse);
        if priority.is_none() {
            self.fail("priority", "must be one of low, medium, high");
        }
        priority
    }

    /// Checks the items in order and stops at the first tag past
    /// [`TAGS_MAX`] distinct ones: the answer is then known (422), and the
    /// rest of a 64 KB body of tags is not worth reading. `tags` never holds
    /// more than `TAGS_MAX + 1` entries, so de-duplication costs at most that
    /// many comparisons per item: linear in the body, not quadratic. Errors
    /// of items before the stop are reported too; later items are not read.
    fn tags(&mut self, value: Value) -> Option<Vec<String>> {
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
}

#[cfg(test)]
mod tests;
