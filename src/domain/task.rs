//! The task resource: its wire shape, its validation rules, and the inputs the
//! store accepts. Validation lives here, not in handlers or SQL, so both
//! backends receive only values that already satisfy API.md (the database
//! CHECK constraints are a second line of defence, not the first).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::invalid::{FieldError, Invalid};

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
    #[serde(serialize_with = "ser_opt_ts")]
    pub due_date: Option<DateTime<Utc>>,
    /// Set when `completed` goes false→true, cleared when it goes back.
    #[schema(required)]
    #[serde(serialize_with = "ser_opt_ts")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_ts")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_ts")]
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

/// RFC 3339 UTC with `Z`; fractional digits only when present, so a
/// `due_date` sent with whole seconds comes back exactly as sent.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    Rfc3339(ts).to_string()
}

/// [`format_ts`] without the intermediate `String` or `fmt` machinery: a
/// page of tasks has up to four timestamps per task, written straight
/// into the response. Same output as chrono's `to_rfc3339_opts(AutoSi,
/// true)` (a unit test compares them), which remains the path for years
/// outside 0–9999 and leap seconds.
struct Rfc3339<'a>(&'a DateTime<Utc>);

impl Rfc3339<'_> {
    /// Writes the timestamp into `buf`; `None` for the rare chrono path.
    fn write(&self, buf: &mut [u8; 32]) -> Option<usize> {
        use chrono::{Datelike as _, Timelike as _};
        let ts = self.0;
        let (year, nanos) = (ts.year(), ts.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return None;
        }
        let mut at = 0;
        let mut put = |value: u32, digits: u32, after: u8| {
            for i in (0..digits).rev() {
                buf[at] = b'0' + (value / 10u32.pow(i) % 10) as u8;
                at += 1;
            }
            if after != 0 {
                buf[at] = after;
                at += 1;
            }
        };
        put(year as u32, 4, b'-');
        put(ts.month(), 2, b'-');
        put(ts.day(), 2, b'T');
        put(ts.hour(), 2, b':');
        put(ts.minute(), 2, b':');
        match nanos {
            0 => put(ts.second(), 2, b'Z'),
            n => {
                put(ts.second(), 2, b'.');
                match n {
                    n if n % 1_000_000 == 0 => put(n / 1_000_000, 3, b'Z'),
                    n if n % 1_000 == 0 => put(n / 1_000, 6, b'Z'),
                    n => put(n, 9, b'Z'),
                }
            }
        }
        Some(at)
    }
}

impl std::fmt::Display for Rfc3339<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 32];
        match self.write(&mut buf) {
            // Only ASCII digits and separators were written.
            Some(len) => {
                f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| std::fmt::Error)?)
            }
            None => f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

/// Appends `ts` exactly as a serialised [`Task`] spells it (no quotes).
pub fn push_ts(out: &mut Vec<u8>, ts: &DateTime<Utc>) {
    let mut buf = [0u8; 32];
    match Rfc3339(ts).write(&mut buf) {
        Some(len) => out.extend_from_slice(&buf[..len]),
        None => out.extend_from_slice(ts.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes()),
    }
}

