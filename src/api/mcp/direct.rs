//! The common case of `/mcp`, answered without rmcp: a stateless
//! `tools/call` of one of our tools under protocol 2025-06-18 or 2025-11-25
//! (what agent frameworks send), with a plain JSON answer.
//!
//! Why: rmcp serves each stateless request by starting a whole service for
//! it (a service loop task, a handler task, a send task, channels and
//! cancellation tokens), and its `CallToolResult` wants `structuredContent`
//! as a `serde_json::Value`: the page was serialized as text, converted to a
//! `Value`, and rmcp serialized that `Value` again beside the escaped text.
//! Here the answer is the text once, escaped once, and the same bytes again
//! as `structuredContent`. Measured (bench/results/2026-12-03-mcp-list.md,
//! release): `mcp-list` went from 48-66% of `list`'s req/s to 89-104% on
//! both backends at 32 and 256 connections, server CPU from 158-226 to
//! 104-128 µs per request, callgrind from 1,028k to 677k instructions per
//! request (−34%; `list`: 555k).
//!
//! Only requests rmcp would accept and answer in exactly this way are taken
//! (every check below is as strict as rmcp's or stricter); anything else, the
//! request untouched, goes on to rmcp: other methods, versions or media
//! types, an `Origin` header, `_meta`, unknown tools, malformed bodies.
//! tests/api/mcp.rs checks that both paths answer the same.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::model::{
    CallToolResult, ErrorData, JsonRpcVersion2_0, RequestId, ServerJsonRpcMessage, ServerResult,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::tools::{Called, TaskTools};
use crate::{
    api::{AuthUser, extract::is_json},
    error::ApiError,
};

/// The protocol versions answered here: those before 2026-07-28 (no
/// per-request metadata, no standard headers, no `resultType`) that have
/// `structuredContent`.
const VERSIONS: [&str; 2] = ["2025-06-18", "2025-11-25"];

/// What the direct path needs: the tools, and the `Host` values rmcp allows.
pub struct Direct {
    tools: TaskTools,
    hosts: Hosts,
}

impl Direct {
    /// The direct path over `tools`, for the `allowed_hosts` given to rmcp
    /// (empty: any host).
    pub fn new(tools: TaskTools, allowed_hosts: &[String]) -> Self {
        let hosts = Hosts::new(allowed_hosts);
        Self { tools, hosts }
    }

    /// Whether the head is one this path answers: POST, a `Host` rmcp
    /// allows, no `Origin`, JSON in, JSON and SSE accepted, a known version.
    fn takes(&self, method: &Method, headers: &HeaderMap) -> bool {
        method == Method::POST
            && !headers.contains_key(header::ORIGIN)
            && self.hosts.allow(headers)
            && accepts_json_and_sse(headers)
            && is_json(headers)
            && headers
                .get("mcp-protocol-version")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| VERSIONS.contains(&v))
    }
}

/// The `Host` values rmcp allows; `None`: any (`MCP_ALLOWED_HOSTS=*`).
struct Hosts(Option<Vec<Authority>>);

/// A host name (lower case, no brackets) and maybe a port, as rmcp compares
/// `Host` headers with its allowed list.
struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    fn parse(raw: &str) -> Option<Self> {
        let authority = axum::http::uri::Authority::try_from(raw).ok()?;
        Some(Self {
            host: normalize(authority.host()),
            port: authority.port_u16(),
        })
    }
}

fn normalize(host: &str) -> String {
    host.trim_matches('[')
        .trim_matches(']')
        .to_ascii_lowercase()
}

impl Hosts {
    /// rmcp's reading of its allowed list (empty: any host).
    fn new(allowed: &[String]) -> Self {
        Self((!allowed.is_empty()).then(|| {
            allowed
                .iter()
                .map(|allowed| allowed.trim())
                .filter(|allowed| !allowed.is_empty())
                .map(|allowed| {
                    Authority::parse(allowed).unwrap_or_else(|| Authority {
                        host: normalize(allowed),
                        port: None,
                    })
                })
                .collect()
        }))
    }

    /// rmcp's DNS-rebinding check: a readable `Host` in the list, with the
    /// listed port if the entry has one.
    fn allow(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(Authority::parse)
        else {
            return false;
        };
        match &self.0 {
            None => true,
            Some(allowed) => allowed
                .iter()
                .any(|a| a.host == host.host && a.port.is_none_or(|p| host.port == Some(p))),
        }
    }
}

