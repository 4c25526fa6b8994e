//! The five task tools. Each call is the storage operation of its HTTP
//! route, after the route's validation (`task::parse_input`,
//! `task::parse_patch`, `ListQuery::parse`), on behalf of the user the auth
//! layer verified; what the agent can fix comes back as an `isError` result
//! carrying the `detail` the HTTP API would answer.

use std::sync::Arc;

use axum::http::request::Parts;
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    api::{AppState, AuthUser, tasks},
    db::{Change, Created, Precondition},
    domain::{
        input::RawTask,
        listing::{ListParams, ListQuery, ListSpec, V1_LIMITS},
        task::{Task, TaskInput, TaskPatch},
        time,
    },
    error::ApiError,
};

/// The tool handler: the application state and the tools (rmcp clones it
/// for each request it serves).
#[derive(Clone)]
pub struct TaskTools {
    state: AppState,
    tools: Arc<[Tool]>,
}

impl TaskTools {
    /// A handler over `state` offering `tools` (see [`catalogue`](super::catalogue::catalogue)).
    pub fn new(state: AppState, tools: Arc<[Tool]>) -> Self {
        Self { state, tools }
    }

    /// Whether `name` is one of the tools.
    pub fn has_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|tool| tool.name == name)
    }

    /// Runs tool `name` (one of [`has_tool`](Self::has_tool)'s) for `user`:
    /// what both the rmcp handler and the [`direct`](super::direct) path answer.
    pub async fn call(&self, name: &str, user: &AuthUser, args: &Map<String, Value>) -> Called {
        match self.run(name, user, args).await {
            Ok(text) => Called::Done(text),
            Err(err) => Called::Failed(failure(err)),
        }
    }

    async fn run(&self, name: &str, user: &AuthUser, args: &Map<String, Value>) -> Outcome {
        check_user_id(user, args)?;
        match name {
            "add_task" => add_task(&self.state, user, args).await,
            "list_tasks" => list_tasks(&self.state, user, args).await,
            "complete_task" => complete_task(&self.state, user, args).await,
            "update_task" => update_task(&self.state, user, args).await,
            "delete_task" => delete_task(&self.state, user, args).await,
            // `call_tool` answers unknown names before this.
            _ => Err(ApiError::NotFound),
        }
    }
}

/// A tool's answer (its JSON as text, in the field order of the HTTP API's
/// bodies, what a model reads; the same JSON is the `structuredContent`),
/// or why it failed.
type Outcome = Result<String, ApiError>;

/// The answer `body`, serialized once.
fn reply<T: Serialize>(body: &T) -> Outcome {
    serde_json::to_string(body).map_err(|e| ApiError::Internal(e.into()))
}

/// How a tool call ends.
pub enum Called {
    /// Done: the answer's JSON text, sent both as the text content and as
    /// `structuredContent`.
    Done(String),
    /// Failed: an `isError` result (the agent can fix it) or a JSON-RPC
    /// error, as the agent gets it.
    Failed(Result<CallToolResult, ErrorData>),
}

impl ServerHandler for TaskTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tasks-api", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The signed-in user's task list (the bearer token says who). Use \
                 list_tasks to find a task's id before completing, updating or \
                 deleting it.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.has_tool(&request.name) {
            return Err(ErrorData::invalid_params(
                format!("no tool named {:?}", request.name),
                None,
            ));
        }
        // The auth layer put the caller there; without it nothing runs.
        let user = context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<AuthUser>())
            .ok_or_else(|| ErrorData::internal_error("the caller is not authenticated", None))?;
        let args = request.arguments.unwrap_or_default();
        let result = match self.call(&request.name, user, &args).await {
            Called::Done(text) => {
                // The text is our own JSON, so this parse does not fail.
                let value = serde_json::from_str(&text)
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                result.structured_content = Some(value);
                result
            }
            Called::Failed(failed) => failed?,
        };
        Ok(result.into())
    }
}

/// What the agent is told when a call fails: an `isError` result with the
/// HTTP API's `detail` when the agent can fix it, else a JSON-RPC error.
fn failure(err: ApiError) -> Result<CallToolResult, ErrorData> {
    match err {
        ApiError::Internal(cause) => {
            tracing::error!(error = %format_args!("{cause:#}"), "tool call failed");
            Err(ErrorData::internal_error("internal server error", None))
        }
        err @ ApiError::Unavailable(_) => {
            tracing::warn!(error = %err, "tool call failed");
            Err(ErrorData::internal_error(err.detail(), None))
        }
        err => Ok(CallToolResult::error(vec![ContentBlock::text(
            err.detail(),
        )])),
    }
}

/// A `user_id` argument must name the caller: agents are often handed one,
/// and the token, not the model, says who is calling.
fn check_user_id(user: &AuthUser, args: &Map<String, Value>) -> Result<(), ApiError> {
    match args.get("user_id") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(id)) if id == user.id() => Ok(()),
        Some(_) => Err(ApiError::BadRequest {
            detail: "user_id is not the signed-in user's id; leave it out (the bearer token \
                     says who is calling)"
                .to_owned(),
            errors: Vec::new(),
        }),
    }
}

