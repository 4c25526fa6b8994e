//! Better Auth's public keys (JWKS), fetched over HTTP and cached.
//!
//! Better Auth serves no cache headers, so keys are refreshed on a fixed TTL
//! by a background task, and refetched when a token names an unknown `kid`.
//! Those refetches are single-flight (concurrent misses share one fetch) and
//! rate-limited (a flood of junk `kid`s cannot make us hammer the auth
//! server). While the JWKS cannot be fetched, cached keys keep verifying and
//! unknown `kid`s get a 503: the failure is ours, not the client's.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A verification key and the algorithms it may be used with. The key kind
/// decides: an RSA key never verifies an EdDSA token, and when the JWK names
/// an `alg`, only that one.
pub struct PublicKey {
    pub algorithms: Vec<&'static str>,
    pub material: KeyMaterial,
}

/// What verifies signatures for a key.
pub enum KeyMaterial {
    /// Every algorithm jsonwebtoken implements.
    Jwt(DecodingKey),
    /// ES512 (P-521), which jsonwebtoken lacks; verified with the `p521` crate.
    P521(p521::ecdsa::VerifyingKey),
}

/// Why no key could be found for a `kid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookupError {
    /// The JWKS was fetched and does not contain it: the token is bad (401).
    Unknown,
    /// The JWKS could not be fetched: we cannot tell (503).
    Unavailable,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl Jwk {
    /// The algorithms this key kind supports.
    fn family(&self) -> &'static [&'static str] {
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => &["EdDSA"],
            ("EC", Some("P-256")) => &["ES256"],
            ("EC", Some("P-384")) => &["ES384"],
            ("EC", Some("P-521")) => &["ES512"],
            ("RSA", _) => &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
            _ => &[],
        }
    }

    fn to_key(&self) -> Result<PublicKey, String> {
        let family = self.family();
        if family.is_empty() {
            return Err(format!("unsupported key type {}", self.kty));
        }
        let algorithms: Vec<&'static str> = match &self.alg {
            // A JWK whose `alg` contradicts its key type is refused outright.
            Some(alg) => vec![
                *family
                    .iter()
                    .find(|a| **a == alg.as_str())
                    .ok_or_else(|| format!("alg {alg} does not fit key type {}", self.kty))?,
            ],
            None => family.to_vec(),
        };
        let need =
            |v: &Option<String>, name: &str| v.clone().ok_or_else(|| format!("missing `{name}`"));
        let material = match family[0] {
            "EdDSA" => KeyMaterial::Jwt(
                DecodingKey::from_ed_components(&need(&self.x, "x")?).map_err(|e| e.to_string())?,
            ),
            "ES256" | "ES384" => KeyMaterial::Jwt(
                DecodingKey::from_ec_components(&need(&self.x, "x")?, &need(&self.y, "y")?)
                    .map_err(|e| e.to_string())?,
            ),
            "ES512" => {
                let x = B64.decode(need(&self.x, "x")?).map_err(|e| e.to_string())?;
                let y = B64.decode(need(&self.y, "y")?).map_err(|e| e.to_string())?;
                if x.len() != 66 || y.len() != 66 {
                    return Err("P-521 coordinates must be 66 bytes".to_owned());
                }
                let mut sec1 = Vec::with_capacity(133);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                KeyMaterial::P521(
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|e| e.to_string())?,
                )
            }
            _ => KeyMaterial::Jwt(
                DecodingKey::from_rsa_components(&need(&self.n, "n")?, &need(&self.e, "e")?)
                    .map_err(|e| e.to_string())?,
            ),
        };
        Ok(PublicKey {
            algorithms,
            material,
        })
    }
}

#[derive(Default)]
struct CacheState {
    keys: HashMap<String, Arc<PublicKey>>,
    /// Last fetch of any kind (periodic or miss-driven).
    last_attempt: Option<Instant>,
    /// Last fetch caused by an unknown `kid`; rate-limits those alone, so
    /// a periodic refresh never delays picking up a freshly rotated key.
    last_miss_fetch: Option<Instant>,
    healthy: bool,
}

