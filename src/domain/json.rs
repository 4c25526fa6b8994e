//! Task JSON written directly into the response buffer.
//!
//! Nearly every response is one task or a page of them, and serde_json spent
//! a fifth of a list request's instructions on them (measured with
//! callgrind): it escapes every key on every call, routes timestamps through
//! `fmt`, and escapes strings a byte at a time. This writer emits the keys as
//! constants, timestamps from a stack buffer, and copies strings that need
//! no escaping (nearly all) in one go, handing the rest to serde_json so the
//! escaping rules stay serde_json's. A unit test holds the output byte for
//! byte to `serde_json::to_vec` of the same task.
//!
//! Lists go one step further: each backend writes a page straight from its
//! rows through [`TaskFields`] (borrowed text, tags and timestamps in the
//! backend's own form), so no task is built per row, and the one key order
//! lives in [`push_fields`].

use chrono::{DateTime, Utc};

use super::task::{Priority, Task, push_ts};

/// About what one task takes, to size buffers up front.
pub const TASK_SIZE_HINT: usize = 400;

/// A task's fields as a store holds them, borrowed. Why: a page is written
/// straight from the database's rows, and building an owned [`Task`] per
/// row (a string allocation per text field and tag, dropped right after)
/// was most of what a list request spent on its rows. Each backend borrows
/// its own forms (`Tags`, `Ts`); [`push_fields`] keeps the one key order.
pub struct TaskFields<'a, Tags, Ts> {
    pub id: i64,
    pub user_id: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub completed: bool,
    pub priority: Priority,
    pub tags: Tags,
    pub due_date: Option<Ts>,
    pub completed_at: Option<Ts>,
    pub created_at: Ts,
    pub updated_at: Ts,
    pub version: i64,
}

impl<'a> TaskFields<'a, &'a [String], DateTime<Utc>> {
    /// The fields of a decoded task.
    pub fn of(task: &'a Task) -> Self {
        Self {
            id: task.id,
            user_id: &task.user_id,
            title: &task.title,
            description: task.description.as_deref(),
            completed: task.completed,
            priority: task.priority,
            tags: &task.tags,
            due_date: task.due_date,
            completed_at: task.completed_at,
            created_at: task.created_at,
            updated_at: task.updated_at,
            version: task.version,
        }
    }
}

impl<Tags, Ts> TaskFields<'_, Tags, Ts> {
    /// The owned task these fields hold, given how the backend's tags and
    /// timestamps become owned values (a single task, a list's cursor row).
    pub fn into_task(
        self,
        tags: impl FnOnce(Tags) -> Vec<String>,
        ts: impl Fn(Ts) -> DateTime<Utc>,
    ) -> Task {
        Task {
            id: self.id,
            user_id: self.user_id.to_owned(),
            title: self.title.to_owned(),
            description: self.description.map(str::to_owned),
            completed: self.completed,
            priority: self.priority,
            tags: tags(self.tags),
            due_date: self.due_date.map(&ts),
            completed_at: self.completed_at.map(&ts),
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            version: self.version,
        }
    }
}

/// A value that writes itself as JSON, the way [`Task`]'s `Serialize`
/// output spells it; what [`TaskFields`] needs of its tags and timestamps.
pub trait PushJson {
    fn push_json(&self, out: &mut Vec<u8>);
}

impl<T: PushJson + ?Sized> PushJson for &T {
    fn push_json(&self, out: &mut Vec<u8>) {
        (**self).push_json(out);
    }
}

impl PushJson for str {
    fn push_json(&self, out: &mut Vec<u8>) {
        push_str(out, self);
    }
}

impl PushJson for String {
    fn push_json(&self, out: &mut Vec<u8>) {
        push_str(out, self);
    }
}

impl<T: PushJson> PushJson for [T] {
    fn push_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.push_json(out);
        }
        out.push(b']');
    }
}

impl<T: PushJson> PushJson for Vec<T> {
    fn push_json(&self, out: &mut Vec<u8>) {
        self.as_slice().push_json(out);
    }
}

impl PushJson for DateTime<Utc> {
    fn push_json(&self, out: &mut Vec<u8>) {
        push_opt_ts(out, Some(self));
    }
}