/// The arguments less those named in `not_fields` (the ones that are not
/// task fields), as an HTTP body: any other is checked as the route checks it.
fn body(args: &Map<String, Value>, not_fields: &[&str]) -> RawTask {
    let fields: Map<String, Value> = args
        .iter()
        .filter(|(k, _)| !not_fields.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    RawTask::from(fields)
}

/// The `task_id` argument: a positive integer.
fn task_id(args: &Map<String, Value>) -> Result<i64, ApiError> {
    args.get("task_id")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_param("task_id", "must be a positive integer"))
}

/// What a write tool answers.
#[derive(Serialize)]
struct Written<'a> {
    task_id: i64,
    status: &'a str,
    title: &'a str,
    task: &'a Task,
}

/// `{task_id, status, title, task}`.
fn written(status: &str, task: &Task) -> Outcome {
    let body = Written {
        task_id: task.id,
        status,
        title: &task.title,
        task,
    };
    reply(&body)
}

/// `add_task` = `POST /api/v1/tasks`.
async fn add_task(state: &AppState, user: &AuthUser, args: &Map<String, Value>) -> Outcome {
    if args.contains_key("completed") {
        return Err(ApiError::bad_param(
            "completed",
            "is not an add_task argument (a new task is open; call complete_task after)",
        ));
    }
    let input = TaskInput::try_from(body(args, &["user_id"]))?;
    match tasks::insert(state, user, &input, time::now(), None).await? {
        Created::New(task) => written("created", &task),
        // Only a request with an idempotency key can get these.
        Created::Replay(_) | Created::KeyReused | Created::UserMissing => Err(ApiError::Internal(
            anyhow::anyhow!("unexpected create outcome without an idempotency key"),
        )),
    }
}

/// The arguments of `list_tasks` as the query string of `GET /api/v1/tasks`,
/// so that `ListQuery::parse` checks them as it checks the route's.
fn list_query(args: &Map<String, Value>) -> Result<String, ApiError> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (name, value) in args {
        let name = match name.as_str() {
            "user_id" => continue,
            name @ ("status" | "q" | "tag" | "limit") => name,
            other => {
                return Err(ApiError::bad_param(
                    other,
                    "is not a list_tasks argument (status, q, tag, limit)",
                ));
            }
        };
        let values = match value {
            Value::Null => continue,
            Value::Array(items) if name == "tag" => items.iter().collect(),
            value => vec![value],
        };
        for value in values {
            let text = match (name, value) {
                (_, Value::String(s)) => s.clone(),
                ("limit", Value::Number(n)) => n.to_string(),
                _ => {
                    let kind = if name == "limit" {
                        "an integer"
                    } else {
                        "a string"
                    };
                    return Err(ApiError::bad_param(name, format!("must be {kind}")));
                }
            };
            pairs.push((name, text));
        }
    }
    serde_urlencoded::to_string(&pairs).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
}

/// What `list_tasks` answers.
#[derive(Serialize)]
struct Listed<'a> {
    tasks: &'a [Task],
    has_more: bool,
}

/// `list_tasks` = `GET /api/v1/tasks` (first page).
async fn list_tasks(state: &AppState, user: &AuthUser, args: &Map<String, Value>) -> Outcome {
    let raw = list_query(args)?;
    let query = ListQuery::parse(ListParams::from_query(Some(&raw))?, V1_LIMITS, false)?;
    let spec = ListSpec {
        user_id: user.id().to_owned(),
        filters: query.filters,
        sort: query.sort,
        limit: query.limit,
        offset: 0,
        after: None,
    };
    let page = state.store.list_tasks(&spec, user.by).await?;
    reply(&Listed {
        tasks: &page.items,
        has_more: page.more,
    })
}

/// `complete_task` = `PATCH /api/v1/tasks/{id}` with `{"completed": true}`.
async fn complete_task(state: &AppState, user: &AuthUser, args: &Map<String, Value>) -> Outcome {
    let id = task_id(args)?;
    let patch = TaskPatch {
        completed: Some(true),
        ..TaskPatch::default()
    };
    let task = tasks::change(state, user, id, &Change::Patch(patch), &Precondition::None).await?;
    written("completed", &task)
}

/// `update_task` = `PATCH /api/v1/tasks/{id}`: 404 outranks the body's
/// errors, as on the route.
async fn update_task(state: &AppState, user: &AuthUser, args: &Map<String, Value>) -> Outcome {
    let id = task_id(args)?;
    let body = body(args, &["user_id", "task_id"]);
    let patch = tasks::patch_from::<TaskPatch>(state, user, id, body).await?;
    let task = tasks::change(state, user, id, &Change::Patch(patch), &Precondition::None).await?;
    written("updated", &task)
}

/// `delete_task` = `DELETE /api/v1/tasks/{id}`.
async fn delete_task(state: &AppState, user: &AuthUser, args: &Map<String, Value>) -> Outcome {
    let id = task_id(args)?;
    let deleted = state
        .store
        .delete_task(user.id(), id, &Precondition::None, user.by);
    written("deleted", &tasks::written(deleted.await?)?)
}