/// `Accept` lists `application/json` and `text/event-stream` (without
/// parameters or quotes, so no weight can exclude them).
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.contains([';', '"']) {
            return false;
        }
        for media in value.split(',').map(str::trim) {
            json |= media.eq_ignore_ascii_case("application/json");
            sse |= media.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

/// A `tools/call` request with nothing else in it (rmcp's own types for
/// the version and the id, so they read as rmcp reads them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    /// Read to check it is "2.0".
    #[serde(rename = "jsonrpc")]
    _jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    method: String,
    params: Params,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    name: String,
    arguments: Option<Map<String, Value>>,
}

/// The middleware on `/mcp`, after authentication: answers the requests
/// [`Direct::takes`], passes the others on to rmcp.
pub async fn direct(State(direct): State<Arc<Direct>>, request: Request, next: Next) -> Response {
    if !direct.takes(request.method(), request.headers()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // The body was read into memory before (`buffer_body`), within its limit.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::malformed_json("the request body could not be read").into_response();
    };
    let user = parts.extensions.get::<AuthUser>();
    let call = serde_json::from_slice::<Call>(&bytes)
        .ok()
        .filter(|call| call.method == "tools/call" && direct.tools.has_tool(&call.params.name));
    let (Some(call), Some(user)) = (call, user) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let args = call.params.arguments.unwrap_or_default();
    let body = match direct.tools.call(&call.params.name, user, &args).await {
        Called::Done(text) => Ok(success(&call.id, &text)),
        Called::Failed(failed) => failure(call.id, failed),
    };
    match body {
        // rmcp answers these JSON-RPC errors (internal errors) with 200 too.
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(err) => ApiError::Internal(err.into()).into_response(),
    }
}

/// `{"jsonrpc":"2.0","id":…,"result":{"content":[{"type":"text","text":…}],
/// "structuredContent":…,"isError":false}}`, what rmcp writes for a
/// successful `CallToolResult` under these versions, `text` being the JSON
/// of the answer (`structuredContent`'s keys keep the text's order, where
/// rmcp's `Value` sorts them: the same JSON object).
fn success(id: &RequestId, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * text.len() + 128);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    // A number or a string: serializing either cannot fail.
    let _ = serde_json::to_writer(&mut out, id);
    out.extend_from_slice(br#","result":{"content":[{"type":"text","text":"#);
    let _ = serde_json::to_writer(&mut out, text);
    out.extend_from_slice(br#"}],"structuredContent":"#);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(br#","isError":false}}"#);
    out
}

/// A failed call as rmcp writes it (rare, so through rmcp's own types).
fn failure(
    id: RequestId,
    failed: Result<CallToolResult, ErrorData>,
) -> Result<Vec<u8>, serde_json::Error> {
    let message = match failed {
        Ok(mut result) => {
            // Versions before 2026-07-28 have no `resultType`.
            result.result_type = None;
            ServerJsonRpcMessage::response(ServerResult::CallToolResult(result), id)
        }
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    };
    serde_json::to_vec(&message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn hosts_are_checked_as_rmcp_checks_them() {
        let allowed = ["localhost".to_owned(), "example.com:8443".to_owned()];
        let hosts = Hosts::new(&allowed);
        let host = |h: &'static str| hosts.allow(&headers(&[("host", h)]));
        assert!(host("localhost"));
        assert!(host("LOCALHOST:3000"));
        assert!(host("example.com:8443"));
        assert!(!host("example.com"));
        assert!(!host("example.com:80"));
        assert!(!host("evil.example"));
        assert!(!hosts.allow(&HeaderMap::new()));
    }

    #[test]
    fn only_plain_accept() {
        let both = "application/json, text/event-stream";
        assert!(accepts_json_and_sse(&headers(&[("accept", both)])));
        assert!(!accepts_json_and_sse(&headers(&[(
            "accept",
            "application/json;q=0, text/event-stream"
        )])));
        assert!(!accepts_json_and_sse(&headers(&[(
            "accept",
            "application/json"
        )])));
    }

    #[test]
    fn a_call_with_anything_more_is_left_to_rmcp() {
        let read = |body: &str| serde_json::from_slice::<Call>(body.as_bytes()).is_ok();
        assert!(read(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tasks","arguments":{}}}"#
        ));
        assert!(read(
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"list_tasks"}}"#
        ));
        assert!(!read(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tasks","_meta":{}}}"#
        ));
        assert!(!read(
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"list_tasks"}}"#
        ));
        assert!(!read(
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#
        ));
    }
}
