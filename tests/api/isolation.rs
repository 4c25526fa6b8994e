//! Per-user isolation: another user's task is indistinguishable from a
//! missing one on every route.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, token};

/// The problem body minus the per-request id.
fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

async fn foreign_task_is_not_found_on_every_route(app: TestApp) {
    let alice = token("alice");
    let bob = token("bob");
    let task = app
        .new_task(
            &alice,
            json!({"title": "alice's secret", "tags": ["private"]}),
        )
        .await;
    let id = task["id"].as_i64().unwrap();
    let missing = id + 1000;

    let attempts: Vec<(Method, String, Option<Value>, Option<&str>)> = vec![
        (Method::GET, "/api/v1/tasks/{}".to_owned(), None, None),
        (
            Method::PUT,
            "/api/v1/tasks/{}".to_owned(),
            Some(json!({"title": "pwned"})),
            None,
        ),
        (
            Method::PATCH,
            "/api/v1/tasks/{}".to_owned(),
            Some(json!({"title": "pwned"})),
            None,
        ),
        (
            Method::PATCH,
            "/api/v1/tasks/{}".to_owned(),
            Some(json!({"title": ""})),
            None,
        ),
        (
            Method::PATCH,
            "/api/v1/tasks/{}".to_owned(),
            Some(json!({"title": "x"})),
            Some("\"1\""),
        ),
        (
            Method::PATCH,
            "/api/v1/tasks/{}/complete".to_owned(),
            None,
            None,
        ),
        (
            Method::PATCH,
            "/api/v1/tasks/{}/complete".to_owned(),
            None,
            Some("\"99\""),
        ),
        (Method::DELETE, "/api/v1/tasks/{}".to_owned(), None, None),
        (
            Method::DELETE,
            "/api/v1/tasks/{}".to_owned(),
            None,
            Some("*"),
        ),
    ];
    for (method, template, body, if_match) in attempts {
        let mut bodies = Vec::new();
        for target in [id, missing] {
            let path = template.replace("{}", &target.to_string());
            let mut req = app.req(method.clone(), &path, Some(&bob));
            if let Some(body) = &body {
                req = req.json(body);
            }
            if let Some(tag) = if_match {
                req = req.header("if-match", tag);
            }
            let response = req.send().await.unwrap();
            bodies.push(without_request_id(
                assert_problem(response, StatusCode::NOT_FOUND).await,
            ));
        }
        assert_eq!(
            bodies[0], bodies[1],
            "{method} {template}: foreign and missing differ"
        );
    }
    let page = app.list_tasks(&bob, "").await;
    assert_eq!(page["items"], json!([]));
    let page = app.list_tasks(&bob, "tag=private&q=secret").await;
    assert_eq!(page["items"], json!([]));
    // Alice's task is untouched.
    let after: Value = app.get_task(&alice, id).await.json().await.unwrap();
    assert_eq!(after, task);
}

async fn lists_show_only_the_callers_tasks(app: TestApp) {
    let alice = token("alice");
    let bob = token("bob");
    for i in 0..3 {
        app.new_task(&alice, json!({"title": format!("a{i}")}))
            .await;
        app.new_task(&bob, json!({"title": format!("b{i}")})).await;
    }
    for (t, who) in [(&alice, "alice"), (&bob, "bob")] {
        let page = app.list_tasks(t, "limit=100").await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|task| task["user_id"] == who));
    }
}

crate::both_backends!(
    foreign_task_is_not_found_on_every_route,
    lists_show_only_the_callers_tasks
);
