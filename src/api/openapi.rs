//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the types below, served at `/openapi.json` with an
//! offline Swagger UI at `/docs` (assets embedded at build time).
//!
//! Request bodies are validated by hand (`task::parse_input` / `parse_patch`,
//! so that every bad field is reported and 404 can outrank 422); the body
//! schemas here describe the same rules, and a test pins their limits to the
//! validator's constants.

use utoipa::{
    IntoParams, Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{
    domain::{
        FieldError,
        task::{Priority, Task},
    },
    error::Problem,
};

/// Adds the bearer JWT scheme that every `/api` operation requires.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "HS256/384/512 signed with BETTER_AUTH_SECRET, or a Better Auth \
                             jwt-plugin token (EdDSA, ES256, ES512, RS256, PS256) verified \
                             through its JWKS.",
                        ))
                        .build(),
                ),
            );
    }
}

/// Documents the two routes served by the Swagger UI integration rather
/// than by our handlers, so the document lists every route of API.md.
struct DocsRoutes;

impl Modify for DocsRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            ContentBuilder, HttpMethod, PathItem, ResponseBuilder, path::OperationBuilder,
        };
        let page = |summary: &str, status: &str, media: &str, description: &str| {
            let mut response = ResponseBuilder::new().description(description);
            if !media.is_empty() {
                response = response.content(media, ContentBuilder::new().build());
            }
            OperationBuilder::new()
                .summary(Some(summary))
                .tag("ops")
                .response(status, response)
                .security(utoipa::openapi::security::SecurityRequirement::default())
                .build()
        };
        openapi.paths.paths.insert(
            "/openapi.json".to_owned(),
            PathItem::new(
                HttpMethod::Get,
                page(
                    "This document",
                    "200",
                    "application/json",
                    "The OpenAPI 3.1 document",
                ),
            ),
        );
        openapi.paths.paths.insert(
            "/docs".to_owned(),
            PathItem::new(
                HttpMethod::Get,
                page(
                    "Interactive documentation",
                    "303",
                    "",
                    "Redirect to `/docs/`, the Swagger UI page (assets embedded; works offline)",
                ),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tasks-api",
        description = "Multi-user task API for Better Auth front ends. Every `/api` route \
                       needs `Authorization: Bearer <JWT>`; a user only ever sees their own \
                       tasks. Errors are RFC 9457 `application/problem+json`."
    ),
    paths(
        super::tasks::list,
        super::tasks::create,
        super::tasks::get_one,
        super::tasks::replace,
        super::tasks::update,
        super::tasks::delete,
        super::tasks::toggle,
        super::me::get_me,
        super::me::delete_me,
        super::compat::list,
        super::compat::create,
        super::compat::get_one,
        super::compat::replace,
        super::compat::update,
        super::compat::delete,
        super::compat::toggle,
        super::health::health,
        super::health::ready,
    ),
    components(schemas(Task, Problem, FieldError, super::tasks::TaskPage, super::me::Me)),
    modifiers(&BearerAuth, &DocsRoutes),
    tags(
        (name = "tasks", description = "The caller's tasks"),
        (name = "me", description = "The caller's user record"),
        (name = "compat", description = "The `/api/{user_id}/tasks` layout of older front ends"),
        (name = "ops", description = "Probes"),
    )
)]
pub struct ApiDoc;

/// A create or full-replace body (PUT is a full replace: omitted fields take
/// these defaults). Unknown and server-owned fields are refused with 422.
#[derive(ToSchema)]
#[schema(as = TaskInput)]
#[serde(deny_unknown_fields)]
pub struct TaskInputDoc {
    /// Trimmed of whitespace at both ends, then 1-200 characters.
    #[schema(min_length = 1, max_length = 200, examples("Buy milk"))]
    pub title: String,
    /// Not trimmed; may be empty.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Default false.
    #[schema(default = false, nullable = false)]
    pub completed: Option<bool>,
    #[schema(inline, nullable = false)]
    pub priority: Option<Priority>,
    /// Trimmed, 1-50 characters each, duplicates dropped, at most 20 distinct.
    #[schema(max_items = 20, inline, nullable = false)]
    pub tags: Option<Vec<TagDoc>>,
    /// RFC 3339 with seconds and an offset; returned in UTC.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_date: Option<String>,
}

