//! Faults on the production database path: connections killed under load,
//! writes held up by a lock. Nothing acknowledged is lost, nothing answers
//! 500, nothing hangs.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, admin_client, assert_problem, pg_backends, token, wait_until,
};

/// What the load saw.
#[derive(Default, Debug)]
struct Tally {
    sent: usize,
    acknowledged: usize,
    unavailable: usize,
    other: Vec<StatusCode>,
    max_latency: Duration,
}

/// Creates and renames tasks for `duration`, recording the last
/// acknowledged title of each task.
async fn load(app: &TestApp, user: &str, duration: Duration) -> (Tally, HashMap<i64, String>) {
    let t = token(user);
    let mut tally = Tally::default();
    let mut titles: HashMap<i64, String> = HashMap::new();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < duration {
        n += 1;
        let title = format!("{user} #{n}");
        let request_started = Instant::now();
        let response = if n % 2 == 1 || titles.is_empty() {
            app.req(Method::POST, "/api/v1/tasks", Some(&t))
                .json(&json!({"title": title}))
                .send()
                .await
        } else {
            let id = *titles.keys().nth(n % titles.len()).unwrap();
            app.req(Method::PATCH, &format!("/api/v1/tasks/{id}"), Some(&t))
                .json(&json!({"title": title}))
                .send()
                .await
        };
        tally.max_latency = tally.max_latency.max(request_started.elapsed());
        tally.sent += 1;
        let response = response.expect("the server always answers");
        match response.status() {
            StatusCode::CREATED | StatusCode::OK => {
                tally.acknowledged += 1;
                let task: Value = response.json().await.unwrap();
                titles.insert(
                    task["id"].as_i64().unwrap(),
                    task["title"].as_str().unwrap().to_owned(),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                tally.unavailable += 1;
            }
            other => tally.other.push(other),
        }
    }
    (tally, titles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_lose_no_acknowledged_write() {
    let Some(app) =
        TestApp::with_env(Backend::Postgres, &[("DB_ACQUIRE_TIMEOUT_MS", "2000")]).await
    else {
        return;
    };
    let (base, schema) = app
        .pg_schema()
        .map(|(b, s)| (b.to_owned(), s.to_owned()))
        .unwrap();
    let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut kills = 0u64;
            while !stop.load(Ordering::SeqCst) {
                // The fault's pace, an input of the test: not a wait.
                tokio::time::sleep(Duration::from_millis(250)).await;
                let rows = admin
                    .query(
                        "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
                        &[&schema],
                    )
                    .await
                    .unwrap();
                kills += rows.len() as u64;
            }
            kills
        })
    };
    let duration = Duration::from_secs(3);
    let (a, b, c) = tokio::join!(
        load(&app, "fa", duration),
        load(&app, "fb", duration),
        load(&app, "fc", duration)
    );
    stop.store(true, Ordering::SeqCst);
    let kills = killer.await.unwrap();
    let mut verified = 0;
    let mut totals = Tally::default();
    for (user, (tally, titles)) in [("fa", a), ("fb", b), ("fc", c)] {
        assert!(
            tally.other.is_empty(),
            "unexpected statuses: {:?}",
            tally.other
        );
        assert!(
            tally.max_latency < Duration::from_secs(5),
            "a request hung: {:?}",
            tally.max_latency
        );
        let t = token(user);
        for (id, title) in &titles {
            let task: Value = app.get_task(&t, *id).await.json().await.unwrap();
            assert_eq!(
                task["title"].as_str(),
                Some(title.as_str()),
                "task {id} lost its last acknowledged title"
            );
            verified += 1;
        }
        totals.sent += tally.sent;
        totals.acknowledged += tally.acknowledged;
        totals.unavailable += tally.unavailable;
        totals.max_latency = totals.max_latency.max(tally.max_latency);
    }
    eprintln!(
        "fault figures: backends killed={kills} sent={} acknowledged={} unavailable(503)={} verified tasks={verified} max latency={:?}",
        totals.sent, totals.acknowledged, totals.unavailable, totals.max_latency
    );
    assert!(kills > 0, "the killer must have killed something");
    assert!(totals.acknowledged > 0);
}

