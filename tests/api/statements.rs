//! How statements reach PostgreSQL (`DB_PREPARED_STATEMENTS`): prepared once
//! per connection on a direct URL, unnamed when turned off, and a prepared
//! statement the server can no longer use is recovered from, not a 500.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, token, wait_until};

/// `db_statements_total{mode=…}` from `/metrics`.
pub(crate) async fn statements(app: &TestApp, mode: &str) -> u64 {
    let series = format!("db_statements_total{{mode=\"{mode}\"}}");
    let value = app.metric(&series).await;
    value.unwrap_or_else(|| panic!("no {series} in /metrics")) as u64
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

/// Sessions of this app's PostgreSQL schema (`application_name`).
async fn sessions(app: &TestApp) -> i64 {
    let (base, schema) = app.pg_schema().unwrap();
    crate::helpers::admin_client(base)
        .await
        .query_one(
            "select count(*) from pg_stat_activity where application_name = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0)
}

/// `count` users named after `prefix`, each with one task titled
/// "<user>'s task": the users and their task ids.
async fn one_task_each(app: &TestApp, prefix: &str, count: usize) -> (Vec<String>, Vec<i64>) {
    let users: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let mut ids = Vec::new();
    for user in &users {
        let task = app
            .new_task(&token(user), json!({"title": format!("{user}'s task")}))
            .await;
        ids.push(task["id"].as_i64().unwrap());
    }
    (users, ids)
}

/// Concurrent reads for many users, each expecting its own task (or a 404
/// for another user's), all at once.
async fn concurrent_reads(app: &TestApp, users: &[String], ids: &[i64], count: usize) {
    let reads = futures::future::join_all((0..count).map(|i| {
        let (user, id) = (&users[i % users.len()], ids[i % ids.len()]);
        // Every fifth read asks for the next user's task instead.
        let (asked, owner) = if i % 5 == 4 {
            (ids[(i + 1) % ids.len()], &users[(i + 1) % users.len()])
        } else {
            (id, user)
        };
        async move { (user, owner, app.get_task(&token(user), asked).await) }
    }))
    .await;
    for (user, owner, response) in reads {
        if user == owner {
            assert_eq!(response.status(), StatusCode::OK);
            let task: serde_json::Value = response.json().await.unwrap();
            assert_eq!(task["user_id"], user.as_str());
            assert_eq!(task["title"], format!("{user}'s task"));
        } else {
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        }
    }
}

/// Reads share `DB_SHARED_READ_CONNECTIONS` connections, pipelined: a burst
/// of concurrent reads opens no further session, every read still gets its
/// own user's row, and when the shared connection dies the reads move to a
/// new one without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_a_connection_and_survive_its_loss() {
    let Some(app) = TestApp::with_env(
        Backend::Postgres,
        &[("DB_POOL_SIZE", "6"), ("DB_SHARED_READ_CONNECTIONS", "1")],
    )
    .await
    else {
        return;
    };
    let (users, ids) = one_task_each(&app, "lane", 8).await;
    // The creates' connection(s); the reads then add the shared one only.
    let before = sessions(&app).await;
    concurrent_reads(&app, &users, &ids, 240).await;
    let after = sessions(&app).await;
    assert!(
        after <= before + 1,
        "the concurrent reads opened {} sessions",
        after - before
    );

    // Killed while a burst of reads is queued on it: they move to a new
    // shared connection and still get their own rows.
    let (base, schema) = app.pg_schema().unwrap();
    let admin = crate::helpers::admin_client(base).await;
    let kill = async {
        // Not a wait for a condition: lets the burst start first, so the
        // kill lands among its reads (it kills the connection either way).
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        admin
            .query(
                "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
                &[&schema],
            )
            .await
            .unwrap()
            .len()
    };
    let ((), killed) = tokio::join!(concurrent_reads(&app, &users, &ids, 400), kill);
    assert!(killed >= 1);
    concurrent_reads(&app, &users, &ids, 80).await;
    // Killed backends leave pg_stat_activity as they exit.
    wait_until(
        std::time::Duration::from_secs(10),
        "one new shared connection is left",
        || async { sessions(&app).await == 1 },
    )
    .await;
}

/// A TCP proxy in front of PostgreSQL whose connections can be frozen:
/// bytes stop flowing both ways while the sockets stay open, as on a link
/// that died without a reset.
struct FreezingProxy {
    port: u16,
    /// Connections numbered below this are frozen.
    frozen_below: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    /// Reads held back by frozen connections: something was sent into one.
    swallowed: Arc<AtomicUsize>,
}

impl FreezingProxy {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen_below, opened) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (frozen, count) = (frozen_below.clone(), opened.clone());
        let swallowed = Arc::new(AtomicUsize::new(0));
        let held = swallowed.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let id = count.fetch_add(1, Ordering::SeqCst);
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                let frozen = (frozen.clone(), held.clone());
                tokio::spawn(pump(in_read, out_write, id, frozen.clone()));
                tokio::spawn(pump(out_read, in_write, id, frozen));
            }
        });
        Self {
            port,
            frozen_below,
            opened,
            swallowed,
        }
    }

    /// Freezes every connection opened so far.
    fn freeze(&self) {
        self.frozen_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    id: usize,
    (frozen_below, swallowed): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if id < frozen_below.load(Ordering::SeqCst) {
            swallowed.fetch_add(1, Ordering::SeqCst);
            // Keep both sockets open and silent for good.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One read per user, all at once: their statuses, each within a bound.
async fn one_read_each(app: &TestApp, users: &[String], ids: &[i64]) -> Vec<StatusCode> {
    let started = std::time::Instant::now();
    let statuses = futures::future::join_all(
        ids.iter()
            .zip(users)
            .map(|(id, user)| async move { app.get_task(&token(user), *id).await.status() }),
    )
    .await;
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(3),
        "a read hung: {waited:?}"
    );
    statuses
}

/// A PostgreSQL app whose database connections all pass through a
/// [`FreezingProxy`]; `None` when PostgreSQL is skipped.
async fn behind_freezing_proxy(extra: &[(&str, &str)]) -> Option<(TestApp, FreezingProxy)> {
    let direct = crate::helpers::postgres_url()?;
    let target: tokio_postgres::Config = direct.parse().unwrap();
    let host = match &target.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".to_owned(),
    };
    let port = target.get_ports().first().copied().unwrap_or(5432);
    let proxy = FreezingProxy::start(format!("{host}:{port}")).await;
    let hostport = format!("{host}:{port}");
    let proxied = format!("127.0.0.1:{}", proxy.port);
    let route = move |url: &str| url.replacen(&hostport, &proxied, 1);
    let app = TestApp::with_env_through(Backend::Postgres, extra, &route).await?;
    Some((app, proxy))
}

