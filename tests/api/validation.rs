//! Body validation: every rule of API.md's Task section, at its edges.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, token};

async fn rejected(app: &TestApp, body: Value) -> Value {
    let response = app.create_task(&token("alice"), body.clone()).await;
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{body}"
    );
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn title_length_counts_unicode_scalar_values(app: TestApp) {
    let t = token("alice");
    for ch in ["é", "😀", "e\u{301}"] {
        let unit = ch.chars().count();
        let ok: String = ch.repeat(200 / unit);
        let task = app.new_task(&t, json!({"title": ok})).await;
        assert_eq!(task["title"].as_str().unwrap().chars().count(), 200);
        let too_long = format!("{ok}{}", "x");
        let problem = rejected(&app, json!({"title": too_long})).await;
        assert_eq!(problem["errors"][0]["field"], "title");
        assert_eq!(problem["detail"], "title must be 1-200 characters");
    }
}

async fn whitespace_only_title_is_rejected(app: TestApp) {
    for title in ["", "   ", "\t\n", "\u{3000}\u{2003}"] {
        rejected(&app, json!({"title": title})).await;
    }
    rejected(&app, json!({})).await;
    rejected(&app, json!({"title": 5})).await;
}

async fn description_limits(app: TestApp) {
    let t = token("alice");
    let task = app
        .new_task(&t, json!({"title": "a", "description": "ü".repeat(1000)}))
        .await;
    assert_eq!(task["description"].as_str().unwrap().chars().count(), 1000);
    let task = app
        .new_task(&t, json!({"title": "a", "description": "  padded  "}))
        .await;
    assert_eq!(
        task["description"], "  padded  ",
        "description is not trimmed"
    );
    let task = app
        .new_task(&t, json!({"title": "a", "description": ""}))
        .await;
    assert_eq!(task["description"], "");
    let problem = rejected(&app, json!({"title": "a", "description": "ü".repeat(1001)})).await;
    assert_eq!(problem["errors"][0]["field"], "description");
}

async fn unknown_and_server_owned_fields_are_rejected(app: TestApp) {
    for field in [
        "id",
        "user_id",
        "created_at",
        "updated_at",
        "completed_at",
        "version",
        "owner",
    ] {
        let problem = rejected(&app, json!({"title": "a", field: "x"})).await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    // Nothing was created by any of them.
    let page = app.list_tasks(&token("alice"), "").await;
    assert_eq!(page["items"], json!([]));
}

async fn non_object_bodies_are_422(app: TestApp) {
    for body in [json!([]), json!("title"), json!(3), json!(null)] {
        rejected(&app, body).await;
    }
}

async fn tags_rules(app: TestApp) {
    let t = token("alice");
    let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let task = app
        .new_task(&t, json!({"title": "a", "tags": twenty}))
        .await;
    assert_eq!(task["tags"].as_array().unwrap().len(), 20);
    // Duplicates after trimming do not count towards the limit.
    let mut with_dups = twenty.clone();
    with_dups.extend(twenty.iter().map(|t| format!(" {t} ")));
    let task = app
        .new_task(&t, json!({"title": "a", "tags": with_dups}))
        .await;
    assert_eq!(task["tags"], json!(twenty));
    // Case-sensitive.
    let task = app
        .new_task(&t, json!({"title": "a", "tags": ["Home", "home"]}))
        .await;
    assert_eq!(task["tags"], json!(["Home", "home"]));
    let mut too_many = twenty.clone();
    too_many.push("t20".into());
    rejected(&app, json!({"title": "a", "tags": too_many})).await;
    let problem = rejected(&app, json!({"title": "a", "tags": ["ok", "x".repeat(51)]})).await;
    assert_eq!(problem["errors"][0]["field"], "tags[1]");
    app.new_task(&t, json!({"title": "a", "tags": ["x".repeat(50)]}))
        .await;
    rejected(&app, json!({"title": "a", "tags": ["  "]})).await;
    rejected(&app, json!({"title": "a", "tags": null})).await;
    rejected(&app, json!({"title": "a", "tags": "home"})).await;
    rejected(&app, json!({"title": "a", "tags": [1]})).await;
}

async fn priority_and_completed_types(app: TestApp) {
    rejected(&app, json!({"title": "a", "priority": "urgent"})).await;
    rejected(&app, json!({"title": "a", "priority": "HIGH"})).await;
    rejected(&app, json!({"title": "a", "completed": "true"})).await;
    rejected(&app, json!({"title": "a", "completed": null})).await;
}

async fn due_date_must_be_rfc3339_with_offset(app: TestApp) {
    let t = token("alice");
    for bad in [
        "2026-12-01",
        "2026-12-01T09:00:00",
        "2026-12-01T09:00Z",
        "tomorrow",
        "2026-13-01T09:00:00Z",
    ] {
        let problem = rejected(&app, json!({"title": "a", "due_date": bad})).await;
        assert_eq!(problem["errors"][0]["field"], "due_date");
    }
    let task = app
        .new_task(
            &t,
            json!({"title": "a", "due_date": "2026-12-01T04:30:00-04:30"}),
        )
        .await;
    assert_eq!(task["due_date"], "2026-12-01T09:00:00Z");
    let task = app
        .new_task(&t, json!({"title": "a", "due_date": null}))
        .await;
    assert_eq!(task["due_date"], Value::Null);
}

async fn nul_characters_are_rejected_and_sql_is_stored_verbatim(app: TestApp) {
    rejected(&app, json!({"title": "a\u{0}b"})).await;
    rejected(&app, json!({"title": "a", "description": "x\u{0}"})).await;
    rejected(&app, json!({"title": "a", "tags": ["\u{0}"]})).await;
    let t = token("alice");
    let sql = "'); drop table tasks; --";
    let task = app
        .new_task(
            &t,
            json!({"title": sql, "description": "\" or 1=1 --", "tags": ["%_\\"]}),
        )
        .await;
    assert_eq!(task["title"], sql);
    assert_eq!(task["description"], "\" or 1=1 --");
    assert_eq!(task["tags"], json!(["%_\\"]));
    let fetched: Value = app
        .get_task(&t, task["id"].as_i64().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, task);
}

async fn every_bad_field_is_reported_at_once(app: TestApp) {
    let problem = rejected(&app, json!({"title": "", "priority": "x", "version": 3})).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields.len(), 3, "{fields:?}");
}

