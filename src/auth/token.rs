//! Bearer-token verification (API.md "Authentication"). Signature checking is
//! jsonwebtoken's; the claim rules (which claims are required, their JSON
//! types, the `sub`/`id` fallback) are ours, because API.md is stricter and
//! more specific than any crate's defaults.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::{
    AuthError,
    jwks::{Jwks, KeyLookupError, KeyMaterial},
    verified::{VerifiedBy, VerifiedTokens},
};
use crate::{config::Secret, domain::Claims};

/// Tokens at or above this size are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Longest user id accepted from `sub` / `id`, in characters.
const MAX_SUB_CHARS: usize = 255;
/// Longest `email` / `name` claim stored; longer values are ignored.
const MAX_PROFILE_CHARS: usize = 320;

/// `iss` / `aud` values a token must carry, when set.
#[derive(Debug, Clone, Default)]
pub struct ClaimRules {
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Checks tokens against the configured keys and claim rules. The key kind
/// decides the algorithm: HS* tokens only ever meet the shared secret,
/// asymmetric tokens only ever meet a JWKS key chosen by `kid`.
pub struct Verifier {
    hs_key: Option<DecodingKey>,
    hs_rules: ClaimRules,
    jwks: Option<Arc<Jwks>>,
    jwks_rules: ClaimRules,
    leeway: u64,
    verified: VerifiedTokens,
}

/// The JOSE header fields we act on; everything else (`jwk`, `jku`, `x5u`,
/// `typ`) is ignored and never supplies a key.
struct JoseHeader {
    alg: String,
    kid: Option<String>,
}

fn parse_header(encoded: &str) -> Option<JoseHeader> {
    let bytes = B64.decode(encoded).ok()?;
    let map: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let alg = map.get("alg")?.as_str()?.to_owned();
    let kid = match map.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return None,
    };
    Some(JoseHeader { alg, kid })
}

impl Verifier {
    /// A verifier for HS* tokens signed with `secret` (if any) and, with a
    /// JWKS, for Better Auth's asymmetric tokens.
    pub fn new(
        secret: Option<&Secret>,
        hs_rules: ClaimRules,
        jwks: Option<(Arc<Jwks>, ClaimRules)>,
        leeway: Duration,
    ) -> Self {
        let (jwks, jwks_rules) = match jwks {
            Some((jwks, rules)) => (Some(jwks), rules),
            None => (None, ClaimRules::default()),
        };
        Self {
            hs_key: secret.and_then(|s| DecodingKey::from_secret(s.expose().as_bytes()).ok()),
            hs_rules,
            jwks,
            jwks_rules,
            leeway: leeway.as_secs(),
            verified: VerifiedTokens::default(),
        }
    }

