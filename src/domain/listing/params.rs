//! The query string of a list as sent ([`ListParams`], also its OpenAPI
//! parameters) and its checks ([`ListQuery::parse`]).

use super::{Filters, Limits, ListQuery, Sort, Status};
use crate::domain::{
    invalid::FieldError,
    task::{Priority, TAGS_MAX, parse_timestamp},
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