/// `n` distinct three-character tags: the tag bomb of a 64 KB body.
fn distinct_tags(n: usize) -> Vec<Value> {
    let alphabet: Vec<char> = ('a'..='z').chain('0'..='9').collect();
    (0..n)
        .map(|i| {
            let [a, b, c] = [i / 1296, i / 36 % 36, i % 36].map(|d| alphabet[d]);
            json!(format!("{a}{b}{c}"))
        })
        .collect()
}

/// A 64 KB body of ~10,800 distinct tags is refused once the 21st distinct
/// tag is read (before, every tag was compared with every earlier one:
/// ~0.6 s of CPU per request in a debug build, against ~1.5 ms for a create).
/// The item after them is never read, so its error is not reported (how
/// much CPU a refusal costs is a benchmark's question, not this test's).
async fn a_body_full_of_tags_is_refused_at_the_21st_distinct_tag(app: TestApp) {
    let t = token("alice");
    let mut bomb = distinct_tags(10_800);
    bomb.push(json!(1));
    let bomb = json!({"title": "a", "tags": bomb});
    assert!((60_000..65_536).contains(&bomb.to_string().len()));
    let id = app.new_task(&t, json!({"title": "a"})).await["id"].clone();
    let expected = json!([{"field": "tags", "message": "must hold at most 20 distinct tags"}]);
    for method in [Method::POST, Method::PUT, Method::PATCH] {
        let path = match method {
            Method::POST => "/api/v1/tasks".to_owned(),
            _ => format!("/api/v1/tasks/{id}"),
        };
        let response = app
            .req(method, &path, Some(&t))
            .json(&bomb)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"], expected, "{path}");
    }
}

/// 32,000 bad tags in a 64 KB body: the 422 lists the first 20 and counts
/// the rest in `detail` (it was 2.6 MB, 40 times the request).
async fn a_422_lists_the_first_20_errors_and_counts_the_rest(app: TestApp) {
    let t = token("alice");
    let body = json!({"title": "a", "tags": vec![0; 32_000]});
    assert!(body.to_string().len() < 65_536);
    let id = app.new_task(&t, json!({"title": "a"})).await["id"].clone();
    for (method, path) in [
        (Method::POST, "/api/v1/tasks".to_owned()),
        (Method::PATCH, format!("/api/v1/tasks/{id}")),
    ] {
        let response = app
            .req(method, &path, Some(&t))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.len() < 4096, "{path}: {} bytes", bytes.len());
        let problem: Value = serde_json::from_slice(&bytes).unwrap();
        let errors = problem["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 20);
        assert_eq!(
            errors[19],
            json!({"field": "tags[19]", "message": "must be a string"})
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with("tags[0] must be a string; "), "{detail}");
        assert!(detail.ends_with("; and 31980 more errors"), "{detail}");
    }
}

crate::both_backends!(
    title_length_counts_unicode_scalar_values,
    whitespace_only_title_is_rejected,
    description_limits,
    unknown_and_server_owned_fields_are_rejected,
    non_object_bodies_are_422,
    tags_rules,
    priority_and_completed_types,
    due_date_must_be_rfc3339_with_offset,
    nul_characters_are_rejected_and_sql_is_stored_verbatim,
    every_bad_field_is_reported_at_once,
    a_body_full_of_tags_is_refused_at_the_21st_distinct_tag,
    a_422_lists_the_first_20_errors_and_counts_the_rest,
);
