//! Migrations through refinery: a database created by the previous
//! runner (its `schema_migrations` table) opens and carries on, a changed
//! script still stops start-up, and servers starting at once on a fresh
//! database all come up.
//!
//! Each test builds its database before any server starts, so the
//! PostgreSQL runs use a schema of their own on the direct URL (a migration
//! takes a session-level lock: never through a pooler) and are named
//! `postgres_direct`, outside the pooler stage's `::postgres::` filter.

use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest as _;

use crate::helpers::{self, Backend, TestApp};

const PG_V1: &str = include_str!("../../migrations/postgres/V1__init.sql");
const LITE_V1: &str = include_str!("../../migrations/sqlite/V1__init.sql");
const CHANGED: &str = "migration 1 (init) was changed after it was applied";

/// An empty database of either kind, dropped (PostgreSQL) or deleted
/// (SQLite) with this value.
struct Place {
    backend: Backend,
    /// What `DATABASE_URL` says.
    url: String,
    /// PostgreSQL: the base URL and the schema, dropped on drop.
    schema: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Place {
    /// `None` when PostgreSQL is not configured (the test is skipped).
    async fn new(backend: Backend) -> Option<Self> {
        Some(match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                Self {
                    backend,
                    url: format!("sqlite://{}/tasks.db", dir.path().display()),
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let base = helpers::postgres_url()?;
                let name = format!("m_{}", uuid::Uuid::new_v4().simple());
                helpers::admin_client(&base)
                    .await
                    .batch_execute(&format!("create schema {name}"))
                    .await
                    .expect("create schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                Self {
                    backend,
                    url: format!("{base}{sep}options=-c%20search_path%3D{name}"),
                    schema: Some((base, name)),
                    _dir: None,
                }
            }
        })
    }

    /// Runs `sql` in this database (PostgreSQL: in its schema).
    async fn execute(&self, sql: &str) {
        match &self.schema {
            Some(_) => helpers::admin_client(&self.url)
                .await
                .batch_execute(sql)
                .await
                .expect("execute"),
            None => self.sqlite().execute_batch(sql).expect("execute"),
        }
    }