/// SIGTERM under load: the server stops accepting, answers what it
/// accepted, exits 0, and every acknowledged create is in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_cleanly_and_keeps_acknowledged_writes() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tasks.db", dir.path().display());
    let (mut child, base) = crate::helpers::spawn_binary(
        dir.path(),
        &[
            ("DATABASE_URL", &url),
            ("RATE_LIMIT_PER_SECOND", "0"),
            ("RUST_LOG", "warn"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let t = token("shutdown-user");
    let acked = Arc::new(AtomicUsize::new(0));
    let workers = (0..4).map(|w| {
        let (client, base, t, acked) = (client.clone(), base.clone(), t.clone(), acked.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut refused = 0;
            for n in 0.. {
                let sent = client
                    .post(format!("{base}/api/v1/tasks"))
                    .bearer_auth(&t)
                    .json(&json!({"title": format!("w{w} n{n}")}))
                    .send()
                    .await;
                match sent {
                    Ok(response) => {
                        assert_eq!(response.status(), StatusCode::CREATED);
                        let task: Value = response.json().await.unwrap();
                        acknowledged.push((
                            task["id"].as_i64().unwrap(),
                            task["title"].as_str().unwrap().to_owned(),
                        ));
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        refused += 1;
                        if refused > 3 {
                            break;
                        }
                        // A pause between retries (the server may be gone
                        // for good), not a wait for a condition.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            acknowledged
        })
    });
    let workers: Vec<_> = workers.collect();
    // The signal comes while creates flow: once every worker could have had
    // several acknowledged.
    wait_until(
        Duration::from_secs(20),
        "40 creates are acknowledged",
        || async { acked.load(Ordering::SeqCst) >= 40 },
    )
    .await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");
    let mut acknowledged = Vec::new();
    for w in workers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(!acknowledged.is_empty());
    let app = TestApp::start(Backend::Sqlite, &url, &[]).await;
    for (id, title) in &acknowledged {
        let task: Value = app.get_task(&t, *id).await.json().await.unwrap();
        assert_eq!(task["title"].as_str(), Some(title.as_str()));
    }
    eprintln!(
        "shutdown figures: {} creates acknowledged before SIGTERM, all present",
        acknowledged.len()
    );
}

/// Two server instances on one database, clients alternating between them:
/// optimistic concurrency holds across instances (the version check is in
/// the database's UPDATE, not in process memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_conflicts_are_detected_across_instances() {
    let Some(first) = TestApp::new(Backend::Postgres).await else {
        return;
    };
    let second = TestApp::start(Backend::Postgres, &first.database_url, &[]).await;
    let t = token("two-instances");
    let id = first.new_task(&t, json!({"title": "shared"})).await["id"]
        .as_i64()
        .unwrap();
    // Both read version 1, one through each instance.
    let seen_a: Value = first.get_task(&t, id).await.json().await.unwrap();
    let seen_b: Value = second.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(seen_a["version"], 1);
    assert_eq!(seen_b["version"], 1);
    let write = |app: &TestApp, title: &str, version: i64| {
        app.req(Method::PATCH, &format!("/api/v1/tasks/{id}"), Some(&t))
            .header("if-match", format!("\"{version}\""))
            .json(&json!({"title": title}))
            .send()
    };
    let a = write(&first, "from a", 1).await.unwrap();
    assert_eq!(a.status(), StatusCode::OK);
    let b = write(&second, "from b", 1).await.unwrap();
    assert_eq!(
        b.status(),
        StatusCode::PRECONDITION_FAILED,
        "a stale write through the other instance"
    );
    // Alternating writers, each with the version it last saw.
    let mut version = 2;
    for round in 0..10 {
        let app = if round % 2 == 0 { &second } else { &first };
        let response = write(app, &format!("round {round}"), version)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        version += 1;
        let stale = write(
            if round % 2 == 0 { &first } else { &second },
            "stale",
            version - 1,
        )
        .await
        .unwrap();
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    }
    let task: Value = first.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(task["version"], version);
    assert_eq!(task["title"], "round 9");
    drop(second);
}

/// Creates blocked by a table lock past their statement deadline: each
/// answers 503 promptly (its insert cancelled and the cancel awaited), and
/// once the lock is gone none of them turns out to have been stored;
/// creates work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_stuck_on_a_lock_answers_503_and_stores_nothing() {
    let Some(app) = TestApp::with_env(Backend::Postgres, &[("REQUEST_TIMEOUT_MS", "1500")]).await
    else {
        return;
    };
    let users = ["stuck-a", "stuck-b"];
    for user in users {
        app.new_task(&token(user), json!({"title": "before"})).await;
    }
    let (base, schema) = app.pg_schema().unwrap();
    let locker = admin_client(base).await;
    locker
        .batch_execute(&format!("begin; lock table {schema}.tasks in share mode"))
        .await
        .unwrap();
    let started = Instant::now();
    let creates = futures::future::join_all((0..4).map(|i| {
        let (app, user) = (&app, users[i % users.len()]);
        async move {
            app.create_task(&token(user), json!({"title": format!("stuck #{i}")}))
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
    // Any insert wrongly left running would now commit: wait until none of
    // the server's connections is inside a statement or transaction.
    let admin = admin_client(base).await;
    wait_until(
        Duration::from_secs(10),
        "no connection of the server runs a statement",
        || async { pg_backends(&admin, schema, "state <> 'idle'").await == 0 },
    )
    .await;
    for user in users {
        let page = app.list_tasks(&token(user), "limit=100").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
        assert_eq!(page["items"][0]["title"], "before");
    }
    let after = app
        .create_task(&token(users[0]), json!({"title": "after"}))
        .await;
    assert_eq!(after.status(), StatusCode::CREATED);
}
