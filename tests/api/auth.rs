//! Authentication rules of API.md: accepted tokens, and every attack in its
//! list refused with 401, `WWW-Authenticate: Bearer`, and no user row.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, assert_problem, now_secs, sign, sign_with, token};

/// A token with a hand-made header and payload and an HS256 signature over them.
fn forge(header: &Value, payload: &Value, secret: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string())
    );
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        B64.encode(mac.finalize().into_bytes())
    )
}

async fn list_with_header(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut req = app.req(Method::GET, "/api/v1/tasks", None);
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.send().await.unwrap()
}

async fn missing_credentials_get_a_plain_bearer_challenge(app: TestApp) {
    for header in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer"),
        Some("Bearer   "),
        Some("Token abc"),
    ] {
        let response = list_with_header(&app, header).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer",
            "{header:?}"
        );
        assert_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    // The scheme name is case-insensitive.
    let t = token("alice");
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = list_with_header(&app, Some(&format!("{scheme} {t}"))).await;
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
}

async fn bad_tokens_are_401_invalid_token_and_create_no_user(app: TestApp) {
    let now = now_secs();
    let valid = json!({"sub": "victim", "exp": now + 3600});
    let with = |patch: Value| {
        let mut claims = valid.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let none_header = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(valid.to_string())
    );
    let cases: Vec<(&str, String)> = vec![
        ("alg none", none_header),
        ("alg None", forge(&json!({"alg": "None"}), &valid, SECRET)),
        ("alg hs256", forge(&json!({"alg": "hs256"}), &valid, SECRET)),
        (
            "wrong secret",
            sign_with(
                &valid,
                Algorithm::HS256,
                "another-secret-that-is-long-enough-000",
            ),
        ),
        ("expired", sign(&with(json!({"exp": now - 3600})))),
        ("future nbf", sign(&with(json!({"nbf": now + 3600})))),
        ("future iat", sign(&with(json!({"iat": now + 3600})))),
        ("no exp", sign(&with(json!({"exp": null})))),
        (
            "string exp",
            sign(&with(json!({"exp": (now + 3600).to_string()}))),
        ),
        ("string nbf", sign(&with(json!({"nbf": "0"})))),
        ("no sub", sign(&with(json!({"sub": null})))),
        ("numeric sub", sign(&with(json!({"sub": 42})))),
        ("empty sub", sign(&with(json!({"sub": ""})))),
        ("long sub", sign(&with(json!({"sub": "x".repeat(256)})))),
        (
            "invalid sub with id fallback",
            sign(&with(json!({"sub": 42, "id": "victim"}))),
        ),
        (
            "array payload",
            forge(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &json!([1, 2]),
                SECRET,
            ),
        ),
        ("garbage", "not.a.token".to_owned()),
        ("two parts", "abc.def".to_owned()),
        (
            "oversized",
            format!(
                "{}.{}.sig",
                B64.encode(r#"{"alg":"HS256"}"#),
                "A".repeat(60_000)
            ),
        ),
        ("tampered", {
            let t = sign(&valid);
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            parts[1] = B64.encode(with(json!({"sub": "mallory"})).to_string());
            parts.join(".")
        }),
    ];
    for (name, bad) in cases {
        let response = list_with_header(&app, Some(&format!("Bearer {bad}"))).await;
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer error=\"invalid_token\""),
            "{name}"
        );
        let body = assert_problem(response, StatusCode::UNAUTHORIZED).await;
        assert!(
            !body.to_string().contains(&bad[..bad.len().min(40)]),
            "{name}: token echoed"
        );
    }
    assert!(!app.user_exists("victim").await);
    assert!(!app.user_exists("mallory").await);
}

async fn hs384_and_hs512_are_accepted(app: TestApp) {
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let t = sign_with(
            &json!({"sub": "alice", "exp": now_secs() + 60}),
            alg,
            SECRET,
        );
        let response = list_with_header(&app, Some(&format!("Bearer {t}"))).await;
        assert_eq!(response.status(), StatusCode::OK, "{alg:?}");
    }
}

