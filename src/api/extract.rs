//! Our own extractors, so every rejection is a problem+json `ApiError`
//! rather than axum's plain-text default.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{HeaderMap, header, request::Parts},
};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

use super::{AppState, auth_user::AuthUser};
use crate::{db::Precondition, error::ApiError};

/// A JSON request body read into `R`: media type and syntax checked. Its
/// size was checked once, when the middleware read it
/// (`middleware::buffer_body`). `R` must accept every JSON object and leave
/// field rules to a later step (as [`RawTask`](crate::domain::input::RawTask)
/// does, which accepts any value), so the handler can rank 404 above 422;
/// a body `R` refuses is therefore not an object: 422.
pub struct JsonBody<R>(pub R);

impl<S: Send + Sync, R: DeserializeOwned> FromRequest<S> for JsonBody<R> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let is_json = is_json(request.headers());
        let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .map_err(|_| ApiError::malformed_json("the request body could not be read"))?;
        parse_json(&bytes, is_json).map(Self)
    }
}

fn parse_json<R: DeserializeOwned>(bytes: &Bytes, is_json: bool) -> Result<R, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::malformed_json(
            "the request body is empty; a JSON object is expected",
        ));
    }
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::malformed_json(format!("the request body is not valid JSON: {err}"))
    })
}

/// `application/json`, with any parameters (such as `charset`); as rmcp
/// reads `Content-Type` too (`mcp::direct`).
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The `{id}` of a task route: a positive 64-bit integer written the one
/// canonical way (decimal digits, no sign, no leading zero), or no task at
/// all. Why canonical only: `+9` or `09` naming task 9 would give one task
/// many URLs, which caches, logs and clients comparing `Location`s disagree on.
pub struct TaskId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for TaskId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        params
            .get("id")
            .and_then(|raw| canonical_id(raw))
            .map(Self)
            .ok_or(ApiError::NotFound)
    }
}

/// `raw` as a task id if it is one written canonically (1..=i64::MAX).
fn canonical_id(raw: &str) -> Option<i64> {
    let canonical = raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0');
    raw.parse::<i64>().ok().filter(|id| canonical && *id > 0)
}

/// The caller of a `/api/{user_id}/…` route, who must be the user the path
/// names (403 otherwise), checked right after authentication.
pub struct CompatUser(pub AuthUser);

impl FromRequestParts<AppState> for CompatUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let params = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Forbidden)?;
        if params.get("user_id").map(String::as_str) != Some(user.claims.sub.as_str()) {
            return Err(ApiError::Forbidden);
        }
        Ok(Self(user))
    }
}

/// The `If-Match` condition (RFC 9110 §13.1.1, strong comparison).
pub struct IfMatch(pub Precondition);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self(parse_if_match(&parts.headers)))
    }
}

fn parse_if_match(headers: &HeaderMap) -> Precondition {
    let values: Vec<_> = headers.get_all(header::IF_MATCH).iter().collect();
    if values.is_empty() {
        return Precondition::None;
    }
    let mut versions = Vec::new();
    for value in values {
        // A header that is not even ASCII matches nothing.
        let Ok(value) = value.to_str() else { continue };
        for member in value.split(',').map(str::trim) {
            if member == "*" {
                return Precondition::Any;
            }
            // Weak tags (W/"n") never match under strong comparison.
            if let Some(version) = member
                .strip_prefix('"')
                .and_then(|m| m.strip_suffix('"'))
                .and_then(|m| m.parse::<i64>().ok())
            {
                versions.push(version);
            }
        }
    }
    Precondition::Versions(versions)
}

/// A validated `Idempotency-Key` header, when present.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let bad = || {
            ApiError::bad_param(
                "Idempotency-Key",
                "must be 1-255 printable ASCII characters",
            )
        };
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b))
        {
            return Err(bad());
        }
        let key = std::str::from_utf8(bytes).map_err(|_| bad())?;
        Ok(Self(Some(key.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_decimal_ids_name_a_task() {
        assert_eq!(canonical_id("9"), Some(9));
        assert_eq!(canonical_id("9223372036854775807"), Some(i64::MAX));
        for raw in [
            "",
            "0",
            "09",
            "+9",
            "-9",
            " 9",
            "9 ",
            "٩",
            "9223372036854775808",
        ] {
            assert_eq!(canonical_id(raw), None, "{raw:?}");
        }
    }
}