/// The JWKS cache.
pub struct Jwks {
    url: String,
    client: reqwest::Client,
    min_refetch: Duration,
    state: RwLock<CacheState>,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl Jwks {
    /// A cache for the JWKS at `url`; nothing is fetched until asked.
    pub fn new(
        url: String,
        fetch_timeout: Duration,
        min_refetch: Duration,
    ) -> anyhow::Result<Self> {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let mut builder = reqwest::Client::builder()
            .timeout(fetch_timeout)
            .connect_timeout(fetch_timeout)
            .redirect(reqwest::redirect::Policy::limited(3));
        if let Ok(tls) = tls {
            builder = builder.tls_backend_preconfigured(tls);
        }
        Ok(Self {
            url,
            client: builder.build()?,
            min_refetch,
            state: RwLock::new(CacheState::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The key published under `kid` now, without fetching: a token
    /// verified earlier is accepted again only while this is the same key.
    pub fn current_key(&self, kid: &str) -> Option<Arc<PublicKey>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.keys.get(kid).cloned()
    }

    /// The key for `kid`, refetching the JWKS once (rate-limited,
    /// single-flight) when it is not cached.
    pub async fn key(&self, kid: &str) -> Result<Arc<PublicKey>, KeyLookupError> {
        if let Some(key) = self.current_key(kid) {
            return Ok(key);
        }
        let waited_since = Instant::now();
        let _flight = self.fetch_lock.lock().await;
        if let Some(key) = self.current_key(kid) {
            return Ok(key);
        }
        let (recent, healthy) = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            // Someone fetched while we waited, or a miss fetched too recently.
            let recent = state.last_attempt.is_some_and(|at| at >= waited_since)
                || state
                    .last_miss_fetch
                    .is_some_and(|at| at.elapsed() < self.min_refetch);
            (recent, state.healthy)
        };
        if !recent {
            self.state
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .last_miss_fetch = Some(Instant::now());
            self.fetch().await;
        } else if !healthy {
            return Err(KeyLookupError::Unavailable);
        } else {
            return Err(KeyLookupError::Unknown);
        }
        match self.current_key(kid) {
            Some(key) => Ok(key),
            None if self.state.read().map(|s| s.healthy).unwrap_or(false) => {
                Err(KeyLookupError::Unknown)
            }
            None => Err(KeyLookupError::Unavailable),
        }
    }

    /// Fetches the JWKS now (the periodic refresh), sharing the single flight.
    pub async fn refresh(&self) -> bool {
        let _flight = self.fetch_lock.lock().await;
        self.fetch().await
    }

    /// One fetch; on success the key set is replaced (so keys that vanished
    /// stop verifying), on failure the old keys stay.
    async fn fetch(&self) -> bool {
        let result = self.download().await;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.last_attempt = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "JWKS refreshed");
                state.keys = keys;
                state.healthy = true;
                true
            }
            Err(why) => {
                tracing::warn!(url = %self.url, error = %why, "JWKS fetch failed; keeping cached keys");
                state.healthy = false;
                false
            }
        }
    }

    async fn download(&self) -> Result<HashMap<String, Arc<PublicKey>>, String> {
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err("JWKS document too large".to_owned());
            }
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            let Some(kid) = jwk.kid.clone() else {
                tracing::warn!("JWKS key without kid ignored");
                continue;
            };
            match jwk.to_key() {
                Ok(key) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(why) => tracing::warn!(%kid, %why, "JWKS key ignored"),
            }
        }
        Ok(keys)
    }
}

/// Keeps the cache fresh: fetch now, then every `ttl`.
pub async fn refresh_forever(jwks: Arc<Jwks>, ttl: Duration) {
    let mut tick = tokio::time::interval(ttl);
    loop {
        tick.tick().await;
        jwks.refresh().await;
    }
}
