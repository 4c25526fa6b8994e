//! Listing: filters, every sort key both ways, limit/offset, and keyset
//! cursors that neither repeat nor skip rows while rows come and go.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, admin_client, assert_problem, token};

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

/// A varied set of tasks: titles, priorities, due dates (some null), tags.
async fn seed(app: &TestApp, t: &str, n: usize) -> Vec<Value> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let priority = ["low", "medium", "high"][i % 3];
        let due = if i % 4 == 0 {
            Value::Null
        } else {
            // Some equal due dates, to exercise ties.
            json!(format!("2026-12-{:02}T09:00:00Z", 1 + (i % 5)))
        };
        let title = ["banana", "Apple", "cherry", "apple", "Äpfel", "zebra"][i % 6];
        let tags = match i % 3 {
            0 => json!(["home"]),
            1 => json!(["work", "home"]),
            _ => json!([]),
        };
        let mut task = app
            .new_task(t, json!({"title": format!("{title} {i}"), "priority": priority, "due_date": due, "tags": tags}))
            .await;
        if i % 5 == 0 {
            task = app
                .toggle_task(t, task["id"].as_i64().unwrap())
                .await
                .json()
                .await
                .unwrap();
        }
        tasks.push(task);
    }
    tasks
}

/// Sort key for client-side checking, mirroring API.md.
fn key(task: &Value, sort: &str) -> (i64, String) {
    let field = sort.trim_start_matches('-');
    match field {
        "priority" => (
            match task["priority"].as_str().unwrap() {
                "low" => 1,
                "medium" => 2,
                _ => 3,
            },
            String::new(),
        ),
        "due_date" => match task["due_date"].as_str() {
            // Nulls after every date ascending.
            None => (1, String::new()),
            Some(d) => (0, sortable_ts(d)),
        },
        "created_at" | "updated_at" => (0, sortable_ts(task[field].as_str().unwrap())),
        _ => (0, task[field].as_str().unwrap().to_owned()),
    }
}

/// A timestamp as text that sorts in time order. The API's own spelling
/// does not: it drops a zero fraction and shortens a whole millisecond, so
/// `…:12Z` and `…:12.123Z` sort after `…:12.123456Z` as strings.
fn sortable_ts(ts: &str) -> String {
    let micros = chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_micros();
    format!("{micros:020}")
}

fn expected_order(tasks: &[Value], sort: &str) -> Vec<i64> {
    let mut sorted: Vec<&Value> = tasks.iter().collect();
    sorted.sort_by(|a, b| {
        key(a, sort)
            .cmp(&key(b, sort))
            .then(a["id"].as_i64().cmp(&b["id"].as_i64()))
    });
    if sort.starts_with('-') {
        sorted.reverse();
    }
    sorted.iter().map(|t| t["id"].as_i64().unwrap()).collect()
}

const SORTS: [&str; 10] = [
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "due_date",
    "-due_date",
    "priority",
    "-priority",
    "title",
    "-title",
];

async fn every_sort_key_orders_both_ways_with_id_ties(app: TestApp) {
    let t = token("alice");
    let tasks = seed(&app, &t, 24).await;
    for sort in SORTS {
        let page = app.list_tasks(&t, &format!("sort={sort}&limit=100")).await;
        assert_eq!(ids(&page), expected_order(&tasks, sort), "sort={sort}");
    }
    // Default: newest first.
    let page = app.list_tasks(&t, "limit=100").await;
    assert_eq!(ids(&page), expected_order(&tasks, "-created_at"));
}

async fn status_priority_tag_and_due_filters(app: TestApp) {
    let t = token("alice");
    let tasks = seed(&app, &t, 18).await;
    let check = |query: &'static str, pred: Box<dyn Fn(&Value) -> bool>| {
        let expected: Vec<i64> = {
            let filtered: Vec<Value> = tasks.iter().filter(|t| pred(t)).cloned().collect();
            expected_order(&filtered, "-created_at")
        };
        (query, expected)
    };
    let cases = vec![
        check("status=completed", Box::new(|t| t["completed"] == true)),
        check("status=pending", Box::new(|t| t["completed"] == false)),
        check("status=all", Box::new(|_| true)),
        check("priority=high", Box::new(|t| t["priority"] == "high")),
        check(
            "tag=home",
            Box::new(|t| t["tags"].as_array().unwrap().contains(&json!("home"))),
        ),
        check(
            "tag=home&tag=work",
            Box::new(|t| {
                let tags = t["tags"].as_array().unwrap();
                tags.contains(&json!("home")) && tags.contains(&json!("work"))
            }),
        ),
        check("tag=Home", Box::new(|_| false)),
        check(
            "due_before=2026-12-03T09:00:00Z",
            Box::new(|t| {
                t["due_date"]
                    .as_str()
                    .is_some_and(|d| d < "2026-12-03T09:00:00Z")
            }),
        ),
        check(
            "due_after=2026-12-03T09:00:00%2B00:00",
            Box::new(|t| {
                t["due_date"]
                    .as_str()
                    .is_some_and(|d| d > "2026-12-03T09:00:00Z")
            }),
        ),
        check(
            "status=pending&priority=medium&tag=home",
            Box::new(|t| {
                t["completed"] == false
                    && t["priority"] == "medium"
                    && t["tags"].as_array().unwrap().contains(&json!("home"))
            }),
        ),
    ];
    for (query, expected) in cases {
        let page = app.list_tasks(&t, &format!("{query}&limit=100")).await;
        assert_eq!(ids(&page), expected, "{query}");
    }
}