/// A partial update: only the fields given change; `null` clears
/// `description` and `due_date` and is refused elsewhere.
#[derive(ToSchema)]
#[schema(as = TaskPatch)]
#[serde(deny_unknown_fields)]
pub struct TaskPatchDoc {
    #[schema(min_length = 1, max_length = 200, nullable = false)]
    pub title: Option<String>,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[schema(nullable = false)]
    pub completed: Option<bool>,
    #[schema(inline, nullable = false)]
    pub priority: Option<Priority>,
    #[schema(max_items = 20, inline, nullable = false)]
    pub tags: Option<Vec<TagDoc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_date: Option<String>,
}

/// One tag.
#[derive(ToSchema)]
#[schema(as = Tag, min_length = 1, max_length = 50)]
pub struct TagDoc(pub String);

/// Query parameters of `GET /api/v1/tasks`. Unknown parameters are ignored.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `all` (the default), `pending` or `completed`.
    #[param(inline)]
    pub status: Option<StatusFilter>,
    /// Only tasks of this priority.
    #[param(inline)]
    pub priority: Option<Priority>,
    /// Repeatable; a task must carry every given tag (exact, case-sensitive).
    /// At most 20 distinct values (a task holds at most 20 tags); more is 400.
    #[param(style = Form, explode)]
    pub tag: Option<Vec<String>>,
    /// Case-insensitive substring of title or description (`%`, `_`, `\` literal).
    pub q: Option<String>,
    /// Only tasks due strictly before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub due_before: Option<String>,
    /// Only tasks due strictly after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub due_after: Option<String>,
    /// Sort key, `-` for descending (default `-created_at`, newest first);
    /// ties are broken by id the same way.
    #[param(inline)]
    pub sort: Option<SortParam>,
    /// Page size.
    #[param(default = 20, minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Rows to skip (not with `cursor`).
    #[param(minimum = 0)]
    pub offset: Option<u64>,
    /// `next_cursor` of the previous page (same sort and filters).
    pub cursor: Option<String>,
}

/// Query parameters of `GET /api/{user_id}/tasks`: as v1, plus the `created`
/// sort spelling, and a default page of 100.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompatListParams {
    #[param(inline)]
    pub status: Option<StatusFilter>,
    #[param(inline)]
    pub priority: Option<Priority>,
    /// Repeatable; a task must carry every given tag (exact, case-sensitive).
    /// At most 20 distinct values (a task holds at most 20 tags); more is 400.
    #[param(style = Form, explode)]
    pub tag: Option<Vec<String>>,
    pub q: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub due_before: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub due_after: Option<String>,
    #[param(inline)]
    pub sort: Option<CompatSortParam>,
    #[param(default = 100, minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(minimum = 0)]
    pub offset: Option<u64>,
    pub cursor: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum StatusFilter {
    All,
    Pending,
    Completed,
}

#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum SortParam {
    created_at,
    #[schema(rename = "-created_at")]
    created_at_desc,
    updated_at,
    #[schema(rename = "-updated_at")]
    updated_at_desc,
    due_date,
    #[schema(rename = "-due_date")]
    due_date_desc,
    priority,
    #[schema(rename = "-priority")]
    priority_desc,
    title,
    #[schema(rename = "-title")]
    title_desc,
}

#[derive(ToSchema)]
#[allow(non_camel_case_types)]
pub enum CompatSortParam {
    created,
    #[schema(rename = "-created")]
    created_desc,
    created_at,
    #[schema(rename = "-created_at")]
    created_at_desc,
    updated_at,
    #[schema(rename = "-updated_at")]
    updated_at_desc,
    due_date,
    #[schema(rename = "-due_date")]
    due_date_desc,
    priority,
    #[schema(rename = "-priority")]
    priority_desc,
    title,
    #[schema(rename = "-title")]
    title_desc,
}

/// The document as pretty JSON, as served and as committed in `openapi.json`.
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}