/// Appends the instant `unix_micros` (microseconds since 1970-01-01 UTC)
/// exactly as [`push_ts`] spells it, and says whether it did: outside the
/// years 0–9999 it writes nothing. Why: PostgreSQL sends timestamps as an
/// integer, and a page of 20 tasks has 80 of them; going through chrono
/// (to a date and back to digits) was most of their cost. Civil date from
/// day count after Howard Hinnant's `civil_from_days`.
pub fn push_unix_micros(out: &mut Vec<u8>, unix_micros: i64) -> bool {
    let secs = unix_micros.div_euclid(1_000_000);
    let micros = unix_micros.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return false;
    }
    let mut buf = [0u8; 27];
    let two = |buf: &mut [u8], at: usize, n: u32| {
        buf[at] = b'0' + (n / 10) as u8;
        buf[at + 1] = b'0' + (n % 10) as u8;
    };
    let year = year as u32;
    two(&mut buf, 0, year / 100);
    two(&mut buf, 2, year % 100);
    buf[4] = b'-';
    two(&mut buf, 5, month);
    buf[7] = b'-';
    two(&mut buf, 8, day);
    buf[10] = b'T';
    two(&mut buf, 11, of_day / 3600);
    buf[13] = b':';
    two(&mut buf, 14, of_day / 60 % 60);
    buf[16] = b':';
    two(&mut buf, 17, of_day % 60);
    let len = if micros == 0 {
        19
    } else {
        buf[19] = b'.';
        let (value, digits) = if micros.is_multiple_of(1000) {
            (micros / 1000, 3)
        } else {
            (micros, 6)
        };
        let mut rest = value;
        for i in (0..digits).rev() {
            buf[20 + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        20 + digits
    };
    buf[len] = b'Z';
    out.extend_from_slice(&buf[..=len]);
    true
}

fn ser_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Rfc3339(ts))
}

fn ser_opt_ts<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => ser_ts(ts, s),
        None => s.serialize_none(),
    }
}

/// Both backends store microseconds; truncating here keeps what a client
/// reads back identical on SQLite and PostgreSQL.
pub fn truncate_to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    let micros = ts.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(ts)
}

/// Lower-case hex SHA-256, for fingerprints and migration checksums.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The current time at storage precision.
pub fn now() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

/// Parses an RFC 3339 date-time that has seconds and an explicit offset.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    // chrono's RFC 3339 parser already demands seconds and an offset; it also
    // accepts a space for `T`, which RFC 3339 allows as well.
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|ts| truncate_to_micros(ts.with_timezone(&Utc)))
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
    fn unix_micros_are_spelled_as_push_ts_spells_them() {
        let year = |y: i32| {
            chrono::NaiveDate::from_ymd_opt(y, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let mut values = vec![
            0,
            -1,
            1,
            999,
            1000,
            1_000_000,
            -86_400_000_000,
            year(0),
            year(0) - 1,
            year(10000) - 1,
            year(10000),
            year(2000) + 59 * 86_400_000_000, // 2000-02-29
            year(1900) + 59 * 86_400_000_000, // 1900-03-01
            year(2100) + 58 * 86_400_000_000, // 2100-02-28
            year(-5),
            year(12345),
        ];
        // A spread over the whole range, with every kind of fraction.
        let (lo, hi) = (year(-2), year(10002));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..200_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let at = lo + (x >> 11) as i64 % (hi - lo);
            values.push(match i % 3 {
                0 => at - at.rem_euclid(1_000_000),
                1 => at - at.rem_euclid(1000),
                _ => at,
            });
        }
        for micros in values {
            let ts = DateTime::from_timestamp_micros(micros).unwrap();
            let mut mine = Vec::new();
            let mut theirs = Vec::new();
            push_ts(&mut theirs, &ts);
            if push_unix_micros(&mut mine, micros) {
                assert_eq!(
                    String::from_utf8(mine).unwrap(),
                    String::from_utf8(theirs).unwrap()
                );
            } else {
                assert!(mine.is_empty());
                let year = chrono::Datelike::year(&ts);
                assert!(!(0..=9999).contains(&year), "{micros} is {ts}");
            }
        }
    }

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

    #[test]
    fn timestamps_format_exactly_as_chrono_auto_si() {
        use chrono::TimeZone as _;
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..20_000u64 {
            let secs = (next() % 400_000_000_000) as i64 - 62_000_000_000;
            let nanos = match i % 4 {
                0 => 0,
                1 => (next() % 1000) as u32 * 1_000_000,
                2 => (next() % 1_000_000) as u32 * 1_000,
                _ => (next() % 1_000_000_000) as u32,
            };
            let ts = Utc.timestamp_opt(secs, nanos).unwrap();
            assert_eq!(
                format_ts(&ts),
                ts.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                "{secs} {nanos}"
            );
        }
    }
}
