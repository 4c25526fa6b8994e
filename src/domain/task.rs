//! The task resource: its wire shape, its validation rules, and the inputs the
//! store accepts. Validation lives here, not in handlers or SQL, so both
//! backends receive only values that already satisfy API.md (the database
//! CHECK constraints are a second line of defence, not the first).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

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
            "priority": self.priority.as_str(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
