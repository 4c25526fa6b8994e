//! `GET /api/v1/changes`: full and incremental sync, tombstones, paging,
//! tokens, and the guarantee that a replica built only from the feed equals
//! the listing, under concurrent writers on two instances.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tasks_api::domain::changes::{SyncKey, SyncToken};

use crate::helpers::{SECRET, TestApp, assert_problem, now_secs, token};

/// `GET /api/v1/changes?{query}`, which must succeed.
pub async fn sync(app: &TestApp, t: &str, query: &str) -> Value {
    let response = app
        .req(Method::GET, &format!("/api/v1/changes?{query}"), Some(t))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "changes ?{query}");
    let body: Value = response.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["changes", "has_more", "next_since"]);
    body
}

/// Every page after `since` (all tasks without it), applied to `replica`;
/// returns the last `next_since`.
pub async fn catch_up(
    app: &TestApp,
    t: &str,
    since: Option<&str>,
    replica: &mut BTreeMap<i64, Value>,
) -> String {
    let mut since = since.map(str::to_owned);
    loop {
        let query = match &since {
            Some(s) => format!("since={s}&limit=7"),
            None => "limit=7".to_owned(),
        };
        let page = sync(app, t, &query).await;
        apply(replica, &page["changes"]);
        since = Some(page["next_since"].as_str().unwrap().to_owned());
        if page["has_more"] == false {
            return since.unwrap_or_default();
        }
    }
}

/// Applies feed changes to a replica keyed by task id.
pub fn apply(replica: &mut BTreeMap<i64, Value>, changes: &Value) {
    for change in changes.as_array().unwrap() {
        match change["op"].as_str() {
            Some("upsert") => {
                let task = &change["task"];
                replica.insert(task["id"].as_i64().unwrap(), task.clone());
            }
            Some("delete") => {
                replica.remove(&change["id"].as_i64().unwrap());
            }
            other => panic!("unknown op {other:?} in {change}"),
        }
    }
}

/// The caller's tasks as the list answers them, keyed by id.
async fn listing(app: &TestApp, t: &str) -> BTreeMap<i64, Value> {
    let mut all = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=100&cursor={c}"),
            None => "limit=100".to_owned(),
        };
        let page = app.list_tasks(t, &query).await;
        for task in page["items"].as_array().unwrap() {
            all.insert(task["id"].as_i64().unwrap(), task.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

fn ids(changes: &Value) -> Vec<(String, i64)> {
    changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = c["task"]["id"].as_i64().or(c["id"].as_i64()).unwrap();
            (c["op"].as_str().unwrap().to_owned(), id)
        })
        .collect()
}

async fn a_full_sync_sends_every_task_then_nothing_new(app: TestApp) {
    let t = token("alice");
    let empty = sync(&app, &t, "").await;
    assert_eq!(empty["changes"], json!([]));
    assert_eq!(empty["has_more"], false);
    let mut tasks = Vec::new();
    for title in ["one", "two", "three"] {
        tasks.push(
            app.new_task(&t, json!({"title": title, "tags": ["x"]}))
                .await,
        );
    }
    app.new_task(&token("bob"), json!({"title": "bob's"})).await;
    let full = sync(&app, &t, "").await;
    let upserts: Vec<Value> = full["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["op"], "upsert");
            assert_eq!(c.as_object().unwrap().len(), 2, "{c}");
            c["task"].clone()
        })
        .collect();
    assert_eq!(upserts, tasks, "every task, whole, in the order written");
    assert_eq!(full["has_more"], false);
    let since = full["next_since"].as_str().unwrap();
    let after = sync(&app, &t, &format!("since={since}")).await;
    assert_eq!(after["changes"], json!([]));
    assert_eq!(after["has_more"], false);
}

