//! `/mcp`: the task tools for AI agents, over the Model Context Protocol's
//! streamable HTTP transport (the official SDK, `rmcp`).
//!
//! Stateless: every POST is served on its own (initialize included) and no
//! session id is handed out, so any instance behind a load balancer answers
//! any request. The bearer token is checked before rmcp sees the request,
//! exactly as `AuthUser` checks it for `/api/` (401 problem, rate limits,
//! metrics under the route `/mcp`); the verified user rides in the request's
//! extensions, which rmcp hands to the tool handler (it runs the handler in
//! a task of its own, where task-locals do not reach). `AuthUser` carries
//! the request's storage deadline too, so a tool's storage call ends by the
//! same deadline as its route's.
//!
//! The common tool calls (a stateless `tools/call` under protocol
//! 2025-06-18 or 2025-11-25, as agent frameworks send them) are answered by
//! [`direct`] without rmcp, the same JSON for a fraction of the CPU; rmcp
//! answers everything else.
//!
//! The rest of the stack applies as to `/api/`: request ids, logs, CORS,
//! the body limit, and the request time limit, which bounds the wait for
//! the answer's head only. The answers here are whole JSON bodies; were one
//! an event stream (a handler that notifies before answering), the time
//! limit would not cut it, since the stream is the body, sent after the
//! head.

mod catalogue;
mod direct;
mod schema;
mod tools;

use std::sync::Arc;

use axum::{
    Router,
    extract::{FromRequestParts, Request, State},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
};
use rmcp::transport::{
    StreamableHttpServerConfig, StreamableHttpService,
    streamable_http_server::session::never::NeverSessionManager,
};

use super::{AppState, AuthUser};
use crate::{config::Config, middleware::MAX_BODY_BYTES};
use direct::Direct;

pub use tools::TaskTools;

/// The `/mcp` route, authenticated.
pub fn routes(state: &AppState, config: &Config) -> Router<AppState> {
    let handler = TaskTools::new(state.clone(), catalogue::catalogue());
    let server = server_config(config);
    let direct = Arc::new(Direct::new(handler.clone(), &server.allowed_hosts));
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        server,
    );
    Router::new()
        .route_service("/mcp", service)
        // The common tool calls, without rmcp (see `direct`).
        .route_layer(from_fn_with_state(direct, direct::direct))
        .route_layer(from_fn_with_state(state.clone(), authenticate))
}

/// Stateless, plain JSON answers (no stream is needed: the tools send no
/// progress), the `Host` and `Origin` checks from the configuration.
fn server_config(config: &Config) -> StreamableHttpServerConfig {
    let server = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        // A browser may call only from the front ends CORS allows; clients
        // that send no `Origin` (agents, the Inspector's proxy) pass.
        .with_allowed_origins(config.cors_origins.clone())
        .enforce_origin_validation();
    if config.mcp_allowed_hosts.is_empty() {
        tracing::warn!(
            "MCP_ALLOWED_HOSTS=*: /mcp answers any Host header (no DNS-rebinding protection)"
        );
        server.disable_allowed_hosts()
    } else {
        server.with_allowed_hosts(config.mcp_allowed_hosts.clone())
    }
}

/// Verifies the bearer token as every `/api/` route does, before any MCP
/// processing; the user goes into the request's extensions for the tools.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match AuthUser::from_request_parts(&mut parts, &state).await {
        Ok(user) => {
            parts.extensions.insert(user);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(err) => err.into_response(),
    }
}
