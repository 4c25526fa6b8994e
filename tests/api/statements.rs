//! How statements reach PostgreSQL (`DB_PREPARED_STATEMENTS`): prepared once
//! per connection on a direct URL, unnamed when turned off, and a prepared
//! statement the server can no longer use is recovered from, not a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp, token};

/// `db_statements_total{mode=…}` from `/metrics`.
async fn statements(app: &TestApp, mode: &str) -> u64 {
    let text = app
        .req(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("db_statements_total{{mode=\"{mode}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A create, a get, a list and a patch for one user.
async fn some_traffic(app: &TestApp, user: &str) -> i64 {
    let t = token(user);
    let task = app.new_task(&t, json!({"title": "prepared"})).await;
    let id = task["id"].as_i64().unwrap();
    assert_eq!(app.get_task(&t, id).await.status(), StatusCode::OK);
    app.list_tasks(&t, "").await;
    assert_eq!(
        app.patch_task(&t, id, json!({"title": "prepared twice"}))
            .await
            .status(),
        StatusCode::OK
    );
    id
}

#[tokio::test]
async fn a_direct_connection_prepares_statements_by_default() {
    let Some(app) = TestApp::new(Backend::Postgres).await else {
        return;
    };
    some_traffic(&app, "prep-auto").await;
    assert!(statements(&app, "prepared").await >= 4);
    assert_eq!(statements(&app, "unnamed").await, 0);
    // A filtered list is planned for its values each time: sent unnamed.
    let page = app
        .list_tasks(&token("prep-auto"), "tag=none&q=prepared")
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(statements(&app, "unnamed").await, 1);
}

#[tokio::test]
async fn turned_off_every_statement_is_sent_unnamed() {
    let Some(app) =
        TestApp::with_env(Backend::Postgres, &[("DB_PREPARED_STATEMENTS", "off")]).await
    else {
        return;
    };
    some_traffic(&app, "prep-off").await;
    assert_eq!(statements(&app, "prepared").await, 0);
    assert!(statements(&app, "unnamed").await >= 4);
}

/// A schema change under a cached statement ("cached plan must not change
/// result type") costs nothing visible: the statement is sent again
/// unnamed and the cache refilled.
#[tokio::test]
async fn a_prepared_statement_invalidated_by_a_schema_change_is_recovered() {
    let Some(app) = TestApp::with_env(Backend::Postgres, &[("DB_POOL_SIZE", "1")]).await else {
        return;
    };
    let t = token("prep-stale");
    let id = some_traffic(&app, "prep-stale").await;
    assert_eq!(statements(&app, "unnamed").await, 0);

    let (base, schema) = app.pg_schema().unwrap();
    let (admin, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!(
            "alter table {schema}.tasks alter column title type varchar(1000)"
        ))
        .await
        .unwrap();

    let response = app.get_task(&t, id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let task: serde_json::Value = response.json().await.unwrap();
    assert_eq!(task["title"], "prepared twice");
    assert_eq!(
        statements(&app, "unnamed").await,
        1,
        "one statement re-sent unnamed"
    );
    // The cache was refilled: the next get is prepared again.
    let before = statements(&app, "prepared").await;
    assert_eq!(app.get_task(&t, id).await.status(), StatusCode::OK);
    assert_eq!(statements(&app, "prepared").await, before + 1);
}
