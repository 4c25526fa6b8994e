//! The task lifecycle: create, read, replace, patch, toggle, delete.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, token};

async fn create_returns_201_with_location_etag_and_exactly_twelve_fields(app: TestApp) {
    let t = token("alice");
    let response = app
        .create_task(&t, json!({"title": "  Buy milk\t", "tags": [" home", "home ", "errand"], "due_date": "2026-12-01T10:00:00+01:00"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["content-type"], "application/json");
    let task: Value = response.json().await.unwrap();
    let id = task["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(location, format!("/api/v1/tasks/{id}"));
    assert_eq!(etag, "\"1\"");
    assert_eq!(task.as_object().unwrap().len(), 12, "{task}");
    assert_eq!(task["user_id"], "alice");
    assert_eq!(task["title"], "Buy milk");
    assert_eq!(task["description"], Value::Null);
    assert_eq!(task["completed"], false);
    assert_eq!(task["priority"], "medium");
    assert_eq!(task["tags"], json!(["home", "errand"]));
    assert_eq!(task["due_date"], "2026-12-01T09:00:00Z");
    assert_eq!(task["completed_at"], Value::Null);
    assert_eq!(task["version"], 1);
    assert!(task["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(task["created_at"], task["updated_at"]);

    let fetched = app.get_task(&t, id).await;
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.headers()["etag"], "\"1\"");
    assert_eq!(fetched.json::<Value>().await.unwrap(), task);
}

async fn created_completed_task_has_completed_at(app: TestApp) {
    let t = token("alice");
    let task = app
        .new_task(
            &t,
            json!({"title": "done already", "completed": true, "priority": "high"}),
        )
        .await;
    assert_eq!(task["completed"], true);
    assert_eq!(task["priority"], "high");
    assert_eq!(task["completed_at"], task["created_at"]);
}

async fn put_replaces_every_field_and_bumps_version(app: TestApp) {
    let t = token("alice");
    let task = app
        .new_task(&t, json!({"title": "a", "description": "d", "priority": "high", "tags": ["x"], "due_date": "2026-12-01T09:00:00Z"}))
        .await;
    let id = task["id"].as_i64().unwrap();
    let response = app
        .req(Method::PUT, &format!("/api/v1/tasks/{id}"), Some(&t))
        .json(&json!({"title": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(replaced["title"], "b");
    assert_eq!(replaced["description"], Value::Null);
    assert_eq!(replaced["priority"], "medium");
    assert_eq!(replaced["tags"], json!([]));
    assert_eq!(replaced["due_date"], Value::Null);
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["created_at"], task["created_at"]);
    assert!(replaced["updated_at"].as_str().unwrap() > task["updated_at"].as_str().unwrap());

    // PUT without a title is 422 and changes nothing.
    let response = app
        .req(Method::PUT, &format!("/api/v1/tasks/{id}"), Some(&t))
        .json(&json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["errors"][0]["field"], "title");
    let unchanged: Value = app.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(unchanged, replaced);
}

async fn patch_changes_only_given_fields(app: TestApp) {
    let t = token("alice");
    let task = app
        .new_task(&t, json!({"title": "a", "description": "d", "tags": ["x"], "due_date": "2026-12-01T09:00:00Z"}))
        .await;
    let id = task["id"].as_i64().unwrap();
    let patched: Value = app
        .patch_task(&t, id, json!({"priority": "low"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["priority"], "low");
    assert_eq!(patched["title"], "a");
    assert_eq!(patched["description"], "d");
    assert_eq!(patched["tags"], json!(["x"]));
    assert_eq!(patched["version"], 2);

    // null clears the nullable fields.
    let cleared: Value = app
        .patch_task(&t, id, json!({"description": null, "due_date": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["due_date"], Value::Null);
    assert_eq!(cleared["version"], 3);

    // PATCH {} is a successful (version-bumping) no-op.
    let response = app.patch_task(&t, id, json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"4\"");

    // null for a non-nullable field is 422 and changes nothing.
    for field in ["title", "completed", "priority", "tags"] {
        let response = app.patch_task(&t, id, json!({ field: null })).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let after: Value = app.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(after["version"], 4);
}

async fn completed_at_follows_completed_transitions(app: TestApp) {
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "a"})).await["id"]
        .as_i64()
        .unwrap();
    let done: Value = app
        .patch_task(&t, id, json!({"completed": true}))
        .await
        .json()
        .await
        .unwrap();
    let completed_at = done["completed_at"].clone();
    assert!(completed_at.is_string());
    // Staying true keeps the original completion time.
    let still: Value = app
        .patch_task(&t, id, json!({"completed": true, "title": "b"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["completed_at"], completed_at);
    let undone: Value = app
        .patch_task(&t, id, json!({"completed": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(undone["completed_at"], Value::Null);
    assert_eq!(undone["version"], 4);
}

async fn toggle_flips_completed_without_a_body(app: TestApp) {
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "a"})).await["id"]
        .as_i64()
        .unwrap();
    let response = app.toggle_task(&t, id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let on: Value = response.json().await.unwrap();
    assert_eq!(on["completed"], true);
    assert!(on["completed_at"].is_string());
    let off: Value = app.toggle_task(&t, id).await.json().await.unwrap();
    assert_eq!(off["completed"], false);
    assert_eq!(off["completed_at"], Value::Null);
    assert_eq!(off["version"], 3);
}

async fn delete_removes_the_task(app: TestApp) {
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "a"})).await["id"]
        .as_i64()
        .unwrap();
    let response = app
        .req(Method::DELETE, &format!("/api/v1/tasks/{id}"), Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get_task(&t, id).await, StatusCode::NOT_FOUND).await;
    let again = app
        .req(Method::DELETE, &format!("/api/v1/tasks/{id}"), Some(&t))
        .send()
        .await
        .unwrap();
    assert_problem(again, StatusCode::NOT_FOUND).await;
}

async fn if_match_guards_every_write(app: TestApp) {
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "a"})).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/tasks/{id}");
    let send = |method: Method, path: String, if_match: &'static str, body: Option<Value>| {
        let mut req = app
            .req(method, &path, Some(&t))
            .header("if-match", if_match);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    // Stale: 412, nothing changes.
    let stale = send(
        Method::PATCH,
        path.clone(),
        "\"7\"",
        Some(json!({"title": "x"})),
    )
    .await
    .unwrap();
    assert_problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let stale = send(
        Method::PUT,
        path.clone(),
        "\"7\"",
        Some(json!({"title": "x"})),
    )
    .await
    .unwrap();
    assert_problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let stale = send(Method::PATCH, format!("{path}/complete"), "\"7\"", None)
        .await
        .unwrap();
    assert_problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let stale = send(Method::DELETE, path.clone(), "\"7\"", None)
        .await
        .unwrap();
    assert_problem(stale, StatusCode::PRECONDITION_FAILED).await;
    // A weak tag never matches, even for the current version.
    let weak = send(
        Method::PATCH,
        path.clone(),
        "W/\"1\"",
        Some(json!({"title": "x"})),
    )
    .await
    .unwrap();
    assert_problem(weak, StatusCode::PRECONDITION_FAILED).await;
    // Nor does an unquoted version: an entity tag is quoted.
    let bare = send(
        Method::PATCH,
        path.clone(),
        "1",
        Some(json!({"title": "x"})),
    )
    .await
    .unwrap();
    assert_problem(bare, StatusCode::PRECONDITION_FAILED).await;
    let current: Value = app.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(current["version"], 1);
    assert_eq!(current["title"], "a");

    // Current version, a list containing it, and * all match.
    let ok = send(
        Method::PATCH,
        path.clone(),
        "\"1\"",
        Some(json!({"title": "b"})),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let ok = send(
        Method::PATCH,
        path.clone(),
        "\"9\", \"2\"",
        Some(json!({"title": "c"})),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let ok = send(Method::PATCH, format!("{path}/complete"), "*", None)
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let ok = send(Method::DELETE, path.clone(), "\"4\"", None)
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    // * on a missing task is 404, not 412.
    let gone = send(Method::DELETE, path.clone(), "*", None).await.unwrap();
    assert_problem(gone, StatusCode::NOT_FOUND).await;
}

async fn tasks_survive_a_restart(mut app: TestApp) {
    let t = token("alice");
    let task = app.new_task(&t, json!({"title": "persist me"})).await;
    app.stop().await;
    let url = app.database_url.clone();
    let restarted = TestApp::start(app.backend, &url, &[]).await;
    let fetched: Value = restarted
        .get_task(&t, task["id"].as_i64().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, task);
    drop(restarted);
}

crate::both_backends!(
    create_returns_201_with_location_etag_and_exactly_twelve_fields,
    created_completed_task_has_completed_at,
    put_replaces_every_field_and_bumps_version,
    patch_changes_only_given_fields,
    completed_at_follows_completed_transitions,
    toggle_flips_completed_without_a_body,
    delete_removes_the_task,
    if_match_guards_every_write,
    tasks_survive_a_restart,
);
