//! Users from claims, and `/api/v1/me`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, admin_client, assert_problem, now_secs, sign, token};

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

/// Deletes the user row behind the servers' backs, as an operator's SQL
/// would (the foreign keys cascade to the user's tasks).
async fn delete_row_in_sql(app: &TestApp, sub: &str) {
    match app.pg_schema() {
        Some((base, schema)) => {
            let sql = format!("delete from {schema}.users where id = $1");
            let deleted = admin_client(base).await.execute(&sql, &[&sub]).await;
            assert_eq!(deleted.unwrap(), 1);
        }
        None => {
            let path = app.database_url.strip_prefix("sqlite://").unwrap();
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            conn.pragma_update(None, "foreign_keys", true).unwrap();
            let deleted = conn.execute("delete from users where id = ?1", [sub]);
            assert_eq!(deleted.unwrap(), 1);
        }
    }
}

/// Every task route, through an instance that still remembers `sub` after
/// its row was deleted elsewhere, answers as for a fresh, empty user: the
/// old task is gone (404) and lists are empty.
async fn assert_fresh_on_task_routes(app: &TestApp, sub: &str, t: &str, old: i64) {
    for prefix in ["/api/v1".to_owned(), format!("/api/{sub}")] {
        let one = format!("{prefix}/tasks/{old}");
        let body = json!({"title": "x"});
        let requests = [
            app.req(Method::GET, &one, Some(t)),
            app.req(Method::PUT, &one, Some(t)).json(&body),
            app.req(Method::PUT, &one, Some(t))
                .json(&json!({"title": ""})),
            app.req(Method::PATCH, &one, Some(t)).json(&body),
            app.req(Method::PATCH, &format!("{one}/complete"), Some(t)),
            app.req(Method::DELETE, &one, Some(t)),
        ];
        for request in requests {
            assert_problem(request.send().await.unwrap(), StatusCode::NOT_FOUND).await;
        }
        let listed = app
            .req(Method::GET, &format!("{prefix}/tasks"), Some(t))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::OK);
        let listed: Value = listed.json().await.unwrap();
        let items = if prefix == "/api/v1" {
            &listed["items"]
        } else {
            &listed
        };
        assert_eq!(items, &json!([]), "{prefix}");
    }
}

/// Issue 19 item 5: after `DELETE /me` through instance A, instance B,
/// which still remembers the user, answers as for a fresh, empty user on
/// every route, and re-creates the row on whichever route needs it (`GET
/// /me`, creates on both route families).
async fn a_user_deleted_through_another_instance_starts_afresh_everywhere(app: TestApp) {
    let other = TestApp::start(app.backend, &app.database_url, &[]).await;
    let t = token("alice");
    let delete_me = |via: &TestApp| via.req(Method::DELETE, "/api/v1/me", Some(&t)).send();
    let zero = json!({"total": 0, "pending": 0, "completed": 0});
    let old = app.new_task(&t, json!({"title": "old"})).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(me(&other, &t).await["task_counts"]["total"], 1);

    assert_eq!(
        delete_me(&app).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    // Every read sees every committed write at once, on both backends.
    assert!(!other.user_exists("alice").await);
    assert_fresh_on_task_routes(&other, "alice", &t, old).await;
    assert_eq!(me(&other, &t).await["task_counts"], zero);
    assert!(app.user_exists("alice").await);

    // A create is the first request after the deletion, on either family.
    for path in ["/api/v1/tasks", "/api/alice/tasks"] {
        assert_eq!(
            delete_me(&app).await.unwrap().status(),
            StatusCode::NO_CONTENT
        );
        let created = other
            .req(Method::POST, path, Some(&t))
            .json(&json!({"title": "new"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED, "{path}");
        assert_eq!(me(&other, &t).await["task_counts"]["total"], 1, "{path}");
    }
    // DELETE /me itself, through the instance that remembers the user.
    assert_eq!(
        delete_me(&app).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete_me(&other).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(me(&app, &t).await["task_counts"], zero);
}

/// Issue 19 item 5: a user row deleted directly in SQL, behind an
/// instance that remembers the user, is re-created as for a fresh user.
async fn a_user_row_deleted_in_sql_starts_afresh(app: TestApp) {
    let t = token("alice");
    let old = app.new_task(&t, json!({"title": "old"})).await["id"]
        .as_i64()
        .unwrap();
    delete_row_in_sql(&app, "alice").await;
    assert!(!app.user_exists("alice").await);
    assert_fresh_on_task_routes(&app, "alice", &t, old).await;
    let profile = me(&app, &t).await;
    assert_eq!(profile["email"], "alice@example.com");
    assert_eq!(
        profile["task_counts"],
        json!({"total": 0, "pending": 0, "completed": 0})
    );
    delete_row_in_sql(&app, "alice").await;
    assert!(!app.user_exists("alice").await);
    app.new_task(&t, json!({"title": "new"})).await;
    assert_eq!(me(&app, &t).await["task_counts"]["total"], 1);
}

crate::both_backends!(
    a_user_deleted_through_another_instance_starts_afresh_everywhere,
    a_user_row_deleted_in_sql_starts_afresh,
    first_sight_creates_the_user_from_claims,
    changed_claims_update_the_row_and_absent_claims_keep_it,
    me_counts_tasks,
    delete_me_removes_user_and_tasks_and_a_valid_token_starts_afresh,
);
