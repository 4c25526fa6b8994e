//! Bearer-token verification (API.md "Authentication"). Signature checking is
//! jsonwebtoken's; the claim rules (which claims are required, their JSON
//! types, the `sub`/`id` fallback) are ours, because API.md is stricter and
//! more specific than any crate's defaults.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::{config::Secret, error::ApiError};

/// Tokens at or above this size are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Longest user id accepted from `sub` / `id`, in characters.
const MAX_SUB_CHARS: usize = 255;
/// Longest `email` / `name` claim stored; longer values are ignored.
const MAX_PROFILE_CHARS: usize = 320;

/// Who a verified token speaks for, and the profile claims it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub`, or `id` when `sub` is absent).
    pub sub: String,
    /// The `email` claim, when it is a usable string.
    pub email: Option<String>,
    /// The `name` claim, when it is a usable string.
    pub name: Option<String>,
}

/// Checks tokens against the configured keys and claim rules.
pub struct Verifier {
    hs_key: Option<DecodingKey>,
    leeway: u64,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Verifier {
    /// A verifier for HS* tokens signed with `secret`, if any.
    pub fn new(
        secret: Option<&Secret>,
        leeway: Duration,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        Self {
            hs_key: secret.and_then(|s| DecodingKey::from_secret(s.expose().as_bytes()).ok()),
            leeway: leeway.as_secs(),
            issuer,
            audience,
        }
    }

    /// Verifies `token` and returns the identity it carries.
    pub fn verify(&self, token: &str) -> Result<Identity, ApiError> {
        if token.len() >= MAX_TOKEN_BYTES {
            return Err(ApiError::invalid_token("token is too large"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::invalid_token("token is malformed"))?;
        let alg = header.alg;
        // The key kind decides the algorithm: only HS* tokens meet the secret.
        let key = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self
                .hs_key
                .as_ref()
                .ok_or_else(|| ApiError::invalid_token("HMAC tokens are not accepted here"))?,
            _ => return Err(ApiError::invalid_token("token algorithm is not accepted")),
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map_err(|err| {
                match err.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        ApiError::invalid_token("token signature is invalid")
                    }
                    _ => ApiError::invalid_token("token is malformed"),
                }
            })?;
        self.check_claims(&data.claims, unix_now())
    }

    /// Applies API.md's claim rules to a payload whose signature is valid.
    fn check_claims(&self, claims: &Map<String, Value>, now: f64) -> Result<Identity, ApiError> {
        let leeway = self.leeway as f64;
        let number = |name: &'static str| -> Result<Option<f64>, ApiError> {
            match claims.get(name) {
                None => Ok(None),
                Some(Value::Number(n)) => n
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| ApiError::invalid_token("token time claim is not a number")),
                Some(_) => Err(ApiError::invalid_token("token time claim is not a number")),
            }
        };
        let exp = number("exp")?.ok_or_else(|| ApiError::invalid_token("token has no exp"))?;
        if exp + leeway <= now {
            return Err(ApiError::invalid_token("token has expired"));
        }
        if number("nbf")?.is_some_and(|nbf| nbf > now + leeway) {
            return Err(ApiError::invalid_token("token is not valid yet"));
        }
        if number("iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(ApiError::invalid_token("token was issued in the future"));
        }
        if let Some(expected) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(expected.as_str())
        {
            return Err(ApiError::invalid_token("token issuer is not accepted"));
        }
        if let Some(expected) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == expected,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected)),
                _ => false,
            };
            if !ok {
                return Err(ApiError::invalid_token("token audience is not accepted"));
            }
        }
        // `sub` wins whenever present; only its absence lets `id` stand in.
        let subject = match claims.get("sub") {
            Some(sub) => sub,
            None => claims
                .get("id")
                .ok_or_else(|| ApiError::invalid_token("token has no subject"))?,
        };
        let sub = match subject {
            Value::String(s)
                if !s.is_empty() && s.chars().count() <= MAX_SUB_CHARS && !s.contains('\0') =>
            {
                s.clone()
            }
            _ => {
                return Err(ApiError::invalid_token(
                    "token subject is not a valid user id",
                ));
            }
        };
        Ok(Identity {
            sub,
            email: profile_claim(claims, "email"),
            name: profile_claim(claims, "name"),
        })
    }
}

/// A profile claim we can store; anything else is treated as absent rather
/// than failing authentication over cosmetic data.
fn profile_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.contains('\0') && s.chars().count() <= MAX_PROFILE_CHARS)
        .map(str::to_owned)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Signs an HS256 token the way a Next.js front end sharing the secret does;
/// used by `tasks-api token` and dev mode.
pub fn mint_hs256(
    secret: &Secret,
    sub: &str,
    email: Option<&str>,
    name: Option<&str>,
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = unix_now() as u64;
    let mut claims = Map::new();
    claims.insert("sub".into(), sub.into());
    if let Some(email) = email {
        claims.insert("email".into(), email.into());
    }
    if let Some(name) = name {
        claims.insert("name".into(), name.into());
    }
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl.as_secs()).into());
    let key = EncodingKey::from_secret(secret.expose().as_bytes())?;
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &key,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verifier() -> Verifier {
        Verifier::new(None, Duration::from_secs(60), None, None)
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn sub_present_but_invalid_never_falls_back_to_id() {
        let v = verifier();
        let c = claims(json!({"exp": 2e9, "sub": 7, "id": "u1"}));
        assert!(v.check_claims(&c, 1e9).is_err());
        let c = claims(json!({"exp": 2e9, "id": "u1"}));
        assert_eq!(v.check_claims(&c, 1e9).unwrap().sub, "u1");
    }

    #[test]
    fn leeway_applies_to_exp_nbf_and_iat() {
        let v = verifier();
        assert!(
            v.check_claims(&claims(json!({"exp": 1000, "sub": "u"})), 1059.0)
                .is_ok()
        );
        assert!(
            v.check_claims(&claims(json!({"exp": 1000, "sub": "u"})), 1061.0)
                .is_err()
        );
        assert!(
            v.check_claims(
                &claims(json!({"exp": 9e9, "nbf": 1100, "sub": "u"})),
                1000.0
            )
            .is_err()
        );
        assert!(
            v.check_claims(
                &claims(json!({"exp": 9e9, "iat": 1050, "sub": "u"})),
                1000.0
            )
            .is_ok()
        );
        assert!(
            v.check_claims(&claims(json!({"exp": "9e9", "sub": "u"})), 1000.0)
                .is_err()
        );
    }

    #[test]
    fn audience_may_be_a_string_or_a_list() {
        let v = Verifier::new(
            None,
            Duration::ZERO,
            Some("https://a".into()),
            Some("https://a".into()),
        );
        let ok =
            claims(json!({"exp": 9e9, "sub": "u", "iss": "https://a", "aud": ["x", "https://a"]}));
        assert!(v.check_claims(&ok, 1.0).is_ok());
        let bad = claims(json!({"exp": 9e9, "sub": "u", "iss": "https://a", "aud": "https://b"}));
        assert!(v.check_claims(&bad, 1.0).is_err());
    }
}
