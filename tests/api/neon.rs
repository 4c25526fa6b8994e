//! The production database path: TLS with SCRAM channel binding, and
//! correctness through PgBouncer in transaction-pooling mode (as Neon's
//! `-pooler` endpoints). These need CI's PostgreSQL set-up
//! (`.ci/postgres-extras.sh`); without it they skip, unless
//! `REQUIRE_POSTGRES` is set.

use std::{process::Stdio, time::Duration};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, postgres_url, token, wait_until};

fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("REQUIRE_POSTGRES").is_err(),
                "REQUIRE_POSTGRES is set but {var} is not"
            );
            eprintln!("{var} is not set: skipping");
            None
        }
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn scram_channel_binding_over_tls_connects_and_is_used() {
    let (Some(base), Some(scram)) = (postgres_url(), required("TEST_SCRAM_DATABASE_URL")) else {
        return;
    };
    let schema = format!("cb_{}", uuid::Uuid::new_v4().simple());
    let admin = admin(&base).await;
    admin
        .batch_execute(&format!("create schema {schema} authorization tasks_scram"))
        .await
        .unwrap();
    let url = format!(
        "{scram}?sslmode=require&channel_binding=require&application_name={schema}&options=-c%20search_path%3D{schema}"
    );
    let mut app = TestApp::start(Backend::Postgres, &url, &[]).await;
    let t = token("tls-user");
    app.new_task(&t, json!({"title": "over TLS"})).await;
    assert_eq!(
        app.list_tasks(&t, "").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The server's view: every session of this app is TLS, authenticated as
    // the SCRAM role. (channel_binding=require means tokio-postgres either
    // completed SCRAM-SHA-256-PLUS or refused to connect.)
    let rows = admin
        .query(
            "select s.ssl, s.version, a.usename::text from pg_stat_ssl s join pg_stat_activity a using (pid) where a.application_name = $1",
            &[&schema],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        let (ssl, version, user): (bool, Option<String>, String) =
            (row.get(0), row.get(1), row.get(2));
        assert!(ssl, "session without TLS");
        assert_eq!(user, "tasks_scram");
        eprintln!("pg_stat_ssl: ssl={ssl} version={version:?} user={user}");
    }
    app.stop().await;
    drop(app);
    admin
        .batch_execute(&format!("drop schema {schema} cascade"))
        .await
        .unwrap();
}

#[tokio::test]
async fn channel_binding_without_tls_is_refused_with_a_sentence() {
    let Some(scram) = required("TEST_SCRAM_DATABASE_URL") else {
        return;
    };
    let vars = [
        (
            "DATABASE_URL".to_owned(),
            format!("{scram}?sslmode=disable&channel_binding=require"),
        ),
        (
            "BETTER_AUTH_SECRET".to_owned(),
            crate::helpers::SECRET.to_owned(),
        ),
        ("PORT".to_owned(), "0".to_owned()),
    ];
    let config = tasks_api::Config::from_lookup(
        &|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        false,
    )
    .unwrap();
    let err = tasks_api::Application::build(config)
        .await
        .err()
        .expect("must refuse");
    let message = format!("{err:#}");
    assert!(
        message.contains("channel_binding=require") && message.contains("sslmode=disable"),
        "{message}"
    );
    assert!(
        !message.contains("scram-test-password"),
        "no password in errors"
    );
}

/// PgBouncer 1.18 in transaction mode, started here on a loopback port.
struct Bouncer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Bouncer {
    fn start(bin: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(bin, port)
    }

    fn start_on(bin: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("pgbouncer.ini");
        let users = dir.path().join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {}\npool_mode = transaction\n\
                 default_pool_size = 4\nmax_client_conn = 500\nignore_startup_parameters = extra_float_digits,options\n\
                 logfile = {}\n",
                users.display(),
                dir.path().join("pgbouncer.log").display()
            ),
        )
        .unwrap();
        // PgBouncer refuses to run as root; -u drops to the postgres user.
        use std::os::unix::fs::PermissionsExt;
        for path in [dir.path().to_path_buf(), ini.clone(), users.clone()] {
            let mode = if path.is_dir() { 0o777 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let child = std::process::Command::new(bin)
            .arg("-u")
            .arg("postgres")
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_read_through_pgbouncer_transaction_mode_is_the_value_written() {
    let (Some(base), Some(bin)) = (postgres_url(), required("PGBOUNCER_BIN")) else {
        return;
    };
    let db = format!("pgb_{}", uuid::Uuid::new_v4().simple());
    let admin = admin(&base).await;
    admin
        .batch_execute(&format!("create database {db}"))
        .await
        .unwrap();
    // Migrations run over the direct URL (they take a session-level lock).
    let direct = format!("postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable");
    let mut migrator = TestApp::start(Backend::Postgres, &direct, &[]).await;
    migrator.stop().await;
    drop(migrator);

    let bouncer = Bouncer::start(&bin);
    let pooled = format!(
        "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
        bouncer.port
    );
    // A pooler on a port other than 6432 is not recognised: say so, as an
    // operator would.
    let app = TestApp::start(
        Backend::Postgres,
        &pooled,
        &[("DB_POOL_SIZE", "16"), ("DB_PREPARED_STATEMENTS", "off")],
    )
    .await;
    let users: Vec<String> = (0..6).map(|i| format!("pooled-{i}")).collect();
    let mut requests = 0usize;
    let mut expected: Vec<(String, i64, String)> = Vec::new();
    for round in 0..10 {
        let creates = users
            .iter()
            .flat_map(|u| (0..12).map(move |n| (u.clone(), format!("{u} r{round} n{n}"))));
        let responses = join_all(creates.map(|(u, title)| {
            let app = &app;
            async move {
                let response = app
                    .create_task(&token(&u), json!({"title": title, "tags": [u.clone()]}))
                    .await;
                (u, title, response)
            }
        }))
        .await;
        for (u, title, response) in responses {
            requests += 1;
            assert_eq!(response.status(), StatusCode::CREATED);
            let task: Value = response.json().await.unwrap();
            assert_eq!(task["title"], title.as_str());
            assert_eq!(task["user_id"], u.as_str());
            expected.push((u, task["id"].as_i64().unwrap(), title));
        }
        // Concurrent reads of everything written so far (sampled per round).
        let reads = join_all(expected.iter().rev().take(150).map(|(u, id, title)| {
            let app = &app;
            async move {
                let task: Value = app.get_task(&token(u), *id).await.json().await.unwrap();
                (task, u, title)
            }
        }))
        .await;
        for (task, u, title) in reads {
            requests += 1;
            assert_eq!(
                task["title"],
                title.as_str(),
                "wrong row through the pooler"
            );
            assert_eq!(task["user_id"], u.as_str());
        }
    }
    for u in &users {
        let t = token(u);
        let page = app
            .req(
                Method::GET,
                &format!("/api/v1/tasks?limit=100&tag={u}&sort=title"),
                Some(&t),
            )
            .send()
            .await
            .unwrap();
        requests += 1;
        let page: Value = page.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 100);
        assert!(items.iter().all(|t| t["user_id"] == u.as_str()));
    }
    eprintln!(
        "pgbouncer transaction mode: {requests} requests, {} tasks, every value verified",
        expected.len()
    );

    // Faults behind the pooler: kill the pooler's server connections while
    // creates run; every acknowledged write stays, nothing answers 500.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (stop, db, base) = (stop.clone(), db.clone(), base.clone());
        tokio::spawn(async move {
            let admin = self::admin(&base).await;
            let mut kills = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // The fault's pace, an input of the test: not a wait.
                tokio::time::sleep(Duration::from_millis(200)).await;
                kills += admin
                    .query(
                        "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
                        &[&db],
                    )
                    .await
                    .map(|rows| rows.len())
                    .unwrap_or(0);
            }
            kills
        })
    };
    let t = token("pooled-faults");
    let mut acknowledged = Vec::new();
    let (mut unavailable, mut sent) = (0, 0);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        sent += 1;
        let response = app
            .create_task(&t, json!({"title": format!("pf {sent}")}))
            .await;
        match response.status() {
            StatusCode::CREATED => acknowledged.push(response.json::<Value>().await.unwrap()),
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            other => panic!("unexpected {other} through the pooler under faults"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = killer.await.unwrap();
    for task in &acknowledged {
        let got: Value = app
            .get_task(&t, task["id"].as_i64().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(&got, task);
    }
    eprintln!(
        "pgbouncer faults: server connections killed={kills} sent={sent} acknowledged={} unavailable(503)={unavailable}; all acknowledged present",
        acknowledged.len()
    );

    // The database path goes away entirely (the pooler stops): requests and
    // /ready fail fast with 503 + Retry-After, never hang; when it is back,
    // service resumes without a restart.
    let port = bouncer.port;
    drop(bouncer);
    let t = token("outage");
    let started = std::time::Instant::now();
    let ready = app.req(Method::GET, "/ready", None).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.headers().contains_key("retry-after"));
    let list = app
        .req(Method::GET, "/api/v1/tasks", Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::SERVICE_UNAVAILABLE);
    let create = app.create_task(&t, json!({"title": "during outage"})).await;
    assert_eq!(create.status(), StatusCode::SERVICE_UNAVAILABLE);
    let outage_latency = started.elapsed();
    assert!(
        outage_latency < Duration::from_secs(10),
        "503s took {outage_latency:?}"
    );
    let bouncer = Bouncer::start_on(&bin, port);
    wait_until(Duration::from_secs(5), "/ready recovers", || async {
        app.req(Method::GET, "/ready", None)
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::OK
    })
    .await;
    app.new_task(&t, json!({"title": "after outage"})).await;
    eprintln!("outage: three 503 answers in {outage_latency:?}; recovered without restart");
    drop(app);
    drop(bouncer);
    admin
        .batch_execute(&format!("drop database {db} with (force)"))
        .await
        .unwrap();
}

/// A database of its own, migrated over the direct URL (the migration lock
/// is session-level); returns its name and the admin connection.
async fn pooled_database(base: &str) -> (String, tokio_postgres::Client) {
    let db = format!("pgb_{}", uuid::Uuid::new_v4().simple());
    let admin = admin(base).await;
    admin
        .batch_execute(&format!("create database {db}"))
        .await
        .unwrap();
    let direct = format!("postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable");
    let mut migrator = TestApp::start(Backend::Postgres, &direct, &[]).await;
    migrator.stop().await;
    (db, admin)
}

/// PgBouncer in transaction mode on a random port (not 6432, so not
/// recognised as a pooler) with `DB_PREPARED_STATEMENTS` left at `auto`:
/// statements start out named, and the first one the pooler routes to
/// another server connection fails with SQLSTATE 26000. Here that happens
/// inside an idempotent create's transaction, which the failed statement
/// aborts: the store switches to unnamed statements and runs the
/// transaction again. Concurrent idempotent creates and their replays all
/// answer 201, never 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_creates_through_an_unrecognised_transaction_pooler_never_fail() {
    let (Some(base), Some(bin)) = (postgres_url(), required("PGBOUNCER_BIN")) else {
        return;
    };
    let (db, admin) = pooled_database(&base).await;
    let bouncer = Bouncer::start(&bin);
    assert_ne!(bouncer.port, 6432);
    let pooled = format!(
        "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
        bouncer.port
    );
    let app = TestApp::start(Backend::Postgres, &pooled, &[("DB_POOL_SIZE", "16")]).await;
    let users: Vec<String> = (0..4).map(|i| format!("idem-pooled-{i}")).collect();
    // One at a time, the users' rows are created (the pooler hands a lone
    // client the server connection it just had, so nothing fails yet);
    // from then on only the creates' transactions run.
    for u in &users {
        let me = app
            .req(Method::GET, "/api/v1/me", Some(&token(u)))
            .send()
            .await;
        assert_eq!(me.unwrap().status(), StatusCode::OK);
    }
    let app = &app;
    let post = |u: &str, key: String| {
        let t = token(u);
        async move {
            let response = app
                .req(Method::POST, "/api/v1/tasks", Some(&t))
                .header("idempotency-key", &key)
                .json(&json!({"title": key}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            (key, status, response.text().await.unwrap())
        }
    };
    let mut created = std::collections::HashMap::new();
    for round in 0..4 {
        let creates = users
            .iter()
            .flat_map(|u| (0..8).map(move |n| post(u, format!("{u}-r{round}-n{n}"))));
        for (key, status, body) in join_all(creates).await {
            assert_eq!(status, StatusCode::CREATED, "{key}: {body}");
            let task: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(task["title"], key.as_str());
            created.insert(key, body);
        }
    }
    // Every key again, at once: the original responses, replayed.
    let replays = users.iter().flat_map(|u| {
        (0..4).flat_map(move |round| (0..8).map(move |n| post(u, format!("{u}-r{round}-n{n}"))))
    });
    for (key, status, body) in join_all(replays).await {
        assert_eq!(status, StatusCode::CREATED, "{key}: {body}");
        assert_eq!(body, created[&key], "replay of {key}");
    }
    for u in &users {
        let page = app.list_tasks(&token(u), "limit=100").await;
        assert_eq!(
            page["items"].as_array().unwrap().len(),
            32,
            "one task per key"
        );
    }
    // The pooler was found out: statements now go unnamed.
    let unnamed = crate::statements::statements(app, "unnamed").await;
    assert!(unnamed > 0, "no statement was sent unnamed");
    eprintln!(
        "unrecognised pooler: {} idempotent creates and as many replays answered 201; {unnamed} statements unnamed",
        created.len()
    );
    drop(bouncer);
    admin
        .batch_execute(&format!("drop database {db} with (force)"))
        .await
        .unwrap();
}

/// Through PgBouncer a missing database is PgBouncer's 08P01 with the
/// server's sentence: start-up names it and gives up at once instead of
/// retrying until its budget, and never prints the password.
#[tokio::test]
async fn a_database_missing_behind_pgbouncer_is_named_at_start_up() {
    let (Some(_), Some(bin)) = (postgres_url(), required("PGBOUNCER_BIN")) else {
        return;
    };
    let bouncer = Bouncer::start(&bin);
    let password = "pw-never-printed-b0c3";
    let url = format!(
        "postgres://postgres:{password}@127.0.0.1:{}/no_such_database_h19?sslmode=disable",
        bouncer.port
    );
    let vars = [
        ("DATABASE_URL".to_owned(), url),
        (
            "BETTER_AUTH_SECRET".to_owned(),
            crate::helpers::SECRET.to_owned(),
        ),
        ("PORT".to_owned(), "0".to_owned()),
    ];
    let config = tasks_api::Config::from_lookup(
        &|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        false,
    )
    .unwrap();
    tasks_api::app::install_crypto_provider();
    let err = tasks_api::Application::build(config)
        .await
        .err()
        .expect("must refuse");
    let message = format!("{err:#}");
    assert!(
        message.contains(r#"database "no_such_database_h19" does not exist"#)
            && message.contains("SQLSTATE 08P01")
            && message.contains("after 1 attempt(s)"),
        "{message}"
    );
    assert!(!message.contains(password), "{message}");
}