async fn q_is_a_case_insensitive_literal_substring(app: TestApp) {
    let t = token("alice");
    let a = app.new_task(&t, json!({"title": "Buy MILK"})).await["id"]
        .as_i64()
        .unwrap();
    let b = app
        .new_task(
            &t,
            json!({"title": "x", "description": "oat milk, 100% natural_ish"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let c = app.new_task(&t, json!({"title": "path C:\\temp"})).await["id"]
        .as_i64()
        .unwrap();
    let d = app.new_task(&t, json!({"title": "ÄPFEL kaufen"})).await["id"]
        .as_i64()
        .unwrap();
    app.new_task(&t, json!({"title": "unrelated 100 percent"}))
        .await;
    for (q, expected) in [
        ("milk", vec![b, a]),
        ("MiLk", vec![b, a]),
        ("100%25", vec![b]),
        ("mil_", vec![]),
        ("natural_", vec![b]),
        ("%25", vec![b]),
        ("_", vec![b]),
        ("%5C", vec![c]),
        ("äpfel", vec![d]),
    ] {
        let page = app.list_tasks(&t, &format!("q={q}")).await;
        assert_eq!(ids(&page), expected, "q={q}");
    }
    // Empty q is no filter.
    assert_eq!(ids(&app.list_tasks(&t, "q=").await).len(), 5);
}

async fn limit_and_offset(app: TestApp) {
    let t = token("alice");
    let tasks = seed(&app, &t, 7).await;
    let all = expected_order(&tasks, "-created_at");
    let page = app.list_tasks(&t, "limit=3").await;
    assert_eq!(ids(&page), all[..3]);
    assert!(page["next_cursor"].is_string());
    let page = app.list_tasks(&t, "limit=3&offset=3").await;
    assert_eq!(ids(&page), all[3..6]);
    // An offset page also returns a cursor that continues after it.
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let next = app
        .list_tasks(&t, &format!("limit=3&cursor={cursor}"))
        .await;
    assert_eq!(ids(&next), all[6..]);
    assert_eq!(next["next_cursor"], Value::Null);
    let page = app.list_tasks(&t, "offset=100").await;
    assert_eq!(page, json!({"items": [], "next_cursor": null}));
    assert_eq!(app.list_tasks(&t, "").await.as_object().unwrap().len(), 2);
    // Default limit is 20.
    seed(&app, &t, 15).await;
    assert_eq!(ids(&app.list_tasks(&t, "").await).len(), 20);
}

async fn bad_query_parameters_are_400_naming_the_parameter(app: TestApp) {
    let t = token("alice");
    for (query, field) in [
        ("status=done", "status"),
        ("priority=urgent", "priority"),
        ("sort=colour", "sort"),
        ("sort=created", "sort"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("due_before=2026-12-01", "due_before"),
        ("due_after=soon", "due_after"),
        ("cursor=garbage", "cursor"),
        ("cursor=a.b&offset=0", "cursor"),
    ] {
        let response = app
            .req(Method::GET, &format!("/api/v1/tasks?{query}"), Some(&t))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
    // Unknown parameters are ignored.
    app.list_tasks(&t, "colour=blue&page=3").await;
}

/// Walks every page with `limit`, inserting and deleting rows between
/// fetches, and returns the ids seen.
async fn walk(app: &TestApp, t: &str, query: &str, churn: bool) -> (Vec<i64>, Vec<i64>) {
    let mut seen = Vec::new();
    let mut deleted = Vec::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("{query}&limit=4&cursor={c}"),
            None => format!("{query}&limit=4"),
        };
        let page = app.list_tasks(t, &q).await;
        seen.extend(ids(&page));
        if churn {
            round += 1;
            // Insert rows (some sort before, some after the position) and
            // delete one row not yet seen.
            app.new_task(t, json!({"title": format!("AAA new {round}"), "priority": "low", "due_date": "2026-11-01T00:00:00Z"})).await;
            app.new_task(
                t,
                json!({"title": format!("zzz new {round}"), "priority": "high"}),
            )
            .await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        if churn && round == 2 {
            // Delete the newest seen row: must not disturb the walk.
            let victim = *seen.last().unwrap();
            app.req(Method::DELETE, &format!("/api/v1/tasks/{victim}"), Some(t))
                .send()
                .await
                .unwrap();
            deleted.push(victim);
        }
    }
    (seen, deleted)
}

/// Every task in `sort` order, fetched by offset (independent of cursors).
async fn all_by_offset(app: &TestApp, t: &str, sort: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let page = app
            .list_tasks(t, &format!("sort={sort}&limit=100&offset={}", all.len()))
            .await;
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return all;
        }
        all.extend(items);
    }
}

async fn cursor_pages_never_repeat_or_skip_under_churn(app: TestApp) {
    let t = token("alice");
    seed(&app, &t, 22).await;
    for sort in SORTS {
        let (seen, _) = walk(&app, &t, &format!("sort={sort}"), true).await;
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "sort={sort}: a row repeated");
        // Every row that existed for the whole walk was seen, in order.
        let tasks = all_by_offset(&app, &t, sort).await;
        let final_ids: Vec<i64> = tasks.iter().map(|t| t["id"].as_i64().unwrap()).collect();
        let seen_in_final: Vec<i64> = seen
            .iter()
            .copied()
            .filter(|id| final_ids.contains(id))
            .collect();
        let final_in_seen: Vec<i64> = final_ids
            .iter()
            .copied()
            .filter(|id| seen.contains(id))
            .collect();
        assert_eq!(seen_in_final, final_in_seen, "sort={sort}: order differs");
        // Rows present before the walk started and still present were all seen.
        let old: Vec<i64> = tasks
            .iter()
            .filter(|t| !t["title"].as_str().unwrap().contains(" new "))
            .map(|t| t["id"].as_i64().unwrap())
            .collect();
        for id in old {
            assert!(seen.contains(&id), "sort={sort}: skipped {id}");
        }
        // Without churn the walk equals the full list exactly.
        let (quiet, _) = walk(&app, &t, &format!("sort={sort}"), false).await;
        let full: Vec<i64> = all_by_offset(&app, &t, sort)
            .await
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect();
        assert_eq!(quiet, full, "sort={sort}");
    }
}

/// The cursor with one character of its payload changed.
fn tamper(cursor: &str) -> String {
    let mut chars: Vec<char> = cursor.chars().collect();
    chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn cursor_is_bound_to_sort_filters_and_user(app: TestApp) {
    let t = token("alice");
    seed(&app, &t, 10).await;
    let page = app.list_tasks(&t, "sort=title&tag=home&limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    // Same sort and filters, another limit: fine.
    app.list_tasks(&t, &format!("sort=title&tag=home&limit=3&cursor={cursor}"))
        .await;
    for query in [
        format!("sort=-title&tag=home&cursor={cursor}"),
        format!("sort=title&cursor={cursor}"),
        format!("sort=title&tag=home&status=pending&cursor={cursor}"),
        format!("sort=title&tag=home&cursor={}x", &cursor),
        format!("sort=title&tag=home&cursor={}", tamper(&cursor)),
    ] {
        let response = app
            .req(Method::GET, &format!("/api/v1/tasks?{query}"), Some(&t))
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    // Another user cannot use it.
    let response = app
        .req(
            Method::GET,
            &format!("/api/v1/tasks?sort=title&tag=home&cursor={cursor}"),
            Some(&token("bob")),
        )
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST).await;
}

/// A page is written straight from the database's rows (no task is built
/// per row), a single task from a decoded one: both must say the same of
/// every task, whatever its text, tags, nulls and timestamps, and at every
/// page size the page must be the head of the full list with a cursor
/// exactly when rows follow.
async fn listed_tasks_are_what_get_returns(app: TestApp) {
    let t = token("alice");
    let texts = [
        "plain",
        "quote \" and back\\slash",
        "tab\tnew\nline\r",
        "\u{1}\u{1f}\u{7f}",
        "ünïcödé ✓ 🦀",
        "exactly8",
    ];
    for (i, text) in texts.iter().enumerate() {
        let priority = ["low", "medium", "high"][i % 3];
        let mut body =
            json!({"title": format!("{text} {i}"), "tags": [text, "home"], "priority": priority});
        if i % 2 == 0 {
            body["description"] = json!(format!("{text} described"));
            let fraction = ["", ".5", ".123456"][i / 2 % 3];
            body["due_date"] = json!(format!("2026-12-0{}T09:00:00{fraction}Z", 1 + i));
        }
        let id = app.new_task(&t, body).await["id"].as_i64().unwrap();
        if i % 3 == 0 {
            app.toggle_task(&t, id).await;
        }
    }
    let all = app.list_tasks(&t, "limit=100").await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), texts.len());
    for item in items {
        let got: Value = app
            .get_task(&t, item["id"].as_i64().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(item, &got);
    }
    for limit in 1..=texts.len() + 1 {
        let page = app.list_tasks(&t, &format!("limit={limit}")).await;
        let n = limit.min(texts.len());
        assert_eq!(
            page["items"].as_array().unwrap()[..],
            items[..n],
            "limit={limit}"
        );
        assert_eq!(
            page["next_cursor"].is_string(),
            limit < texts.len(),
            "limit={limit}"
        );
    }
}

/// A stored row this server cannot read (an array with a null or a second
/// dimension, an infinite timestamp; only a hand-made update stores one) is refused with a
/// problem, whether it falls in the page or is only the row that tells
/// whether more follow; pages that do not reach it are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_corrupt_row_is_refused_in_the_page_and_as_the_look_ahead() {
    let Some(app) = TestApp::new(Backend::Postgres).await else {
        return;
    };
    let t = token("alice");
    let mut created = Vec::new();
    for i in 0..4 {
        created.push(
            app.new_task(&t, json!({"title": format!("task {i}")}))
                .await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    // Newest first: created[3], created[2], created[1], created[0].
    let (base, schema) = app.pg_schema().unwrap();
    let admin = admin_client(base).await;
    for corrupt in [
        "tags = '{NULL}'",
        "tags = '{{a},{b}}'",
        "due_date = 'infinity'",
        "updated_at = '-infinity'",
    ] {
        admin
            .execute(
                &format!("update {schema}.tasks set {corrupt} where id = $1"),
                &[&created[1]],
            )
            .await
            .unwrap();
        let page = app.list_tasks(&t, "limit=1").await;
        assert_eq!(ids(&page), [created[3]]);
        for limit in [2, 3, 4] {
            let response = app
                .req(
                    Method::GET,
                    &format!("/api/v1/tasks?limit={limit}"),
                    Some(&t),
                )
                .send()
                .await
                .unwrap();
            assert_problem(response, StatusCode::INTERNAL_SERVER_ERROR).await;
        }
        admin
            .execute(
                &format!(
                    "update {schema}.tasks set tags = '{{}}', due_date = null, updated_at = created_at where id = $1"
                ),
                &[&created[1]],
            )
            .await
            .unwrap();
        assert_eq!(
            ids(&app.list_tasks(&t, "limit=4").await),
            [created[3], created[2], created[1], created[0]]
        );
    }
}

/// No task holds more than 20 tags, so more than 20 distinct `tag` filters
/// is a 400 (SQLite answered ~1,000 of them with a 500: "Expression tree is
/// too large"); repeats of one tag count once.
async fn more_than_20_distinct_tag_filters_are_400(app: TestApp) {
    let t = token("alice");
    let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let task = app
        .new_task(&t, json!({"title": "a", "tags": twenty}))
        .await;
    let query = |n: usize, distinct: usize| {
        (0..n)
            .map(|i| format!("tag=t{}", i % distinct))
            .collect::<Vec<_>>()
            .join("&")
    };
    for path in ["/api/v1/tasks", "/api/alice/tasks"] {
        for (n, distinct) in [(1000, 1000), (21, 21)] {
            let response = app
                .req(
                    Method::GET,
                    &format!("{path}?{}", query(n, distinct)),
                    Some(&t),
                )
                .send()
                .await
                .unwrap();
            let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
            assert_eq!(problem["errors"][0]["field"], "tag", "{path} {n}");
        }
    }
    let page = app.list_tasks(&t, &query(20, 1)).await;
    assert_eq!(
        ids(&page),
        [task["id"].as_i64().unwrap()],
        "20 repeats of one tag"
    );
    let page = app.list_tasks(&t, &query(20, 20)).await;
    assert_eq!(
        ids(&page),
        [task["id"].as_i64().unwrap()],
        "20 distinct tags"
    );
}

crate::both_backends!(
    every_sort_key_orders_both_ways_with_id_ties,
    status_priority_tag_and_due_filters,
    q_is_a_case_insensitive_literal_substring,
    limit_and_offset,
    bad_query_parameters_are_400_naming_the_parameter,
    cursor_pages_never_repeat_or_skip_under_churn,
    cursor_is_bound_to_sort_filters_and_user,
    listed_tasks_are_what_get_returns,
    more_than_20_distinct_tag_filters_are_400,
);