/// The shared read connection goes silent (a dead link, no reset): the
/// reads on it answer 503 at their deadline instead of hanging, and the
/// next reads run on a new connection and get their own rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_shared_connection_is_replaced_after_the_reads_on_it_time_out() {
    let Some((app, proxy)) = behind_freezing_proxy(&[
        ("DB_POOL_SIZE", "4"),
        ("DB_SHARED_READ_CONNECTIONS", "1"),
        ("REQUEST_TIMEOUT_MS", "1000"),
    ])
    .await
    else {
        return;
    };
    let (users, ids) = one_task_each(&app, "silent", 3).await;
    concurrent_reads(&app, &users, &ids, 30).await;

    proxy.freeze();
    // Reads on the frozen connection answer 503 at their deadline; a read
    // that arrives after one of them gave up may already reach a new one.
    let stuck = one_read_each(&app, &users, &ids).await;
    assert!(
        stuck
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE || *s == StatusCode::OK),
        "{stuck:?}"
    );
    assert!(
        stuck.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "{stuck:?}"
    );
    // The frozen connection is not used again. The pool may still hold
    // other frozen (idle) ones, each found out the same way, so a few
    // bursts may pass before the reads reach a new connection.
    let mut recovered = false;
    for _ in 0..4 {
        let statuses = one_read_each(&app, &users, &ids).await;
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::SERVICE_UNAVAILABLE),
            "{statuses:?}"
        );
        if statuses.iter().all(|s| *s == StatusCode::OK) {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "reads still fail on the frozen connection");
    concurrent_reads(&app, &users, &ids, 60).await;
}

/// The connection a create runs on goes silent (a dead link, no reset):
/// the create answers 503 at its time limit instead of hanging, the
/// connection is given up on rather than returned to the pool, and the
/// next creates reach new connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_write_connection_does_not_stop_creates() {
    const POOL: usize = 4;
    let Some((app, proxy)) = behind_freezing_proxy(&[
        ("DB_POOL_SIZE", &POOL.to_string()),
        ("REQUEST_TIMEOUT_MS", "1500"),
    ])
    .await
    else {
        return;
    };
    let (users, ids) = one_task_each(&app, "mute", 4).await;
    // Concurrent toggles open further write connections, which sit idle in
    // the pool when the freeze comes.
    let toggles = futures::future::join_all(users.iter().zip(&ids).map(|(user, id)| {
        let (app, t) = (&app, token(user));
        async move { app.toggle_task(&t, *id).await.status() }
    }))
    .await;
    assert!(toggles.iter().all(|s| *s == StatusCode::OK), "{toggles:?}");

    proxy.freeze();
    let t = token(&users[0]);
    let create = |title: &'static str| {
        let (app, t) = (&app, &t);
        async move {
            let started = std::time::Instant::now();
            let status = app.create_task(t, json!({"title": title})).await.status();
            let waited = started.elapsed();
            assert!(
                waited < std::time::Duration::from_secs(5),
                "a create hung: {waited:?}"
            );
            status
        }
    };
    // An idle pooled connection, frozen: the insert goes into the void.
    assert_eq!(
        create("into the void").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(proxy.swallowed.load(Ordering::SeqCst) > 0);
    // Each frozen connection left in the pool is found out the same way,
    // once (a connection given up on never returns to the pool); then
    // creates reach new connections.
    let mut statuses = Vec::new();
    for _ in 0..POOL {
        let status = create("after the freeze").await;
        statuses.push(status);
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::CREATED),
        "creates never recovered from the frozen connections: {statuses:?}"
    );
}
