//! `Idempotency-Key` on creates: replay, conflict, validation, concurrency.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, token};

async fn post_with_key(app: &TestApp, t: &str, key: &str, body: Value) -> reqwest::Response {
    app.req(Method::POST, "/api/v1/tasks", Some(t))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn same_key_and_body_replays_the_original_response(app: TestApp) {
    let t = token("alice");
    let first = post_with_key(&app, &t, "key-1", json!({"title": "once"})).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let location = first.headers()["location"].clone();
    let body: Value = first.json().await.unwrap();
    // The task changes afterwards; the replay is still the original 201.
    app.toggle_task(&t, body["id"].as_i64().unwrap()).await;
    // The same body after normalisation (trimming) counts as the same.
    let replay = post_with_key(&app, &t, "key-1", json!({"title": "  once "})).await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["location"], location);
    assert_eq!(replay.headers()["etag"], "\"1\"");
    assert_eq!(replay.json::<Value>().await.unwrap(), body);
    assert_eq!(
        app.list_tasks(&t, "").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn same_key_with_another_body_is_409(app: TestApp) {
    let t = token("alice");
    post_with_key(&app, &t, "key-2", json!({"title": "first"})).await;
    let conflict = post_with_key(&app, &t, "key-2", json!({"title": "second"})).await;
    assert_problem(conflict, StatusCode::CONFLICT).await;
    assert_eq!(
        app.list_tasks(&t, "").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn keys_are_scoped_per_user(app: TestApp) {
    let a = post_with_key(&app, &token("alice"), "shared", json!({"title": "a"})).await;
    let b = post_with_key(&app, &token("bob"), "shared", json!({"title": "b"})).await;
    assert_eq!(a.status(), StatusCode::CREATED);
    assert_eq!(b.status(), StatusCode::CREATED);
    let b: Value = b.json().await.unwrap();
    assert_eq!(b["user_id"], "bob");
    assert_eq!(b["title"], "b");
}

async fn invalid_keys_are_400_and_rejected_requests_do_not_consume_keys(app: TestApp) {
    let t = token("alice");
    for key in ["", &"k".repeat(256)] {
        let response = post_with_key(&app, &t, key, json!({"title": "a"})).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    let response = app
        .req(Method::POST, "/api/v1/tasks", Some(&t))
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        )
        .json(&json!({"title": "a"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST).await;
    let ok = post_with_key(&app, &t, &"k".repeat(255), json!({"title": "a"})).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    // A 422 does not consume the key: the corrected request then succeeds.
    let bad = post_with_key(&app, &t, "retry-me", json!({"title": ""})).await;
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let good = post_with_key(&app, &t, "retry-me", json!({"title": "fixed"})).await;
    assert_eq!(good.status(), StatusCode::CREATED);
}

async fn concurrent_requests_with_one_key_create_one_task(app: TestApp) {
    let t = token("alice");
    let responses =
        join_all((0..10).map(|_| post_with_key(&app, &t, "burst", json!({"title": "one"})))).await;
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED);
        bodies.push(response.json::<Value>().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "replays differ");
    assert_eq!(
        app.list_tasks(&t, "").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

crate::both_backends!(
    same_key_and_body_replays_the_original_response,
    same_key_with_another_body_is_409,
    keys_are_scoped_per_user,
    invalid_keys_are_400_and_rejected_requests_do_not_consume_keys,
    concurrent_requests_with_one_key_create_one_task,
    expired_keys_are_purged,
    a_replay_stored_by_an_earlier_version_answers_its_bytes,
);

/// A key stored by an earlier version (which wrote the replay with its own
/// JSON writer; these literals are what it stored for this body) replays
/// byte for byte, so a retry across an upgrade is answered as before.
async fn a_replay_stored_by_an_earlier_version_answers_its_bytes(app: TestApp) {
    let t = token("alice");
    // The user row, which the key's row refers to.
    app.list_tasks(&t, "").await;
    let body = json!({
        "title": "written by main",
        "description": "é \" \\ \u{1}",
        "tags": ["x", "y z"],
        "priority": "high",
        "due_date": "2026-12-01T10:00:00.5+01:00",
    });
    let fingerprint = "0122c6c75b4ad7d9d57504275337c54d39b633c2f8de31b5fb9dd69b787ad2eb";
    let stored = r#"{"id":777,"user_id":"alice","title":"written by main","description":"é \" \\ \u0001","completed":false,"priority":"high","tags":["x","y z"],"due_date":"2026-12-01T09:00:00.500Z","completed_at":null,"created_at":"2026-11-30T10:11:12.123456Z","updated_at":"2026-11-30T10:11:12.123456Z","version":1}"#;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    app.execute(&format!(
        "insert into idempotency_keys (user_id, key, fingerprint, response, created_at) \
         values ('alice', 'from-main', '{fingerprint}', '{stored}', '{now}')"
    ))
    .await;
    let replay = post_with_key(&app, &t, "from-main", body).await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["etag"], "\"1\"");
    assert_eq!(replay.headers()["location"], "/api/v1/tasks/777");
    assert_eq!(replay.text().await.unwrap(), stored);
    // Nothing was created.
    let page = app.list_tasks(&t, "").await;
    assert_eq!(page["items"], json!([]));
}

/// Keys expire after the configured time (here: immediately stale by a TTL
/// that the test shortens through the store's cutoff).
async fn expired_keys_are_purged(app: TestApp) {
    let t = token("alice");
    post_with_key(&app, &t, "old", json!({"title": "a"})).await;
    let future = chrono::Utc::now() + chrono::Duration::hours(25);
    let by = tasks_api::db::Deadline::after(std::time::Duration::from_secs(10));
    assert_eq!(
        app.store.purge_idempotency_keys(future, by).await.unwrap(),
        1
    );
    // Purged: the key is free again, for another body.
    let again = post_with_key(&app, &t, "old", json!({"title": "b"})).await;
    assert_eq!(again.status(), StatusCode::CREATED);
}
