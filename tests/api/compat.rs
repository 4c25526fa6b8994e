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
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
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

crate::both_backends!(
    compat_routes_serve_the_callers_tasks,
    another_users_path_is_403_before_any_lookup,
    user_ids_are_percent_decoded,
    compat_list_pages_through_link_headers,
    compat_list_defaults_to_100_and_accepts_its_sort_spelling,
);