impl<T: PushJson> PushJson for Option<T> {
    fn push_json(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.push_json(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

/// One task as a JSON object, identical to its `Serialize` output.
pub fn push_task(out: &mut Vec<u8>, task: &Task) {
    push_fields(out, &TaskFields::of(task));
}

/// A task's fields as the JSON object of the task they hold.
pub fn push_fields<Tags: PushJson, Ts: PushJson>(
    out: &mut Vec<u8>,
    task: &TaskFields<'_, Tags, Ts>,
) {
    out.extend_from_slice(b"{\"id\":");
    push_int(out, task.id);
    out.extend_from_slice(b",\"user_id\":");
    push_str(out, task.user_id);
    out.extend_from_slice(b",\"title\":");
    push_str(out, task.title);
    out.extend_from_slice(b",\"description\":");
    task.description.push_json(out);
    out.extend_from_slice(if task.completed {
        b",\"completed\":true,\"priority\":\""
    } else {
        b",\"completed\":false,\"priority\":\""
    });
    out.extend_from_slice(task.priority.as_str().as_bytes());
    out.extend_from_slice(b"\",\"tags\":");
    task.tags.push_json(out);
    out.extend_from_slice(b",\"due_date\":");
    task.due_date.push_json(out);
    out.extend_from_slice(b",\"completed_at\":");
    task.completed_at.push_json(out);
    out.extend_from_slice(b",\"created_at\":");
    task.created_at.push_json(out);
    out.extend_from_slice(b",\"updated_at\":");
    task.updated_at.push_json(out);
    out.extend_from_slice(b",\"version\":");
    push_int(out, task.version);
    out.push(b'}');
}

/// Tasks as a JSON array.
pub fn push_tasks(out: &mut Vec<u8>, tasks: &[Task]) {
    out.push(b'[');
    for (i, task) in tasks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_task(out, task);
    }
    out.push(b']');
}

/// A JSON string, escaped exactly as serde_json escapes it.
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// An integer, as serde_json writes it.
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A timestamp as a JSON string, or `null`.
pub fn push_opt_ts(out: &mut Vec<u8>, ts: Option<&DateTime<Utc>>) {
    match ts {
        Some(ts) => {
            out.push(b'"');
            push_ts(out, ts);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Whether any byte is one JSON requires escaped: `"`, `\` or a control
/// character below 0x20. Eight bytes at a time (the classic "has a byte
/// less than n" / "has a zero byte" bit tricks), then the tail.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Per byte, (b & 0x7f) + 0x60 reaches 0x80 exactly when b & 0x7f
        // >= 0x20 (and never carries into the next byte), so a byte below
        // 0x20 is one where neither that sum nor b has its high bit set.
        let control = !((x & !HIGHS).wrapping_add(0x6060_6060_6060_6060) | x) & HIGHS != 0;
        if control
            || has_zero(x ^ (ONES * u64::from(b'"')))
            || has_zero(x ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(title: &str, description: Option<&str>, tags: &[&str]) -> Task {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        Task {
            id: 42,
            user_id: "user-é\"1".to_owned(),
            title: title.to_owned(),
            description: description.map(str::to_owned),
            completed: description.is_some(),
            priority: Priority::High,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            due_date: description.map(|_| at("2026-12-01T09:00:00Z")),
            completed_at: description.map(|_| at("2026-11-30T10:11:12.5Z")),
            created_at: at("2026-11-30T10:11:12.123456Z"),
            // Past year 9999: the chrono path of the timestamp writer.
            updated_at: chrono::NaiveDate::from_ymd_opt(10000, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
            version: i64::MAX,
        }
    }

    #[test]
    fn matches_serde_json_byte_for_byte() {
        let strings = [
            "",
            "plain words",
            "exactly8",
            "sixteen bytes ok",
            "quote \" inside",
            "back\\slash at 9",
            "tab\tand\nnewline\r",
            "\u{1}\u{1f}\u{7f}",
            "ünïcödé ✓ 🦀",
            "0123456789abcdef\u{8}",
            "late quote in the second word.....\"",
        ];
        let mut tasks = Vec::new();
        for s in strings {
            tasks.push(task(s, Some(s), &[s, "home"]));
            tasks.push(task(s, None, &[]));
        }
        for t in &tasks {
            let mut mine = Vec::new();
            push_task(&mut mine, t);
            let theirs = serde_json::to_vec(t).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&mine),
                String::from_utf8_lossy(&theirs)
            );
        }
        let mut mine = Vec::new();
        push_tasks(&mut mine, &tasks);
        assert_eq!(mine, serde_json::to_vec(&tasks).unwrap());
    }

    #[test]
    fn escape_detection_agrees_with_a_byte_loop() {
        for byte in 0..=255u8 {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = byte;
                let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(needs_escape(&bytes), expected, "byte {byte:#x} at {at}");
            }
        }
    }
}
