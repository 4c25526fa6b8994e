//! Better Auth's asymmetric tokens, verified through a JWKS served by a
//! stand-in auth server in the test (the real Better Auth run is the Node
//! interop test): every algorithm, refetch on unknown `kid` (once,
//! single-flight, rate-limited), outages, rotation, and the confusions.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use futures::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_problem, now_secs, sign, wait_until};

const KEYS: &str = include_str!("../fixtures/keys/jwks.json");

/// A stand-in Better Auth: serves `/api/auth/jwks` from a document the test
/// controls, counts fetches, and can be switched off.
struct AuthServer {
    base: String,
    doc: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

fn jwk(kid: &str) -> Value {
    let all: Value = serde_json::from_str(KEYS).unwrap();
    all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .clone()
}

impl AuthServer {
    async fn start(kids: &[&str]) -> Self {
        let doc = Arc::new(Mutex::new(
            json!({"keys": kids.iter().map(|k| jwk(k)).collect::<Vec<_>>()}),
        ));
        let hits = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (d, h, dn) = (doc.clone(), hits.clone(), down.clone());
        let router = axum::Router::new().route(
            "/api/auth/jwks",
            axum::routing::get(move || {
                let (d, h, dn) = (d.clone(), h.clone(), dn.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if dn.load(Ordering::SeqCst) {
                        return (axum::http::StatusCode::BAD_GATEWAY, String::new());
                    }
                    let body = d.lock().unwrap().to_string();
                    (axum::http::StatusCode::OK, body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            base,
            doc,
            hits,
            down,
        }
    }

    fn publish(&self, kids: &[&str]) {
        *self.doc.lock().unwrap() =
            json!({"keys": kids.iter().map(|k| jwk(k)).collect::<Vec<_>>()});
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Signs `claims` as Better Auth would with the fixture key `kid`, under
/// header algorithm `alg` (normally the key's own).
fn sign_as(kid: &str, alg: &str, claims: &Value) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/");
    let read = |f: &str| std::fs::read(format!("{dir}{f}")).unwrap();
    if alg == "ES512" {
        use p521::ecdsa::signature::Signer;
        let scalar = hex_decode(
            std::str::from_utf8(&read("p521.scalar.hex"))
                .unwrap()
                .trim(),
        );
        let key = p521::ecdsa::SigningKey::from_slice(&scalar).unwrap();
        let header = B64.encode(json!({"alg": "ES512", "kid": kid}).to_string());
        let payload = B64.encode(claims.to_string());
        let sig: p521::ecdsa::Signature = key.sign(format!("{header}.{payload}").as_bytes());
        return format!("{header}.{payload}.{}", B64.encode(sig.to_bytes()));
    }
    let (algorithm, key) = match alg {
        "EdDSA" => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(&read("ed25519.pem")).unwrap(),
        ),
        "ES256" => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&read("p256.pem")).unwrap(),
        ),
        "RS256" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&read("rsa2048.pem")).unwrap(),
        ),
        "PS256" => (
            Algorithm::PS256,
            EncodingKey::from_rsa_pem(&read("rsa2048.pem")).unwrap(),
        ),
        other => panic!("no fixture for {other}"),
    };
    let mut header = Header::new(algorithm);
    header.typ = None;
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Better Auth's payload shape (1.x): iss and aud are the base URL.
fn claims(auth: &AuthServer, sub: &str) -> Value {
    let now = now_secs();
    json!({
        "iat": now, "exp": now + 900,
        "name": format!("BA {sub}"), "email": format!("{sub}@ba.example"), "emailVerified": false,
        "image": null, "createdAt": "2026-11-29T10:00:00.000Z", "updatedAt": "2026-11-29T10:00:00.000Z",
        "id": sub, "sub": sub, "iss": auth.base, "aud": auth.base,
    })
}

async fn app_for(auth: &AuthServer, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("BETTER_AUTH_URL", auth.base.as_str())];
    env.extend_from_slice(extra);
    let app = TestApp::with_env(Backend::Sqlite, &env).await.unwrap();
    // The first fetch happens in the background at start-up.
    for _ in 0..200 {
        if auth.hits() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.req(Method::GET, "/api/v1/me", Some(token))
        .send()
        .await
        .unwrap()
}

const ALL: [(&str, &str); 5] = [
    ("test-eddsa", "EdDSA"),
    ("test-es256", "ES256"),
    ("test-es512", "ES512"),
    ("test-rs256", "RS256"),
    ("test-ps256", "PS256"),
];

#[tokio::test]
async fn all_five_better_auth_algorithms_verify() {
    let auth = AuthServer::start(&ALL.map(|(kid, _)| kid)).await;
    let app = app_for(&auth, &[]).await;
    for (kid, alg) in ALL {
        let sub = format!("user-{}", alg.to_lowercase());
        let response = me(&app, &sign_as(kid, alg, &claims(&auth, &sub))).await;
        assert_eq!(response.status(), StatusCode::OK, "{alg}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], sub.as_str());
        assert_eq!(body["email"], format!("{sub}@ba.example"));
    }
    // HS256 from the shared secret keeps working alongside, without iss/aud.
    let hs = sign(&json!({"sub": "next-user", "exp": now_secs() + 60}));
    assert_eq!(me(&app, &hs).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_kid_is_refetched_once_for_concurrent_requests() {
    let auth = AuthServer::start(&["test-eddsa"]).await;
    let app = app_for(&auth, &[]).await;
    assert_eq!(auth.hits(), 1);
    // A key appears (rotation); ten concurrent requests need it.
    auth.publish(&["test-eddsa", "test-es256"]);
    let token = sign_as("test-es256", "ES256", &claims(&auth, "u"));
    let responses = join_all((0..10).map(|_| me(&app, &token))).await;
    assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
    assert_eq!(auth.hits(), 2, "one refetch for ten concurrent misses");
    // Junk kids cannot make us hammer the auth server (rate-limited).
    let junk_tokens: Vec<String> = (0..20)
        .map(|i| sign_as(&format!("junk-{i}"), "EdDSA", &claims(&auth, "u")))
        .collect();
    let junk = join_all(junk_tokens.iter().map(|t| me(&app, t))).await;
    for response in junk {
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    assert_eq!(auth.hits(), 2);
}

#[tokio::test]
async fn jwks_outage_is_503_for_unknown_kids_and_cached_kids_keep_working() {
    let auth = AuthServer::start(&["test-eddsa"]).await;
    let app = app_for(&auth, &[("JWKS_REFETCH_INTERVAL_SECONDS", "0")]).await;
    auth.down.store(true, Ordering::SeqCst);
    let cached = sign_as("test-eddsa", "EdDSA", &claims(&auth, "u"));
    assert_eq!(me(&app, &cached).await.status(), StatusCode::OK);
    let unknown = sign_as("test-es256", "ES256", &claims(&auth, "u"));
    let response = me(&app, &unknown).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    // Back up: the new key verifies without a restart.
    auth.down.store(false, Ordering::SeqCst);
    auth.publish(&["test-eddsa", "test-es256"]);
    assert_eq!(me(&app, &unknown).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn auth_server_down_at_start_up_is_not_fatal() {
    let auth = AuthServer::start(&["test-eddsa"]).await;
    auth.down.store(true, Ordering::SeqCst);
    let app = app_for(&auth, &[("JWKS_REFETCH_INTERVAL_SECONDS", "0")]).await;
    assert_eq!(
        app.req(Method::GET, "/ready", None)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let hs = sign(&json!({"sub": "next-user", "exp": now_secs() + 60}));
    assert_eq!(me(&app, &hs).await.status(), StatusCode::OK);
    auth.down.store(false, Ordering::SeqCst);
    let token = sign_as("test-eddsa", "EdDSA", &claims(&auth, "u"));
    assert_eq!(me(&app, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_rotated_out_key_stops_verifying_after_the_next_refresh() {
    let auth = AuthServer::start(&["test-eddsa"]).await;
    let app = app_for(&auth, &[("JWKS_CACHE_TTL_SECONDS", "1")]).await;
    let old = sign_as("test-eddsa", "EdDSA", &claims(&auth, "u"));
    assert_eq!(me(&app, &old).await.status(), StatusCode::OK);
    // New key published, old one still in its grace period.
    auth.publish(&["test-eddsa", "test-es256"]);
    let new = sign_as("test-es256", "ES256", &claims(&auth, "u"));
    assert_eq!(me(&app, &new).await.status(), StatusCode::OK);
    assert_eq!(me(&app, &old).await.status(), StatusCode::OK);
    // Grace period over: the old key vanishes from the JWKS.
    auth.publish(&["test-es256"]);
    wait_until(
        std::time::Duration::from_secs(5),
        "the old key stops verifying",
        || async { me(&app, &old).await.status() == StatusCode::UNAUTHORIZED },
    )
    .await;
    assert_eq!(me(&app, &new).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let auth = AuthServer::start(&ALL.map(|(kid, _)| kid)).await;
    let app = app_for(&auth, &[]).await;
    let c = claims(&auth, "victim");
    // HS256 signed with a public key's bytes, naming that key: never checked
    // against the public key.
    let x = jwk("test-eddsa")["x"].as_str().unwrap().to_owned();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-eddsa".into());
    let hs_with_pubkey = jsonwebtoken::encode(
        &header,
        &c,
        &EncodingKey::from_secret(x.as_bytes()).unwrap(),
    )
    .unwrap();
    // Header algorithm that does not fit the key named by kid.
    let cases = [
        hs_with_pubkey,
        sign_as("test-eddsa", "ES256", &c),
        sign_as("test-es256", "EdDSA", &c),
        sign_as("test-rs256", "PS256", &c),
        sign_as("test-ps256", "RS256", &c),
        sign_as("test-es512", "ES256", &c),
    ];
    for token in cases {
        let response = me(&app, &token).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    // A header-supplied key (jwk / jku) is never used.
    let mut header = Header::new(Algorithm::EdDSA);
    header.jku = Some(format!("{}/api/auth/jwks", auth.base));
    let no_kid = jsonwebtoken::encode(
        &header,
        &c,
        &EncodingKey::from_ed_pem(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/keys/ed25519.pem"
            ))
            .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_problem(me(&app, &no_kid).await, StatusCode::UNAUTHORIZED).await;
    assert!(!app.user_exists("victim").await);
}

#[tokio::test]
async fn issuer_and_audience_mismatch_is_refused() {
    let auth = AuthServer::start(&["test-eddsa"]).await;
    let app = app_for(&auth, &[]).await;
    for (field, value) in [
        ("iss", json!("https://evil.example")),
        ("aud", json!("https://evil.example")),
        ("iss", Value::Null),
    ] {
        let mut c = claims(&auth, "victim");
        if value.is_null() {
            c.as_object_mut().unwrap().remove(field);
        } else {
            c[field] = value;
        }
        let response = me(&app, &sign_as("test-eddsa", "EdDSA", &c)).await;
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    assert!(!app.user_exists("victim").await);
}

#[tokio::test]
async fn a_jwk_whose_alg_contradicts_its_key_type_is_ignored() {
    let auth = AuthServer::start(&[]).await;
    let mut bad = jwk("test-eddsa");
    bad["alg"] = json!("RS256");
    bad["kid"] = json!("mislabelled");
    *auth.doc.lock().unwrap() = json!({"keys": [bad]});
    let app = app_for(&auth, &[]).await;
    for alg in ["EdDSA", "RS256"] {
        let token = sign_as("mislabelled", alg, &claims(&auth, "victim"));
        assert_problem(me(&app, &token).await, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn asymmetric_tokens_are_refused_without_a_jwks() {
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let auth = AuthServer::start(&["test-eddsa"]).await;
    let token = sign_as("test-eddsa", "EdDSA", &claims(&auth, "victim"));
    assert_problem(me(&app, &token).await, StatusCode::UNAUTHORIZED).await;
}
