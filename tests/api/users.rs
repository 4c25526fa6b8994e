//! Users from claims, and `/api/v1/me`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, now_secs, sign, token};

async fn me(app: &TestApp, t: &str) -> Value {
    let response = app
        .req(Method::GET, "/api/v1/me", Some(t))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn first_sight_creates_the_user_from_claims(app: TestApp) {
    assert!(!app.user_exists("alice").await);
    let t = token("alice");
    let profile = me(&app, &t).await;
    assert_eq!(profile["id"], "alice");
    assert_eq!(profile["email"], "alice@example.com");
    assert_eq!(profile["name"], "User alice");
    assert_eq!(
        profile["task_counts"],
        json!({"total": 0, "pending": 0, "completed": 0})
    );
    assert_eq!(profile.as_object().unwrap().len(), 6);
    assert!(app.user_exists("alice").await);
}

async fn changed_claims_update_the_row_and_absent_claims_keep_it(app: TestApp) {
    let exp = now_secs() + 600;
    let first = sign(&json!({"sub": "u", "email": "old@example.com", "name": "Old", "exp": exp}));
    let created = me(&app, &first).await;
    let renamed = sign(&json!({"sub": "u", "email": "new@example.com", "exp": exp}));
    let updated = me(&app, &renamed).await;
    assert_eq!(updated["email"], "new@example.com");
    assert_eq!(
        updated["name"], "Old",
        "an absent claim leaves the stored value"
    );
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated["updated_at"].as_str().unwrap() > created["updated_at"].as_str().unwrap());
    // Unchanged claims write nothing: updated_at stays put.
    let again = me(&app, &renamed).await;
    assert_eq!(again["updated_at"], updated["updated_at"]);
    let bare = sign(&json!({"sub": "u", "exp": exp}));
    assert_eq!(me(&app, &bare).await["updated_at"], updated["updated_at"]);
}

async fn me_counts_tasks(app: TestApp) {
    let t = token("alice");
    for i in 0..3 {
        let id = app.new_task(&t, json!({"title": format!("t{i}")})).await["id"]
            .as_i64()
            .unwrap();
        if i == 0 {
            app.toggle_task(&t, id).await;
        }
    }
    app.new_task(&token("bob"), json!({"title": "not alice's"}))
        .await;
    assert_eq!(
        me(&app, &t).await["task_counts"],
        json!({"total": 3, "pending": 2, "completed": 1})
    );
}

async fn delete_me_removes_user_and_tasks_and_a_valid_token_starts_afresh(app: TestApp) {
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "a"})).await["id"]
        .as_i64()
        .unwrap();
    let bob = token("bob");
    let bob_task = app.new_task(&bob, json!({"title": "b"})).await["id"]
        .as_i64()
        .unwrap();
    let response = app
        .req(Method::DELETE, "/api/v1/me", Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(!app.user_exists("alice").await);
    // The same still-valid token: a fresh, empty user.
    assert_problem(app.get_task(&t, id).await, StatusCode::NOT_FOUND).await;
    assert_eq!(me(&app, &t).await["task_counts"]["total"], 0);
    assert_eq!(app.list_tasks(&t, "").await["items"], json!([]));
    // New tasks work for the recreated user; bob is untouched.
    app.new_task(&t, json!({"title": "again"})).await;
    assert_eq!(app.get_task(&bob, bob_task).await.status(), StatusCode::OK);
}

crate::both_backends!(
    first_sight_creates_the_user_from_claims,
    changed_claims_update_the_row_and_absent_claims_keep_it,
    me_counts_tasks,
    delete_me_removes_user_and_tasks_and_a_valid_token_starts_afresh,
);