    /// Verifies `token` and returns the identity it carries. A token that
    /// passed before is only checked for expiry and, if a JWKS key verified
    /// it, for that key still being published (see `verified`).
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verify_until(token).await.map(|(identity, _)| identity)
    }

    /// [`Verifier::verify`], also answering the Unix time from which the
    /// token is refused (`exp` + leeway): a long-lived response such as an
    /// event stream ends then.
    pub async fn verify_until(&self, token: &str) -> Result<(Claims, f64), AuthError> {
        let now = unix_now();
        if let Some((identity, by, refused_from)) = self.verified.get(token, now) {
            let Some(by) = by else {
                return Ok((identity, refused_from));
            };
            let current = self
                .jwks
                .as_ref()
                .and_then(|jwks| jwks.current_key(&by.kid));
            if current.is_some_and(|key| Arc::ptr_eq(&key, &by.key)) {
                return Ok((identity, refused_from));
            }
            self.verified.remove(token);
        }
        let (identity, refused_from, by) = self.check(token, now).await?;
        self.verified
            .insert(token, &identity, refused_from, by, now);
        Ok((identity, refused_from))
    }

    /// The full check, every time: signature and claims. For benchmarks of
    /// what a token costs the first time it is seen.
    pub async fn verify_uncached(&self, token: &str) -> Result<Claims, AuthError> {
        self.check(token, unix_now())
            .await
            .map(|(identity, ..)| identity)
    }

    /// Signature and claim rules; returns the identity, the first instant
    /// the token is refused (`exp` + leeway) and the JWKS key that verified
    /// it, if one did.
    async fn check(
        &self,
        token: &str,
        now: f64,
    ) -> Result<(Claims, f64, Option<VerifiedBy>), AuthError> {
        if token.len() >= MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken("token is too large"));
        }
        let malformed = || AuthError::InvalidToken("token is malformed");
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let jose = parse_header(header).ok_or_else(malformed)?;
        // `alg` matching is exact: `none`, `None`, `hs256` match nothing.
        let alg = jose.alg.parse::<Algorithm>().map_err(|_| malformed());
        let (claims, rules, by) = match jose.alg.as_str() {
            "HS256" | "HS384" | "HS512" => {
                let key = self
                    .hs_key
                    .as_ref()
                    .ok_or(AuthError::InvalidToken("HMAC tokens are not accepted here"))?;
                (decode_with(token, key, alg?)?, &self.hs_rules, None)
            }
            "EdDSA" | "ES256" | "ES384" | "ES512" | "RS256" | "RS384" | "RS512" | "PS256"
            | "PS384" | "PS512" => {
                let jwks = self.jwks.as_ref().ok_or(AuthError::InvalidToken(
                    "asymmetric tokens are not accepted here",
                ))?;
                let kid = jose
                    .kid
                    .as_deref()
                    .ok_or(AuthError::InvalidToken("token has no kid"))?;
                let key = jwks.key(kid).await.map_err(|err| match err {
                    KeyLookupError::Unknown => AuthError::InvalidToken("token key is unknown"),
                    KeyLookupError::Unavailable => AuthError::KeysUnavailable,
                })?;
                if !key.algorithms.contains(&jose.alg.as_str()) {
                    return Err(AuthError::InvalidToken(
                        "token algorithm does not match its key",
                    ));
                }
                let claims = match &key.material {
                    KeyMaterial::Jwt(decoding) => decode_with(token, decoding, alg?)?,
                    KeyMaterial::P521(verifying) => {
                        verify_es512(verifying, header, payload, signature)?
                    }
                };
                let by = VerifiedBy {
                    kid: kid.to_owned(),
                    key,
                };
                (claims, &self.jwks_rules, Some(by))
            }
            _ => return Err(AuthError::InvalidToken("token algorithm is not accepted")),
        };
        let (identity, refused_from) = self.check_claims(&claims, now, rules)?;
        Ok((identity, refused_from, by))
    }

    /// Applies API.md's claim rules to a payload whose signature is valid;
    /// returns the identity and the first instant the token is refused.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: f64,
        rules: &ClaimRules,
    ) -> Result<(Claims, f64), AuthError> {
        let leeway = self.leeway as f64;
        let number = |name: &'static str| -> Result<Option<f64>, AuthError> {
            match claims.get(name) {
                None => Ok(None),
                Some(Value::Number(n)) => n
                    .as_f64()
                    .map(Some)
                    .ok_or(AuthError::InvalidToken("token time claim is not a number")),
                Some(_) => Err(AuthError::InvalidToken("token time claim is not a number")),
            }
        };
        let exp = number("exp")?.ok_or(AuthError::InvalidToken("token has no exp"))?;
        if exp + leeway <= now {
            return Err(AuthError::InvalidToken("token has expired"));
        }
        if number("nbf")?.is_some_and(|nbf| nbf > now + leeway) {
            return Err(AuthError::InvalidToken("token is not valid yet"));
        }
        if number("iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(AuthError::InvalidToken("token was issued in the future"));
        }
        if let Some(expected) = &rules.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(expected.as_str())
        {
            return Err(AuthError::InvalidToken("token issuer is not accepted"));
        }
        if let Some(expected) = &rules.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == expected,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected)),
                _ => false,
            };
            if !ok {
                return Err(AuthError::InvalidToken("token audience is not accepted"));
            }
        }
        // `sub` wins whenever present; only its absence lets `id` stand in.
        let subject = match claims.get("sub") {
            Some(sub) => sub,
            None => claims
                .get("id")
                .ok_or(AuthError::InvalidToken("token has no subject"))?,
        };
        let sub = match subject {
            Value::String(s)
                if !s.is_empty() && s.chars().count() <= MAX_SUB_CHARS && !s.contains('\0') =>
            {
                s.clone()
            }
            _ => {
                return Err(AuthError::InvalidToken(
                    "token subject is not a valid user id",
                ));
            }
        };
        let identity = Claims {
            sub,
            email: profile_claim(claims, "email"),
            name: profile_claim(claims, "name"),
        };
        Ok((identity, exp + leeway))
    }
}

/// Signature check and payload decoding by jsonwebtoken, with every claim
/// rule switched off (ours are applied afterwards).
fn decode_with(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Map<String, Value>, AuthError> {
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                AuthError::InvalidToken("token signature is invalid")
            }
            _ => AuthError::InvalidToken("token is malformed"),
        })
}

/// ES512 (P-521), which jsonwebtoken does not implement: the JWS signature
/// is the fixed-width `r || s` over `header.payload` with SHA-512.
fn verify_es512(
    key: &p521::ecdsa::VerifyingKey,
    header: &str,
    payload: &str,
    signature: &str,
) -> Result<Map<String, Value>, AuthError> {
    use p521::ecdsa::signature::Verifier as _;
    let bad = || AuthError::InvalidToken("token signature is invalid");
    let raw = B64.decode(signature).map_err(|_| bad())?;
    let sig = p521::ecdsa::Signature::from_slice(&raw).map_err(|_| bad())?;
    key.verify(format!("{header}.{payload}").as_bytes(), &sig)
        .map_err(|_| bad())?;
    let bytes = B64
        .decode(payload)
        .map_err(|_| AuthError::InvalidToken("token is malformed"))?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::InvalidToken("token is malformed"))
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
mod tests;
