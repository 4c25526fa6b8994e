//! The `/api/{user_id}/tasks` compatibility routes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, now_secs, sign, token};

async fn compat_routes_serve_the_callers_tasks(app: TestApp) {
    let t = token("alice");
    let response = app
        .req(Method::POST, "/api/alice/tasks", Some(&t))
        .json(&json!({"title": "from compat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let task: Value = response.json().await.unwrap();
    let id = task["id"].as_i64().unwrap();
    let list: Value = app
        .req(Method::GET, "/api/alice/tasks", Some(&t))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([task]), "a bare array");
    let got = app
        .req(Method::GET, &format!("/api/alice/tasks/{id}"), Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["etag"], "\"1\"");
    let put = app
        .req(Method::PUT, &format!("/api/alice/tasks/{id}"), Some(&t))
        .json(&json!({"title": "replaced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.json::<Value>().await.unwrap()["title"], "replaced");
    let patch = app
        .req(Method::PATCH, &format!("/api/alice/tasks/{id}"), Some(&t))
        .header("if-match", "\"2\"")
        .json(&json!({"priority": "high"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.json::<Value>().await.unwrap()["version"], 3);
    let toggled = app
        .req(
            Method::PATCH,
            &format!("/api/alice/tasks/{id}/complete"),
            Some(&t),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(toggled.json::<Value>().await.unwrap()["completed"], true);
    let deleted = app
        .req(Method::DELETE, &format!("/api/alice/tasks/{id}"), Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    // v1 sees the same data.
    assert_problem(app.get_task(&t, id).await, StatusCode::NOT_FOUND).await;
}

async fn another_users_path_is_403_before_any_lookup(app: TestApp) {
    let alice = token("alice");
    let id = app.new_task(&alice, json!({"title": "a"})).await["id"]
        .as_i64()
        .unwrap();
    let bob = token("bob");
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/alice/tasks".into(), None),
        (
            Method::POST,
            "/api/alice/tasks".into(),
            Some(json!({"title": "x"})),
        ),
        (
            Method::POST,
            "/api/alice/tasks".into(),
            Some(json!({"title": ""})),
        ),
        (Method::GET, format!("/api/alice/tasks/{id}"), None),
        (Method::GET, "/api/alice/tasks/999999".into(), None),
        (Method::GET, "/api/alice/tasks/not-a-number".into(), None),
        (
            Method::PUT,
            format!("/api/alice/tasks/{id}"),
            Some(json!({"title": ""})),
        ),
        (
            Method::PATCH,
            format!("/api/alice/tasks/{id}"),
            Some(json!({"title": "x"})),
        ),
        (
            Method::PATCH,
            format!("/api/alice/tasks/{id}/complete"),
            None,
        ),
        (Method::DELETE, format!("/api/alice/tasks/{id}"), None),
    ];
    for (method, path, body) in cases {
        let mut req = app.req(method.clone(), &path, Some(&bob));
        if let Some(body) = body {
            req = req.json(&body);
        }
        assert_problem(req.send().await.unwrap(), StatusCode::FORBIDDEN).await;
    }
    // Unauthenticated is still 401 first.
    let response = app
        .req(Method::GET, "/api/alice/tasks", None)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED).await;
    let task: Value = app.get_task(&alice, id).await.json().await.unwrap();
    assert_eq!(task["version"], 1);
}

async fn user_ids_are_percent_decoded(app: TestApp) {
    let t = sign(&json!({"sub": "user@example.com/x y", "exp": now_secs() + 60}));
    let response = app
        .req(
            Method::POST,
            "/api/user%40example.com%2Fx%20y/tasks",
            Some(&t),
        )
        .json(&json!({"title": "odd id"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let got = app
        .req(Method::GET, &location, Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.status(),
        StatusCode::OK,
        "Location {location} must work"
    );
}

async fn compat_list_pages_through_link_headers(app: TestApp) {
    let t = token("alice");
    for i in 0..7 {
        app.new_task(&t, json!({"title": format!("t{i}"), "tags": ["x"]}))
            .await;
    }
    let mut next = Some("/api/alice/tasks?limit=3&sort=-created&tag=x".to_owned());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        let response = app.req(Method::GET, &url, Some(&t)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        next = response.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            let target = link
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned();
            assert!(
                target.contains("limit=3")
                    && target.contains("tag=x")
                    && target.contains("sort=-created")
            );
            target
        });
        let items: Vec<Value> = response.json().await.unwrap();
        seen.extend(items.iter().map(|t| t["id"].as_i64().unwrap()));
        pages += 1;
    }
    assert_eq!(pages, 3);
    let mut expected = seen.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected, "newest first, each task exactly once");
    assert_eq!(seen.len(), 7);
}

async fn compat_list_defaults_to_100_and_accepts_its_sort_spelling(app: TestApp) {
    let t = token("alice");
    for i in 0..3 {
        app.new_task(&t, json!({"title": format!("t{i}")})).await;
    }
    for sort in ["created", "-created", "title", "due_date"] {
        let response = app
            .req(
                Method::GET,
                &format!("/api/alice/tasks?sort={sort}"),
                Some(&t),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{sort}");
        assert!(response.headers().get("link").is_none());
    }
    let response = app
        .req(Method::GET, "/api/alice/tasks?limit=101", Some(&t))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST).await;
}

/// The edit form of the front ends this layout serves: `PUT {title, description}`.
async fn compat_put_changes_only_the_fields_given(app: TestApp) {
    let t = token("alice");
    let task = app
        .new_task(
            &t,
            json!({"title": "a", "description": "d", "completed": true, "priority": "high",
                   "tags": ["x", "y"], "due_date": "2026-12-01T09:00:00Z"}),
        )
        .await;
    let id = task["id"].as_i64().unwrap();
    let path = format!("/api/alice/tasks/{id}");
    let response = app
        .req(Method::PUT, &path, Some(&t))
        .json(&json!({"title": "edited", "description": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let edited: Value = response.json().await.unwrap();
    assert_eq!(edited["title"], "edited");
    assert_eq!(edited["description"], "new");
    for kept in [
        "completed",
        "completed_at",
        "priority",
        "tags",
        "due_date",
        "created_at",
    ] {
        assert_eq!(edited[kept], task[kept], "{kept} must stay");
    }
    assert_eq!(edited["version"], 2);
    let stored: Value = app.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(stored, edited, "the change persisted as answered");

    // `null` clears the nullable fields; the rest still stays.
    let cleared: Value = app
        .req(Method::PUT, &path, Some(&t))
        .json(&json!({"description": null, "due_date": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["due_date"], Value::Null);
    assert_eq!(cleared["title"], "edited");
    assert_eq!(cleared["completed"], true);
    assert_eq!(cleared["priority"], "high");
    assert_eq!(cleared["tags"], json!(["x", "y"]));
    assert_eq!(cleared["version"], 3);
}

async fn compat_put_validates_and_guards_as_patch(app: TestApp) {
    let t = token("alice");
    let task = app.new_task(&t, json!({"title": "a"})).await;
    let id = task["id"].as_i64().unwrap();
    let path = format!("/api/alice/tasks/{id}");
    let bad_bodies = [
        (json!({"title": null}), "title"),
        (json!({"completed": null}), "completed"),
        (json!({"title": ""}), "title"),
        (json!({"title": "x", "owner": "bob"}), "owner"),
        (json!({"id": 7}), "id"),
        (json!({"priority": "urgent"}), "priority"),
    ];
    for (body, field) in bad_bodies {
        for (method, url) in [(Method::PUT, path.clone()), (Method::PATCH, path.clone())] {
            let response = app
                .req(method.clone(), &url, Some(&t))
                .json(&body)
                .send()
                .await
                .unwrap();
            let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(problem["errors"][0]["field"], field, "{method} {body}");
        }
    }
    // 404 before 422: a missing task, or another user's, with a bad body.
    let missing = app
        .req(Method::PUT, "/api/alice/tasks/999999", Some(&t))
        .json(&json!({"title": null}))
        .send()
        .await
        .unwrap();
    assert_problem(missing, StatusCode::NOT_FOUND).await;
    let bob = token("bob");
    for body in [json!({"title": null}), json!({"title": "mine"})] {
        let foreign = app
            .req(Method::PUT, &format!("/api/bob/tasks/{id}"), Some(&bob))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(foreign, StatusCode::NOT_FOUND).await;
    }
    // If-Match: a stale tag is 412 and changes nothing; the current one applies.
    let stale = app
        .req(Method::PUT, &path, Some(&t))
        .header("if-match", "\"9\"")
        .json(&json!({"title": "late"}))
        .send()
        .await
        .unwrap();
    assert_problem(stale, StatusCode::PRECONDITION_FAILED).await;
    let unchanged: Value = app.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(unchanged, task);
    let fresh = app
        .req(Method::PUT, &path, Some(&t))
        .header("if-match", "\"1\"")
        .json(&json!({"title": "on time"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(fresh.json::<Value>().await.unwrap()["title"], "on time");
}

async fn compat_delete_answers_200_with_the_deleted_task(app: TestApp) {
    let t = token("alice");
    let id = app
        .new_task(&t, json!({"title": "a", "tags": ["x"], "priority": "low"}))
        .await["id"]
        .as_i64()
        .unwrap();
    app.toggle_task(&t, id).await;
    let path = format!("/api/alice/tasks/{id}");
    let before = app.req(Method::GET, &path, Some(&t)).send().await.unwrap();
    let etag = before.headers()["etag"].to_str().unwrap().to_owned();
    let before: Value = before.json().await.unwrap();
    assert_eq!(etag, "\"2\"");

    // Isolation and If-Match as before: nothing is deleted.
    let bob = token("bob");
    let foreign = app
        .req(Method::DELETE, &format!("/api/bob/tasks/{id}"), Some(&bob))
        .send()
        .await
        .unwrap();
    assert_problem(foreign, StatusCode::NOT_FOUND).await;
    let stale = app
        .req(Method::DELETE, &path, Some(&t))
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_problem(stale, StatusCode::PRECONDITION_FAILED).await;

    let deleted = app
        .req(Method::DELETE, &path, Some(&t))
        .header("if-match", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(deleted.headers()["etag"], etag.as_str());
    assert_eq!(deleted.headers()["content-type"], "application/json");
    let body: Value = deleted.json().await.unwrap();
    assert_eq!(body, before, "the task's last state");

    assert_problem(app.get_task(&t, id).await, StatusCode::NOT_FOUND).await;
    let again = app
        .req(Method::DELETE, &path, Some(&t))
        .send()
        .await
        .unwrap();
    assert_problem(again, StatusCode::NOT_FOUND).await;
}

crate::both_backends!(
    compat_routes_serve_the_callers_tasks,
    compat_put_changes_only_the_fields_given,
    compat_put_validates_and_guards_as_patch,
    compat_delete_answers_200_with_the_deleted_task,
    another_users_path_is_403_before_any_lookup,
    user_ids_are_percent_decoded,
    compat_list_pages_through_link_headers,
    compat_list_defaults_to_100_and_accepts_its_sort_spelling,
);