    /// The rows of `sql`, each as its text columns.
    async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match &self.schema {
            Some(_) => helpers::admin_client(&self.url)
                .await
                .simple_query(sql)
                .await
                .expect("query")
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).unwrap_or_default().to_owned())
                            .collect(),
                    ),
                    _ => None,
                })
                .collect(),
            None => {
                let conn = self.sqlite();
                let mut stmt = conn.prepare(sql).expect("prepare");
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                                rusqlite::types::Value::Integer(i) => i.to_string(),
                                rusqlite::types::Value::Text(t) => t,
                                other => format!("{other:?}"),
                            })
                        })
                        .collect()
                })
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
            }
        }
    }

    fn sqlite(&self) -> rusqlite::Connection {
        let path = self.url.strip_prefix("sqlite://").expect("sqlite url");
        rusqlite::Connection::open(path).expect("open")
    }

    /// The database as the previous runner left it after applying version
    /// 1 only (an instance of the version before version 2 existed): the
    /// schema, its `schema_migrations` exactly as that runner created and
    /// wrote it (SHA-256 of `v1` in hex), and one user with one task.
    async fn previous_runner(&self, v1_sha256: &str) {
        let (init, history) = match self.backend {
            Backend::Sqlite => (
                LITE_V1,
                format!(
                    "create table if not exists schema_migrations (
                         version    integer primary key,
                         name       text not null,
                         checksum   text not null,
                         applied_at text not null
                     ) strict;
                     insert into schema_migrations (version, name, checksum, applied_at)
                         values (1, 'init', '{v1_sha256}', '2026-01-01T00:00:00.000000Z');"
                ),
            ),
            Backend::Postgres => (
                PG_V1,
                format!(
                    "create table if not exists schema_migrations (
                         version bigint primary key,
                         name text not null,
                         checksum text not null,
                         applied_at timestamptz not null default now());
                     insert into schema_migrations (version, name, checksum)
                         values (1, 'init', '{v1_sha256}');"
                ),
            ),
        };
        self.execute(init).await;
        self.execute(&history).await;
        self.execute(
            "insert into users (id, email, name, created_at, updated_at) values
                 ('old-user', null, null, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
             insert into tasks (user_id, title, title_lc, created_at, updated_at) values
                 ('old-user', 'Written before', 'written before',
                  '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');",
        )
        .await;
    }

    /// The embedded version 1 of this backend.
    fn v1(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => LITE_V1,
            Backend::Postgres => PG_V1,
        }
    }

    /// A server on this database.
    async fn start(&self) -> TestApp {
        TestApp::start(self.backend, &self.url, &[]).await
    }

    /// Why a server refuses to start on this database.
    async fn refusal(&self) -> String {
        let vars = [
            ("DATABASE_URL", self.url.as_str()),
            ("BETTER_AUTH_SECRET", helpers::SECRET),
            ("PORT", "0"),
        ];
        let config = tasks_api::Config::from_lookup(
            &|k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            },
            false,
        )
        .expect("config");
        tasks_api::app::install_crypto_provider();
        match tasks_api::Application::build(config).await {
            Ok(_) => panic!("the server started"),
            Err(err) => format!("{err:#}"),
        }
    }

    /// refinery's history, as (version, name).
    async fn history(&self) -> Vec<(String, String)> {
        self.rows("select version, name from refinery_schema_history order by version")
            .await
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some((base, name)) = self.schema.take() else {
            return;
        };
        // Drop cannot await, and the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let _ = helpers::admin_client(&base)
                    .await
                    .batch_execute(&format!("drop schema if exists {name} cascade"))
                    .await;
            });
        })
        .join();
    }
}

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A database the previous runner migrated (to version 1, with data)
/// opens: its task lists, refinery applies versions 2 and 3 and records all,
/// the old table stays, and `/ready` follows refinery's history.
async fn previous_runner_database_opens_and_migrates(place: Place) {
    place.previous_runner(&sha256_hex(place.v1())).await;
    let app = place.start().await;
    let listed: Value = app.list_tasks(&helpers::token("old-user"), "").await;
    assert_eq!(listed["items"][0]["title"], "Written before", "{listed}");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    // Version 3 numbered the task, so the change feed has it.
    let changes: Value = app
        .req(
            reqwest::Method::GET,
            "/api/v1/changes",
            Some(&helpers::token("old-user")),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        changes["changes"][0]["task"], listed["items"][0],
        "{changes}"
    );

    let history = place.history().await;
    let versions: Vec<&str> = history.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(versions, ["1", "2", "3"], "{history:?}");
    let v2 = match place.backend {
        Backend::Sqlite => "list_covering_index",
        Backend::Postgres => "drop_tags_gin_index",
    };
    assert_eq!(
        (
            history[0].1.as_str(),
            history[1].1.as_str(),
            history[2].1.as_str()
        ),
        ("init", v2, "change_feed")
    );
    let (v2_sql, v2_rows) = match place.backend {
        // Version 2 replaces the created index with a covering one.
        Backend::Sqlite => (
            "select name from sqlite_master where name = 'tasks_user_created_cover_idx'",
            1,
        ),
        // Version 2 drops the tags index.
        Backend::Postgres => (
            "select indexname from pg_indexes \
             where schemaname = current_schema() and indexname = 'tasks_tags_idx'",
            0,
        ),
    };
    assert_eq!(
        place.rows(v2_sql).await.len(),
        v2_rows,
        "version 2 is applied"
    );
    let old = place.rows("select version from schema_migrations").await;
    assert_eq!(old, [["1"]], "the old table is left as it was");

    let ready = app
        .req(reqwest::Method::GET, "/ready", None)
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    place
        .execute("delete from refinery_schema_history where version = 3")
        .await;
    // Written behind the server's back, and seen by the next read.
    let ready = app
        .req(reqwest::Method::GET, "/ready", None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "/ready with the latest version missing from the history"
    );
}

/// A script that differs from the one the previous runner applied stops
/// start-up with the sentence operators know, and so does one changed
/// after refinery recorded it.
async fn a_changed_script_stops_start_up(place: Place) {
    place.previous_runner("0000").await;
    let err = place.refusal().await;
    assert!(err.contains(CHANGED), "{err}");

    let fresh = Place::new(place.backend).await.expect("place");
    fresh.start().await.stop().await;
    assert_eq!(fresh.history().await.len(), 3);
    fresh
        .execute("update refinery_schema_history set checksum = '1' where version = 1")
        .await;
    let err = fresh.refusal().await;
    assert!(err.contains(CHANGED), "{err}");
}

/// Servers starting at once on one fresh database all come up, and each
/// script ran once. (Without a lock, two runners both see an empty history
/// and the second fails on `create table`.)
async fn servers_starting_at_once_all_come_up(place: Place) {
    // SQLite's window is narrow (its runners are threads, not polled in
    // step): without the lock about one run in three fails with 24 starts.
    let servers = match place.backend {
        Backend::Sqlite => 24,
        Backend::Postgres => 4,
    };
    // Polled together on this task: each server's start-up reaches the
    // database in step with the others.
    let apps = futures::future::join_all((0..servers).map(|_| place.start())).await;
    for app in &apps {
        let ready = app
            .req(reqwest::Method::GET, "/ready", None)
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }
    assert_eq!(place.history().await.len(), 3);
}

macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let place = super::Place::new(super::Backend::Sqlite).await.expect("sqlite");
                    super::$name(place).await;
                }
            )*
        }
        mod postgres_direct {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(place) = super::Place::new(super::Backend::Postgres).await {
                        super::$name(place).await;
                    }
                }
            )*
        }
    };
}

on_each_backend!(
    previous_runner_database_opens_and_migrates,
    a_changed_script_stops_start_up,
    servers_starting_at_once_all_come_up,
);
