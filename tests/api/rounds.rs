//! PostgreSQL serves concurrent creates and gets in shared rounds (one
//! multi-row insert, one select of many (id, user) pairs): every create
//! still gets its own row, for its own user, exactly once; a refused insert
//! sends its round's creates through alone; a round stuck on a lock answers
//! 503 and stores nothing; every get sees its own task and never another
//! user's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, admin_client, assert_problem, pg_backends, token, wait_until,
};
use crate::statements::statements;

/// Users `prefix-0..count`, each with one task created alone.
async fn users_with_a_task(app: &TestApp, prefix: &str, count: usize) -> Vec<String> {
    let users: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    for user in &users {
        app.new_task(&token(user), json!({"title": format!("{user} first")}))
            .await;
    }
    users
}

/// `per_user` concurrent creates for every user, titled "<user> #<k>";
/// each answer checked against its request. Returns the statuses.
async fn create_burst(app: &TestApp, users: &[String], per_user: usize) -> Vec<StatusCode> {
    let creates = (0..per_user).flat_map(|k| users.iter().map(move |user| (user, k)));
    let answers = join_all(creates.map(|(user, k)| async move {
        let title = format!("{user} #{k}");
        let response = app
            .create_task(&token(user), json!({"title": title, "tags": [user]}))
            .await;
        (user, title, response)
    }))
    .await;
    let mut statuses = Vec::new();
    for (user, title, response) in answers {
        let status = response.status();
        if status == StatusCode::CREATED {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            let task: Value = response.json().await.unwrap();
            assert_eq!(task["user_id"], user.as_str());
            assert_eq!(task["title"], title.as_str());
            assert_eq!(task["tags"], json!([user]));
            assert!(location.ends_with(&format!("/{}", task["id"])));
        }
        statuses.push(status);
    }
    statuses
}