async fn an_incremental_sync_has_each_task_once_in_its_latest_state(app: TestApp) {
    let t = token("alice");
    let x = app.new_task(&t, json!({"title": "x"})).await["id"]
        .as_i64()
        .unwrap();
    let y = app.new_task(&t, json!({"title": "y"})).await["id"]
        .as_i64()
        .unwrap();
    let since = sync(&app, &t, "").await["next_since"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch_task(&t, x, json!({"title": "x2"})).await;
    app.patch_task(&t, x, json!({"title": "x3"})).await;
    app.toggle_task(&t, y).await;
    let z = app.new_task(&t, json!({"title": "z"})).await["id"]
        .as_i64()
        .unwrap();
    let deleted = app
        .req(Method::DELETE, &format!("/api/v1/tasks/{x}"), Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let page = sync(&app, &t, &format!("since={since}")).await;
    assert_eq!(
        ids(&page["changes"]),
        [
            ("upsert".to_owned(), y),
            ("upsert".to_owned(), z),
            ("delete".to_owned(), x)
        ]
    );
    let changes = page["changes"].as_array().unwrap();
    assert_eq!(changes[0]["task"]["completed"], true);
    assert_eq!(changes[0]["task"]["version"], 2);
    let tombstone = changes[2].as_object().unwrap();
    assert_eq!(tombstone.len(), 3, "{tombstone:?}");
    let deleted_at = tombstone["deleted_at"].as_str().unwrap();
    assert!(deleted_at.ends_with('Z'), "{deleted_at}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(deleted_at).is_ok(),
        "{deleted_at}"
    );
    // A later full sync has no tombstones: the client holds nothing yet.
    assert_eq!(
        ids(&sync(&app, &t, "").await["changes"]),
        [("upsert".to_owned(), y), ("upsert".to_owned(), z)]
    );
}

/// Each write path shows in the feed as exactly one change; an idempotent
/// replay and a refused write show nothing.
async fn every_write_path_appears_in_the_feed(app: TestApp) {
    let t = token("alice");
    let mut since = sync(&app, &t, "").await["next_since"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut next = async |expected: Option<(&str, i64, i64)>, what: &str| {
        let page = sync(&app, &t, &format!("since={since}")).await;
        let changes = page["changes"].as_array().unwrap().clone();
        match expected {
            None => assert_eq!(changes, Vec::<Value>::new(), "{what}"),
            Some((op, id, version)) => {
                assert_eq!(changes.len(), 1, "{what}: {changes:?}");
                assert_eq!(ids(&page["changes"]), [(op.to_owned(), id)], "{what}");
                if op == "upsert" {
                    assert_eq!(changes[0]["task"]["version"], version, "{what}");
                }
            }
        }
        since = page["next_since"].as_str().unwrap().to_owned();
    };
    let send = async |method: Method, path: String, body: Option<Value>| {
        let mut request = app.req(method, &path, Some(&t));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    };
    let created = send(
        Method::POST,
        "/api/v1/tasks".into(),
        Some(json!({"title": "v1"})),
    )
    .await;
    let a = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    next(Some(("upsert", a, 1)), "v1 create").await;
    let compat = send(
        Method::POST,
        "/api/alice/tasks".into(),
        Some(json!({"title": "compat"})),
    )
    .await;
    let b = compat.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    next(Some(("upsert", b, 1)), "compat create").await;
    let keyed = || {
        app.req(Method::POST, "/api/v1/tasks", Some(&t))
            .header("idempotency-key", "k1")
            .json(&json!({"title": "keyed"}))
            .send()
    };
    let c = keyed().await.unwrap().json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    next(Some(("upsert", c, 1)), "keyed create").await;
    assert_eq!(keyed().await.unwrap().status(), StatusCode::CREATED);
    next(None, "idempotent replay").await;
    let put = json!({"title": "put"});
    send(Method::PUT, format!("/api/v1/tasks/{a}"), Some(put.clone())).await;
    next(Some(("upsert", a, 2)), "v1 PUT").await;
    send(
        Method::PATCH,
        format!("/api/v1/tasks/{a}"),
        Some(json!({"priority": "high"})),
    )
    .await;
    next(Some(("upsert", a, 3)), "v1 PATCH").await;
    send(Method::PATCH, format!("/api/v1/tasks/{a}/complete"), None).await;
    next(Some(("upsert", a, 4)), "v1 toggle").await;
    send(Method::PUT, format!("/api/alice/tasks/{b}"), Some(put)).await;
    next(Some(("upsert", b, 2)), "compat PUT").await;
    send(
        Method::PATCH,
        format!("/api/alice/tasks/{b}"),
        Some(json!({"tags": ["t"]})),
    )
    .await;
    next(Some(("upsert", b, 3)), "compat PATCH").await;
    send(
        Method::PATCH,
        format!("/api/alice/tasks/{b}/complete"),
        None,
    )
    .await;
    next(Some(("upsert", b, 4)), "compat toggle").await;
    let stale = app
        .req(Method::PATCH, &format!("/api/v1/tasks/{a}"), Some(&t))
        .header("if-match", "\"1\"")
        .json(&json!({"title": "lost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let invalid = send(
        Method::PATCH,
        format!("/api/v1/tasks/{a}"),
        Some(json!({"title": ""})),
    )
    .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    next(None, "refused writes").await;
    send(Method::DELETE, format!("/api/v1/tasks/{a}"), None).await;
    next(Some(("delete", a, 0)), "v1 DELETE").await;
    send(Method::DELETE, format!("/api/alice/tasks/{b}"), None).await;
    next(Some(("delete", b, 0)), "compat DELETE").await;
    // Another user's writes are not in alice's feed.
    app.new_task(&token("bob"), json!({"title": "bob"})).await;
    next(None, "bob's create").await;
}

async fn pages_follow_each_other_without_repeats(app: TestApp) {
    let t = token("alice");
    let mut written = Vec::new();
    for i in 0..7 {
        written.push(
            app.new_task(&t, json!({"title": format!("t{i}")})).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut query = "limit=3".to_owned();
    let mut more = Vec::new();
    loop {
        let page = sync(&app, &t, &query).await;
        seen.extend(ids(&page["changes"]).into_iter().map(|(_, id)| id));
        more.push(page["has_more"].as_bool().unwrap());
        if page["has_more"] == false {
            break;
        }
        query = format!("limit=3&since={}", page["next_since"].as_str().unwrap());
    }
    assert_eq!(seen, written);
    assert_eq!(more, [true, true, false]);
    for bad in ["limit=0", "limit=1001", "limit=abc", "limit=-1"] {
        let response = app
            .req(Method::GET, &format!("/api/v1/changes?{bad}"), Some(&t))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["errors"][0]["field"], "limit", "{bad}");
    }
    assert_eq!(
        sync(&app, &t, "limit=1000").await["changes"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

async fn edited_foreign_and_garbage_tokens_are_400(app: TestApp) {
    let t = token("alice");
    app.new_task(&t, json!({"title": "x"})).await;
    let since = sync(&app, &t, "").await["next_since"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = B64.decode(&since).unwrap();
    bytes[10] ^= 1;
    let edited = B64.encode(&bytes);
    let bob = token("bob");
    for (who, token_text) in [
        (&t, edited.as_str()),
        (&bob, since.as_str()),
        (&t, "garbage"),
        (&t, ""),
    ] {
        let response = app
            .req(
                Method::GET,
                &format!("/api/v1/changes?since={token_text}"),
                Some(who),
            )
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["errors"][0]["field"], "since");
        assert!(
            !problem.to_string().contains(&since),
            "the token is not echoed"
        );
    }
}

async fn a_token_from_before_delete_me_or_too_old_is_410(app: TestApp) {
    let t = token("alice");
    app.new_task(&t, json!({"title": "x"})).await;
    let since = sync(&app, &t, "").await["next_since"]
        .as_str()
        .unwrap()
        .to_owned();
    // A token as the server would have issued it 31 days ago.
    let key = SyncKey::derive(SECRET.as_bytes());
    let current = key.decode("alice", &since).unwrap();
    let old = key.encode(
        "alice",
        SyncToken {
            issued: now_secs() - 31 * 86_400,
            ..current
        },
    );
    let response = app
        .req(
            Method::GET,
            &format!("/api/v1/changes?since={old}"),
            Some(&t),
        )
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::GONE).await;
    let fresh = key.encode(
        "alice",
        SyncToken {
            issued: now_secs() - 29 * 86_400,
            ..current
        },
    );
    sync(&app, &t, &format!("since={fresh}")).await;

    let deleted = app
        .req(Method::DELETE, "/api/v1/me", Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let response = app
        .req(
            Method::GET,
            &format!("/api/v1/changes?since={since}"),
            Some(&t),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, StatusCode::GONE).await;
    assert!(problem["detail"].as_str().unwrap().contains("sync again"));
    // The fresh user syncs in full: nothing.
    assert_eq!(sync(&app, &t, "").await["changes"], json!([]));
}

/// Many concurrent writers of one user, through two instances sharing the
/// database (on SQLite two stores on one file), while a client follows the
/// feed: afterwards the replica it built equals the listing field by field.
/// On PostgreSQL the writes of one user serialise on the user's counter,
/// so two writes that commit in the other order than they started cannot
/// hide one from a client that read in between.
async fn a_replica_built_from_the_feed_equals_the_listing(app: TestApp) {
    let other = app.another_instance(&[]).await;
    let t = token("alice");
    let mut replica = BTreeMap::new();
    let mut since = catch_up(&app, &t, None, &mut replica).await;
    let writers = (0..8).map(|w| {
        let (app, other, t) = (&app, &other, &t);
        async move {
            let mut mine: Vec<i64> = Vec::new();
            for step in 0..25u32 {
                let via = if (w + step) % 2 == 0 { app } else { other };
                let pick = (step as usize * 7 + w as usize) % mine.len().max(1);
                match (step + w) % 5 {
                    0 | 1 if !mine.is_empty() => {
                        let id = mine[pick];
                        via.patch_task(
                            t,
                            id,
                            json!({"title": format!("w{w} s{step}"), "tags": [format!("s{step}")]}),
                        )
                        .await;
                    }
                    2 if !mine.is_empty() => {
                        via.toggle_task(t, mine[pick]).await;
                    }
                    3 if mine.len() > 2 => {
                        let id = mine.swap_remove(pick);
                        let response = via
                            .req(Method::DELETE, &format!("/api/v1/tasks/{id}"), Some(t))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), StatusCode::NO_CONTENT);
                    }
                    _ => {
                        let task = via
                            .new_task(t, json!({"title": format!("w{w} new {step}")}))
                            .await;
                        mine.push(task["id"].as_i64().unwrap());
                    }
                }
            }
        }
    });
    let follower = async {
        for _ in 0..40 {
            since = catch_up(&app, &t, Some(&since), &mut replica).await;
        }
    };
    let ((), _) = futures::join!(follower, join_all(writers));
    catch_up(&other, &t, Some(&since), &mut replica).await;
    let listed = listing(&app, &t).await;
    assert!(listed.len() > 10, "the writers left tasks behind");
    assert_eq!(replica, listed);
}

/// Tombstones past the retention go in batches of the size asked, oldest
/// first, and only those.
async fn tombstones_are_purged_in_small_batches(app: TestApp) {
    let t = token("alice");
    for i in 0..3 {
        let id = app.new_task(&t, json!({"title": format!("t{i}")})).await["id"]
            .as_i64()
            .unwrap();
        let response = app
            .req(Method::DELETE, &format!("/api/v1/tasks/{id}"), Some(&t))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let by = tasks_api::db::Deadline::after(std::time::Duration::from_secs(10));
    let past = tasks_api::domain::time::now() - chrono::Duration::days(1);
    assert_eq!(app.store.purge_tombstones(past, 2, by).await.unwrap(), 0);
    let future = tasks_api::domain::time::now() + chrono::Duration::seconds(1);
    assert_eq!(app.store.purge_tombstones(future, 2, by).await.unwrap(), 2);
    assert_eq!(app.store.purge_tombstones(future, 2, by).await.unwrap(), 1);
    assert_eq!(app.store.purge_tombstones(future, 2, by).await.unwrap(), 0);
}

crate::both_backends!(
    tombstones_are_purged_in_small_batches,
    a_full_sync_sends_every_task_then_nothing_new,
    an_incremental_sync_has_each_task_once_in_its_latest_state,
    every_write_path_appears_in_the_feed,
    pages_follow_each_other_without_repeats,
    edited_foreign_and_garbage_tokens_are_400,
    a_token_from_before_delete_me_or_too_old_is_410,
    a_replica_built_from_the_feed_equals_the_listing,
);