async fn leeway_of_sixty_seconds_applies(app: TestApp) {
    let now = now_secs();
    let recent = sign(&json!({"sub": "alice", "exp": now - 30}));
    assert_eq!(
        list_with_header(&app, Some(&format!("Bearer {recent}")))
            .await
            .status(),
        StatusCode::OK
    );
    let nbf_soon = sign(&json!({"sub": "alice", "exp": now + 600, "nbf": now + 30}));
    assert_eq!(
        list_with_header(&app, Some(&format!("Bearer {nbf_soon}")))
            .await
            .status(),
        StatusCode::OK
    );
    let old = sign(&json!({"sub": "alice", "exp": now - 120}));
    assert_problem(
        list_with_header(&app, Some(&format!("Bearer {old}"))).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn id_claim_is_used_only_when_sub_is_absent(app: TestApp) {
    // Better Auth puts the user object in the payload.
    let t = sign(&json!({"id": "ba-user", "email": "ba@example.com", "exp": now_secs() + 60}));
    let response = app
        .req(Method::GET, "/api/v1/me", Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["id"], "ba-user");
    assert_eq!(me["email"], "ba@example.com");
    let both = sign(&json!({"sub": "from-sub", "id": "from-id", "exp": now_secs() + 60}));
    let me: Value = app
        .req(Method::GET, "/api/v1/me", Some(&both))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], "from-sub");
}

async fn tokens_in_the_query_string_are_not_accepted(app: TestApp) {
    let t = token("alice");
    let response = app
        .req(
            Method::GET,
            &format!("/api/v1/tasks?access_token={t}&token={t}"),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
}

crate::both_backends!(
    missing_credentials_get_a_plain_bearer_challenge,
    bad_tokens_are_401_invalid_token_and_create_no_user,
    hs384_and_hs512_are_accepted,
    leeway_of_sixty_seconds_applies,
    id_claim_is_used_only_when_sub_is_absent,
    tokens_in_the_query_string_are_not_accepted,
);

#[tokio::test]
async fn issuer_and_audience_are_enforced_when_configured() {
    let app = TestApp::with_env(
        crate::helpers::Backend::Sqlite,
        &[
            ("JWT_ISSUER", "https://auth.example.com"),
            ("JWT_AUDIENCE", "https://auth.example.com"),
        ],
    )
    .await
    .unwrap();
    let exp = now_secs() + 60;
    let good = sign(
        &json!({"sub": "a", "exp": exp, "iss": "https://auth.example.com", "aud": "https://auth.example.com"}),
    );
    assert_eq!(
        list_with_header(&app, Some(&format!("Bearer {good}")))
            .await
            .status(),
        StatusCode::OK
    );
    for claims in [
        json!({"sub": "b", "exp": exp, "iss": "https://evil.example.com", "aud": "https://auth.example.com"}),
        json!({"sub": "b", "exp": exp, "iss": "https://auth.example.com", "aud": "https://evil.example.com"}),
        json!({"sub": "b", "exp": exp}),
    ] {
        let bad = sign(&claims);
        assert_problem(
            list_with_header(&app, Some(&format!("Bearer {bad}"))).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    assert!(!app.user_exists("b").await);
}

/// A token is verified once and then remembered; remembering it must not
/// outlive its `exp` (plus leeway, here none). On both backends.
#[tokio::test]
async fn a_token_accepted_before_is_refused_once_it_expires() {
    let no_leeway = [("JWT_LEEWAY_SECONDS", "0")];
    let mut apps = vec![
        TestApp::with_env(crate::helpers::Backend::Sqlite, &no_leeway)
            .await
            .unwrap(),
    ];
    apps.extend(TestApp::with_env(crate::helpers::Backend::Postgres, &no_leeway).await);
    let exp = now_secs() + 2;
    let t = sign(&json!({"sub": "alice", "exp": exp}));
    for app in &apps {
        for _ in 0..3 {
            let response = list_with_header(app, Some(&format!("Bearer {t}"))).await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    crate::helpers::wait_until(
        std::time::Duration::from_secs(10),
        "the token's exp has passed",
        || async { now_secs() > exp },
    )
    .await;
    for app in &apps {
        let body = assert_problem(
            list_with_header(app, Some(&format!("Bearer {t}"))).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(body["detail"], "token has expired", "{body}");
    }
}