/// Every title of the user's tasks, with how often it is stored.
async fn titles(app: &TestApp, user: &str) -> BTreeMap<String, usize> {
    let page = app.list_tasks(&token(user), "limit=100").await;
    let mut seen = BTreeMap::new();
    for task in page["items"].as_array().unwrap() {
        assert_eq!(task["user_id"], user);
        *seen
            .entry(task["title"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    seen
}

fn expected(user: &str, first: bool, per_user: usize) -> BTreeMap<String, usize> {
    let mut titles: BTreeMap<String, usize> =
        (0..per_user).map(|k| (format!("{user} #{k}"), 1)).collect();
    if first {
        titles.insert(format!("{user} first"), 1);
    }
    titles
}

/// 80 creates at once for 8 users: each answered with its own row, each
/// stored once, and several committed in one transaction (rows written by
/// one transaction share its `xmin`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_share_transactions_and_each_gets_its_own_row() {
    let Some(app) = TestApp::new(Backend::Postgres).await else {
        return;
    };
    let users = users_with_a_task(&app, "round", 8).await;
    let statuses = create_burst(&app, &users, 10).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    for user in &users {
        assert_eq!(titles(&app, user).await, expected(user, true, 10));
    }
    let (base, schema) = app.pg_schema().unwrap();
    let row = admin_client(base)
        .await
        .query_one(
            &format!(
                "select count(*), count(distinct xmin::text) from {schema}.tasks where title like '% #%'"
            ),
            &[],
        )
        .await
        .unwrap();
    let (rows, transactions): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, 80);
    assert!(
        transactions < 60,
        "80 concurrent creates took {transactions} transactions"
    );
}

/// A user row deleted behind the server's back makes that user's inserts
/// fail inside the round they share with others: the round stores nothing,
/// every create in it goes again alone, the user is re-created, and nothing
/// is stored twice or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_insert_sends_its_round_alone_and_nothing_is_stored_twice() {
    let Some(app) = TestApp::new(Backend::Postgres).await else {
        return;
    };
    let users = users_with_a_task(&app, "refused", 8).await;
    let (base, schema) = app.pg_schema().unwrap();
    let admin = admin_client(base).await;
    // Cascades to the user's first task; the server still knows the user.
    admin
        .execute(
            &format!("delete from {schema}.users where id = $1"),
            &[&users[0]],
        )
        .await
        .unwrap();
    // A lock holds up the first round (another user's single create) while
    // the burst queues behind it, so the next round takes them together.
    let locker = admin_client(base).await;
    locker
        .batch_execute(&format!("begin; lock table {schema}.tasks in share mode"))
        .await
        .unwrap();
    let app = &app;
    let blocked = async {
        let response = app
            .create_task(&token(&users[1]), json!({"title": "held up"}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    };
    let held = || async {
        wait_until(
            Duration::from_secs(10),
            "the first round waits on the lock",
            || async { pg_backends(&admin, schema, "wait_event_type = 'Lock'").await > 0 },
        )
        .await
    };
    let burst = async {
        held().await;
        create_burst(app, &users, 6).await
    };
    let release = async {
        held().await;
        // Not a wait for a condition: the window in which the burst
        // arrives behind the held round (nothing outside the server shows
        // it queued). The assertions hold however the burst splits into
        // rounds; the window makes it share rounds with the refused user.
        tokio::time::sleep(Duration::from_millis(400)).await;
        locker.batch_execute("rollback").await.unwrap();
    };
    let ((), statuses, ()) = tokio::join!(blocked, burst, release);
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    assert_eq!(titles(app, &users[0]).await, expected(&users[0], false, 6));
    let mut second = expected(&users[1], true, 6);
    second.insert("held up".to_owned(), 1);
    assert_eq!(titles(app, &users[1]).await, second);
    for user in &users[2..] {
        assert_eq!(titles(app, user).await, expected(user, true, 6));
    }
}

/// Inserts blocked by a table lock past the statement deadline: every
/// create answers 503 promptly, and once the lock is gone none of them
/// turns out to have been stored; creates work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_stuck_on_a_lock_answers_503_and_stores_nothing() {
    let Some(app) = TestApp::with_env(Backend::Postgres, &[("REQUEST_TIMEOUT_MS", "1500")]).await
    else {
        return;
    };
    let users = users_with_a_task(&app, "stuck", 4).await;
    let (base, schema) = app.pg_schema().unwrap();
    let locker = admin_client(base).await;
    locker
        .batch_execute(&format!("begin; lock table {schema}.tasks in share mode"))
        .await
        .unwrap();
    let started = Instant::now();
    let app = &app;
    let creates = join_all((0..12).map(|i| {
        let user = &users[i % users.len()];
        async move {
            app.create_task(&token(user), json!({"title": format!("{user} #{i}")}))
                .await
        }
    }))
    .await;
    let elapsed = started.elapsed();
    for response in creates {
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    }
    assert!(
        elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    locker.batch_execute("rollback").await.unwrap();
    // Any create wrongly left running would now commit: wait until none of
    // the server's connections is inside a statement or transaction.
    let admin = admin_client(base).await;
    wait_until(
        Duration::from_secs(10),
        "no connection of the server runs a statement",
        || async { pg_backends(&admin, schema, "state <> 'idle'").await == 0 },
    )
    .await;
    for user in &users {
        assert_eq!(titles(app, user).await, expected(user, true, 0));
    }
    let statuses = create_burst(app, &users, 3).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
}

/// `db_statements_total`, both modes, from `/metrics`.
async fn statements_run(app: &TestApp) -> u64 {
    statements(app, "prepared").await + statements(app, "unnamed").await
}

/// 240 gets at once for 8 users, every fifth asking for another user's
/// task or an id that does not exist: each sees its own task, the others
/// 404, and the gets took far fewer statements than requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_share_statements_and_see_only_their_own_tasks() {
    let Some(app) = TestApp::new(Backend::Postgres).await else {
        return;
    };
    let users = users_with_a_task(&app, "getter", 8).await;
    let mut ids = Vec::new();
    for user in &users {
        let page = app.list_tasks(&token(user), "").await;
        ids.push(page["items"][0]["id"].as_i64().unwrap());
    }
    let before = statements_run(&app).await;
    let app = &app;
    let (users, ids) = (&users, &ids);
    let answers = join_all((0..240).map(|i| async move {
        let user = &users[i % users.len()];
        let (asked, expect) = match i % 10 {
            4 => (ids[(i + 1) % ids.len()], None),
            9 => (i64::MAX - i as i64, None),
            _ => (ids[i % ids.len()], Some(format!("{user} first"))),
        };
        (expect, app.get_task(&token(user), asked).await)
    }))
    .await;
    let statements = statements_run(app).await - before;
    for (expect, response) in answers {
        match expect {
            Some(title) => {
                assert_eq!(response.status(), StatusCode::OK);
                let task: Value = response.json().await.unwrap();
                assert_eq!(task["title"], title.as_str());
            }
            None => {
                assert_problem(response, StatusCode::NOT_FOUND).await;
            }
        }
    }
    // Each request's user is known, so a get is its select and nothing else.
    assert!(statements < 200, "240 gets ran {statements} statements");
}
