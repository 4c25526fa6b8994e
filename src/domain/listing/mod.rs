//! What a list request asks for: filters, sort, page size and position,
//! parsed from the query string (every mistake a [`FieldError`] naming the
//! parameter, which the HTTP layer answers 400; `params.rs`), and the keyset
//! cursor that carries a position between pages (`cursor.rs`).

mod cursor;
mod params;

use chrono::{DateTime, Utc};

use super::task::{Priority, Task};

pub use cursor::CursorKey;
pub use params::{ListParams, sort_schema_for};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
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
