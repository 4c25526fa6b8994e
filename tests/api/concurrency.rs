//! Atomic writes under concurrency: no lost updates, one winner per version.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, token};

async fn twenty_concurrent_toggles_lose_no_update(app: TestApp) {
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "flip"})).await["id"]
        .as_i64()
        .unwrap();
    let results = join_all((0..20).map(|_| app.toggle_task(&t, id))).await;
    assert!(results.iter().all(|r| r.status() == StatusCode::OK));
    let task: Value = app.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(task["completed"], false, "an even number of toggles");
    assert_eq!(task["completed_at"], Value::Null);
    assert_eq!(task["version"], 21);
}

async fn concurrent_patches_with_one_if_match_have_one_winner(app: TestApp) {
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "race"})).await["id"]
        .as_i64()
        .unwrap();
    let requests = (0..20).map(|i| {
        app.req(Method::PATCH, &format!("/api/v1/tasks/{id}"), Some(&t))
            .header("if-match", "\"1\"")
            .json(&json!({"title": format!("writer {i}")}))
            .send()
    });
    let statuses: Vec<StatusCode> = join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count(),
        19
    );
    let task: Value = app.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(task["version"], 2);
}

async fn fifty_concurrent_creates_make_fifty_rows(app: TestApp) {
    let t = token("alice");
    let responses =
        join_all((0..50).map(|i| app.create_task(&t, json!({"title": format!("task {i}")})))).await;
    let mut ids: Vec<i64> = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED);
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_i64()
                .unwrap(),
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    let page = app.list_tasks(&t, "limit=100").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
}

async fn a_new_user_racing_with_itself_is_created_once(app: TestApp) {
    let t = token("newcomer");
    let responses =
        join_all((0..10).map(|i| app.create_task(&t, json!({"title": format!("t{i}")})))).await;
    assert!(responses.iter().all(|r| r.status() == StatusCode::CREATED));
}

crate::both_backends!(
    twenty_concurrent_toggles_lose_no_update,
    concurrent_patches_with_one_if_match_have_one_winner,
    fifty_concurrent_creates_make_fifty_rows,
    a_new_user_racing_with_itself_is_created_once,
);
