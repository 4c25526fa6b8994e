//! `TestApp`: the real server, started in-process on a random port against a
//! fresh database (a temporary SQLite file, or a new PostgreSQL schema), with
//! request helpers named after what they do.
//!
//! With `TEST_PGBOUNCER_PORT` set (a PgBouncer in transaction mode on
//! 127.0.0.1 that forwards every database to `TEST_DATABASE_URL`'s server,
//! as `.ci/run` starts one), each PostgreSQL test gets a database of its own
//! instead of a schema, and its server reaches it through the pooler: a
//! pooler passes no `options`, so a `search_path` in the URL would be lost.

use std::{collections::HashMap, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tasks_api::{Application, Config, db::Store};

/// The signing secret every test server shares with its test tokens.
pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";

/// Which storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server and what is needed to talk to it and clean up after it.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    pub database_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
    schema: Option<PgScratch>,
}

/// A PostgreSQL test's own place, dropped with its [`TestApp`].
struct PgScratch {
    /// `TEST_DATABASE_URL`, from where it is dropped.
    base: String,
    /// The schema (and `application_name`), and in pooler mode the
    /// database too.
    name: String,
    /// A direct URL on which `name` is the schema searched: `base` itself,
    /// or in pooler mode the test's own database.
    direct: String,
    /// Pooler mode: the whole database is dropped.
    database: bool,
}

/// The port of the PgBouncer the PostgreSQL tests go through, if any.
pub fn pgbouncer_port() -> Option<u16> {
    let port = std::env::var("TEST_PGBOUNCER_PORT").ok()?;
    Some(port.parse().expect("TEST_PGBOUNCER_PORT is a port number"))
}

/// The PostgreSQL URL for tests, or `None` (skip) when not configured.
/// With `REQUIRE_POSTGRES=1` (as `.ci/run` sets) a missing URL is a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REQUIRE_POSTGRES").is_err(),
                "REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not"
            );
            eprintln!("TEST_DATABASE_URL is not set: skipping the PostgreSQL run of this test");
            None
        }
    }
}

/// A plain connection to the test server, for setting up and inspecting.
pub async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to TEST_DATABASE_URL");
    tokio::spawn(connection);
    client
}

/// `url` (a `postgres://` URL) naming database `db` instead.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = rest
        .split_once('?')
        .map_or((rest, None), |(b, q)| (b, Some(q)));
    let authority = before_query.split('/').next().unwrap_or_default();
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

/// `url` (a `postgres://` URL) with its user's password set to `password`.
pub fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hosts) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    let user = user.split(':').next().unwrap_or(user);
    format!("{scheme}://{user}:{password}@{hosts}{tail}")
}

impl PgScratch {
    /// Pooler mode: a database named `name` holding a schema `name` that
    /// its sessions search by default (the pooler cannot pass a
    /// `search_path`), migrated over the direct URL as a deployment would
    /// (the migration lock is session-level); the server's URL goes through
    /// the pooler on `port`.
    async fn pooled(base: String, name: String, port: u16) -> (String, Self) {
        admin_client(&base)
            .await
            .batch_execute(&format!("create database {name}"))
            .await
            .expect("create test database");
        let direct = with_database(&base, &name);
        admin_client(&direct)
            .await
            .batch_execute(&format!(
                "create schema {name}; alter database {name} set search_path = {name}"
            ))
            .await
            .expect("create test schema");
        let vars: HashMap<&str, &str> = [
            ("DATABASE_URL", direct.as_str()),
            ("BETTER_AUTH_SECRET", SECRET),
        ]
        .into_iter()
        .collect();
        let config = Config::from_lookup(&|k| vars.get(k).map(|v| v.to_string()), false)
            .expect("migration config");
        tasks_api::app::install_crypto_provider();
        tasks_api::db::migrate(&tasks_api::app::db_settings(&config))
            .await
            .expect("migrate the test database");
        let parsed: tokio_postgres::Config = base.parse().expect("TEST_DATABASE_URL");
        let user = parsed.get_user().unwrap_or("postgres");
        let url = format!(
            "postgres://{user}@127.0.0.1:{port}/{name}?sslmode=disable&application_name={name}"
        );
        let scratch = Self {
            base,
            name,
            direct,
            database: true,
        };
        (url, scratch)
    }
}

fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    // The application name lets fault tests find (and kill) this app's sessions.
    format!("{url}{sep}options=-c%20search_path%3D{schema}&application_name={schema}")
}

impl TestApp {
    /// A fresh database of the given kind; `None` when PostgreSQL is skipped.
    pub async fn new(backend: Backend) -> Option<Self> {
        Self::with_env(backend, &[]).await
    }

    /// Like [`TestApp::new`], with extra configuration variables.
    pub async fn with_env(backend: Backend, extra: &[(&str, &str)]) -> Option<Self> {
        Self::with_env_through(backend, extra, &|url| url.to_owned()).await
    }

