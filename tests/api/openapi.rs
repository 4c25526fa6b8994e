//! The OpenAPI document: committed snapshot, served copy, and agreement with
//! the running service and the validator.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, token};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

#[test]
fn committed_snapshot_matches_the_generated_document() {
    let generated = tasks_api::api::openapi::document_json();
    let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi.json is stale; regenerate it with: cargo run -q -- openapi > openapi.json"
    );
}

#[test]
fn schema_limits_match_the_validator() {
    let doc: Value = serde_json::from_str(&tasks_api::api::openapi::document_json()).unwrap();
    let input = &doc["components"]["schemas"]["TaskInput"]["properties"];
    assert_eq!(
        input["title"]["maxLength"],
        tasks_api::domain::task::TITLE_MAX
    );
    assert_eq!(
        input["description"]["maxLength"],
        tasks_api::domain::task::DESCRIPTION_MAX
    );
    assert_eq!(input["tags"]["maxItems"], tasks_api::domain::task::TAGS_MAX);
    assert_eq!(
        doc["components"]["schemas"]["TaskInput"]["additionalProperties"],
        false
    );
    assert_eq!(
        doc["components"]["schemas"]["TaskPatch"]["additionalProperties"],
        false
    );
    let tag = serde_json::to_string(&doc["components"]["schemas"]).unwrap();
    assert!(tag.contains(&format!(
        "\"maxLength\":{}",
        tasks_api::domain::task::TAG_MAX
    )));
}

/// Every operation in the document is served, with a documented status.
#[tokio::test]
async fn every_documented_operation_answers_with_a_documented_status() {
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let served: Value = app
        .req(Method::GET, "/openapi.json", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(
        served,
        serde_json::from_str::<Value>(&tasks_api::api::openapi::document_json()).unwrap()
    );
    let t = token("alice");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut count = 0;
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let url = format!(
                "{}{}",
                app.base,
                path.replace("{id}", "1").replace("{user_id}", "alice")
            );
            let mut req = client
                .request(method.to_uppercase().parse::<Method>().unwrap(), url)
                .bearer_auth(&t);
            if op.get("requestBody").is_some() {
                req = req.json(&serde_json::json!({"title": "documented"}));
            }
            let status = req.send().await.unwrap().status();
            let documented = op["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(status.as_str()),
                "{method} {path} answered {status}, documented: {:?}",
                documented.keys().collect::<Vec<_>>()
            );
            count += 1;
        }
    }
    assert!(count >= 20, "only {count} operations");
}

#[tokio::test]
async fn docs_page_is_served_with_embedded_assets() {
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let page = app.req(Method::GET, "/docs/", None).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"));
    assert!(!html.contains("https://"), "no CDN assets");
    let bundle = app
        .req(Method::GET, "/docs/swagger-ui-bundle.js", None)
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    let init = app
        .req(Method::GET, "/docs/swagger-initializer.js", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"));
}

/// Someone who opens the printed address in a browser lands on the docs:
/// `GET /` is a 303 to `/docs/` (which is served), and it is not an API
/// operation, so the document does not list it.
#[tokio::test]
async fn root_redirects_to_the_docs() {
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()["location"], "/docs/");
    let followed = app.req(Method::GET, "/", None).send().await.unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(followed.url().path(), "/docs/");
    assert!(followed.text().await.unwrap().contains("swagger-ui"));
    let post = app.req(Method::POST, "/", None).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    let doc: Value = serde_json::from_str(&tasks_api::api::openapi::document_json()).unwrap();
    assert!(doc["paths"].get("/").is_none());
}

/// The docs page keeps a pasted token for the page's life only: Swagger UI
/// is told not to persist authorizations (it would keep them in
/// `localStorage`, readable by any script on this origin, for good).
#[tokio::test]
async fn docs_page_does_not_persist_the_token() {
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let init = app
        .req(Method::GET, "/docs/swagger-initializer.js", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let compact: String = init.split_whitespace().collect();
    assert!(
        compact.contains(r#""persistAuthorization":false"#),
        "{init}"
    );
}
