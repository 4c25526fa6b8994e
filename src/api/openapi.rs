//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the types below, served at `/openapi.json` with an
//! offline Swagger UI at `/docs` (assets embedded at build time).
//!
//! Request bodies and the v1 list parameters are documented by the types the
//! handlers read (`TaskInput`, `TaskPatch`, `ListParams`); a test pins their
//! schema limits to the validator's constants.

use utoipa::{
    IntoParams, Modify, OpenApi,
    openapi::{
        RefOr, Schema,
        path::ParameterIn,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::{
    domain::{
        FieldError,
        listing::{COMPAT_LIMITS, ListParams, sort_schema_for},
        task::Task,
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
        super::changes::changes,
        super::events::events,
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
    components(schemas(
        Task,
        Problem,
        FieldError,
        super::tasks::TaskPage,
        super::me::Me,
        super::changes::ChangesPage,
        crate::domain::changes::TaskChange
    )),
    modifiers(&BearerAuth, &DocsRoutes),
    tags(
        (name = "tasks", description = "The caller's tasks"),
        (name = "me", description = "The caller's user record"),
        (name = "sync", description = "Keeping a copy current: the change feed and the live event stream"),
        (name = "compat", description = "The `/api/{user_id}/tasks` layout of older front ends"),
        (name = "ops", description = "Probes"),
    )
)]
pub struct ApiDoc;

/// Query parameters of `GET /api/{user_id}/tasks`: v1's, plus the `created`
/// sort spelling, and a default page of 100 (`COMPAT_LIMITS`).
pub struct CompatListParams;

impl IntoParams for CompatListParams {
    fn into_params(
        parameter_in: impl Fn() -> Option<ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        let mut params = ListParams::into_params(parameter_in);
        for param in &mut params {
            let Some(RefOr::T(Schema::Object(schema))) = &mut param.schema else {
                continue;
            };
            match param.name.as_str() {
                "sort" => *schema = sort_schema_for(true),
                "limit" => schema.default = Some(COMPAT_LIMITS.default.into()),
                _ => {}
            }
        }
        params
    }
}

/// The document as pretty JSON, as served and as committed in `openapi.json`.
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}