    /// Like [`TestApp::with_env`], with the server's `DATABASE_URL` passed
    /// through `route` (to reach the database through a proxy).
    pub async fn with_env_through(
        backend: Backend,
        extra: &[(&str, &str)],
        route: &dyn Fn(&str) -> String,
    ) -> Option<Self> {
        let (url, dir, schema) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/tasks.db", dir.path().display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let base = postgres_url()?;
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                let scratch = match pgbouncer_port() {
                    Some(port) => PgScratch::pooled(base, name, port).await,
                    None => {
                        admin_client(&base)
                            .await
                            .batch_execute(&format!("create schema {name}"))
                            .await
                            .expect("create test schema");
                        let url = with_search_path(&base, &name);
                        (
                            url,
                            PgScratch {
                                direct: base.clone(),
                                base,
                                name,
                                database: false,
                            },
                        )
                    }
                };
                (scratch.0, None, Some(scratch.1))
            }
        };
        let mut extra = extra.to_vec();
        let listen_url = schema
            .as_ref()
            .filter(|s| s.database)
            .map(|s| s.direct.clone());
        if let Some(direct) = &listen_url {
            // Through the pooler, LISTEN needs the direct URL, as in
            // production.
            extra.push(("DATABASE_LISTEN_URL", direct.as_str()));
        }
        let mut app = Self::start(backend, &route(&url), &extra).await;
        app._dir = dir;
        app.schema = schema;
        Some(app)
    }

    /// Another server on this app's database (a second instance behind
    /// the same load balancer), with `extra` configuration.
    pub async fn another_instance(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut extra = extra.to_vec();
        let listen_url = self
            .schema
            .as_ref()
            .filter(|s| s.database)
            .map(|s| s.direct.clone());
        if let Some(direct) = &listen_url {
            extra.push(("DATABASE_LISTEN_URL", direct.as_str()));
        }
        TestApp::start(self.backend, &self.database_url, &extra).await
    }

    /// Starts a server on an existing database (used to test restarts).
    pub async fn start(backend: Backend, url: &str, extra: &[(&str, &str)]) -> Self {
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", url),
            ("BETTER_AUTH_SECRET", SECRET),
            ("PORT", "0"),
            ("DB_POOL_SIZE", "8"),
            // Budgets are tested on their own; elsewhere they would only
            // turn bursts of test requests into 429s.
            ("RATE_LIMIT_PER_SECOND", "0"),
            ("RATE_LIMIT_IP_PER_SECOND", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        tasks_api::app::install_crypto_provider();
        let config = Config::from_lookup(&|k| vars.get(k).cloned(), false).expect("test config");
        let app = Application::build(config).await.expect("build application");
        let base = format!("http://{}", app.local_addr());
        let store = app.store();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .expect("server");
        });
        Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            store,
            backend,
            database_url: url.to_owned(),
            shutdown: Some(tx),
            server: Some(server),
            _dir: None,
            schema: None,
        }
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// One series of `/metrics` (the whole line before the value, e.g.
    /// `db_statements_total{mode="prepared"}`); `None` when absent.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics_text().await;
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.trim().parse().unwrap())
    }

    /// The `/metrics` text (no `METRICS_TOKEN` in tests that read it).
    pub async fn metrics_text(&self) -> String {
        let response = self
            .req(Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    /// A request to `path` with `token` as bearer (when given).
    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut builder = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        builder
    }

    pub async fn create_task(&self, token: &str, body: Value) -> Response {
        self.req(Method::POST, "/api/v1/tasks", Some(token))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Creates a task that must succeed and returns its JSON.
    pub async fn new_task(&self, token: &str, body: Value) -> Value {
        let response = self.create_task(token, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }

    pub async fn get_task(&self, token: &str, id: i64) -> Response {
        self.req(Method::GET, &format!("/api/v1/tasks/{id}"), Some(token))
            .send()
            .await
            .expect("request")
    }

    pub async fn patch_task(&self, token: &str, id: i64, body: Value) -> Response {
        self.req(Method::PATCH, &format!("/api/v1/tasks/{id}"), Some(token))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn toggle_task(&self, token: &str, id: i64) -> Response {
        self.req(
            Method::PATCH,
            &format!("/api/v1/tasks/{id}/complete"),
            Some(token),
        )
        .send()
        .await
        .expect("request")
    }

    /// `GET /api/v1/tasks?{query}`, which must succeed; returns the body.
    pub async fn list_tasks(&self, token: &str, query: &str) -> Value {
        let response = self
            .req(Method::GET, &format!("/api/v1/tasks?{query}"), Some(token))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "list ?{query}");
        response.json().await.expect("json")
    }

    /// The PostgreSQL schema (and `application_name`) of this app, if any,
    /// with a direct URL to its database (to inspect or change it behind the
    /// server's back; `{schema}.tasks` names its table there).
    pub fn pg_schema(&self) -> Option<(&str, &str)> {
        self.schema
            .as_ref()
            .map(|s| (s.direct.as_str(), s.name.as_str()))
    }

    /// Runs `sql` in this app's database behind the server's back (on
    /// PostgreSQL in the app's schema).
    pub async fn execute(&self, sql: &str) {
        match &self.schema {
            Some(s) => admin_client(&s.direct)
                .await
                .batch_execute(&format!("set search_path to {}; {sql}", s.name))
                .await
                .expect("execute"),
            None => {
                let path = self
                    .database_url
                    .strip_prefix("sqlite://")
                    .expect("a SQLite URL");
                rusqlite::Connection::open(path)
                    .and_then(|conn| conn.execute_batch(sql))
                    .expect("execute");
            }
        }
    }

    /// Whether the store holds a user row for `sub`.
    pub async fn user_exists(&self, sub: &str) -> bool {
        let by = tasks_api::db::Deadline::after(Duration::from_secs(10));
        self.store.get_user(sub, by).await.expect("store").is_some()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(PgScratch {
            base,
            name,
            database,
            ..
        }) = self.schema.take()
        {
            let drop = if database {
                // Ends the pooler's server connections to it too.
                format!("drop database if exists {name} with (force)")
            } else {
                format!("drop schema if exists {name} cascade")
            };
            // Drop the schema from a thread with its own runtime: Drop
            // cannot await, and the test's runtime may be shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok((client, conn)) =
                            tokio_postgres::connect(&base, tokio_postgres::NoTls).await
                        {
                            tokio::spawn(conn);
                            // A pooler may open a server connection to a
                            // dropped database's app (still winding down)
                            // between `force`'s terminations and the drop.
                            for attempt in 1..=20 {
                                match client.batch_execute(&drop).await {
                                    Ok(()) => break,
                                    Err(err) if attempt == 20 => {
                                        eprintln!("could not drop {name}: {err:?}");
                                    }
                                    Err(_) => {
                                        tokio::time::sleep(Duration::from_millis(50)).await;
                                    }
                                }
                            }
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// The real binary, started as a child process in `dir` with only the given
/// environment (plus the test secret and a free port), stdout and stderr
/// piped; returns once `/ready` answers 200, with the base URL.
pub async fn spawn_binary(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    use std::process::{Command, Stdio};
    app_crypto();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tasks-api"))
        .current_dir(dir)
        .env_clear()
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("PORT", port.to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tasks-api");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if client
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (child, base);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not become ready");
}

fn app_crypto() {
    tasks_api::app::install_crypto_provider();
}

/// Waits until `check` holds, polling every 10 ms, and panics naming `what`
/// once `deadline` has passed: tests wait for the condition they need
/// instead of sleeping a fixed time that is too short on a busy machine and
/// wasted on an idle one.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < deadline,
            "gave up after {deadline:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Backends of the test server's PostgreSQL schema (its connections carry
/// the schema as `application_name`) that match `condition`, a SQL
/// predicate over `pg_stat_activity`.
pub async fn pg_backends(admin: &tokio_postgres::Client, schema: &str, condition: &str) -> i64 {
    admin
        .query_one(
            &format!(
                "select count(*) from pg_stat_activity where application_name = $1 and ({condition})"
            ),
            &[&schema],
        )
        .await
        .unwrap()
        .get(0)
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Signs arbitrary claims with the test secret (HS256).
pub fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::HS256, SECRET)
}

/// Signs arbitrary claims with a chosen HMAC algorithm and secret.
pub fn sign_with(claims: &Value, alg: Algorithm, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("key");
    jsonwebtoken::encode(&Header::new(alg), claims, &key).expect("sign")
}

/// A valid token for `sub`, as a Better Auth front end would mint it.
pub fn token(sub: &str) -> String {
    sign(&json!({
        "sub": sub,
        "email": format!("{sub}@example.com"),
        "name": format!("User {sub}"),
        "iat": now_secs(),
        "exp": now_secs() + 3600,
    }))
}

/// Asserts a problem+json response with `status` and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["title"], status.canonical_reason().unwrap_or_default());
    assert!(
        body["detail"].is_string(),
        "detail must be a string: {body}"
    );
    assert_eq!(body["request_id"].as_str(), request_id.as_deref());
    body
}

/// Runs one test body on SQLite and, when configured, on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::TestApp::new($crate::helpers::Backend::Sqlite)
                        .await
                        .expect("sqlite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::helpers::TestApp::new($crate::helpers::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

/// Runs tests that start their own server (`TestApp::with_env`): each named
/// `async fn(Backend)` once per backend, in modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}
