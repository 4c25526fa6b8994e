//! The binary itself: start-up validation and the `token` command.

use std::process::Command;

use reqwest::{Method, StatusCode};

use crate::helpers::{Backend, SECRET, TestApp};

fn tasks_api(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tasks-api"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    cmd
}

#[test]
fn startup_reports_each_configuration_problem_in_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasks_api(dir.path()).arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BETTER_AUTH_SECRET is not set"), "{stderr}");

    let out = tasks_api(dir.path())
        .env("BETTER_AUTH_SECRET", "too-short")
        .env("DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(stderr.contains("DATABASE_URL must start with"), "{stderr}");
    assert!(!stderr.contains("too-short"), "the secret is never printed");

    let out = tasks_api(dir.path())
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("DATABASE_URL", "postgres://nobody:hunter2@127.0.0.1:1/none")
        .env("DB_ACQUIRE_TIMEOUT_MS", "500")
        .env("DB_STARTUP_TIMEOUT_SECONDS", "2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the PostgreSQL database"),
        "{stderr}"
    );
    // Start-up waited with backoff (a cold Neon compute takes seconds),
    // logging each attempt, and gave up within its budget.
    assert!(
        stderr.matches("database not reachable yet").count() >= 2,
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is never printed: {stderr}"
    );
    // Nothing was created in the working directory by a failed start.
    assert!(!dir.path().join("tasks.db").exists());
}

#[test]
fn migrate_creates_the_default_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasks_api(dir.path())
        .env("BETTER_AUTH_SECRET", SECRET)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("tasks.db").exists());
}

#[tokio::test]
async fn token_command_prints_a_token_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = tasks_api(dir.path())
        .env("BETTER_AUTH_SECRET", SECRET)
        .args([
            "token",
            "--sub",
            "cli-user",
            "--email",
            "cli@example.com",
            "--ttl",
            "15m",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let response = app
        .req(Method::GET, "/api/v1/me", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let me: serde_json::Value = response.json().await.unwrap();
    assert_eq!(me["id"], "cli-user");
    assert_eq!(me["email"], "cli@example.com");

    let out = tasks_api(dir.path())
        .args(["token", "--sub", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A SQLite file as earlier versions (on sqlx) left it: the schema, sqlx's
/// migration history with `checksum`, and one user with one task.
fn earlier_version_database(path: &std::path::Path, checksum: &[u8]) {
    let init = include_str!("../../migrations/sqlite/V1__init.sql");
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(init).unwrap();
    conn.execute_batch(
        "create table _sqlx_migrations (
             version bigint primary key, description text not null,
             installed_on timestamp not null default current_timestamp,
             success boolean not null, checksum blob not null,
             execution_time bigint not null);
         insert into users (id, email, name, created_at, updated_at) values
             ('old-user', null, null, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
         insert into tasks (user_id, title, title_lc, created_at, updated_at) values
             ('old-user', 'Written before', 'written before',
              '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');",
    )
    .unwrap();
    conn.execute(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
         values (1, 'init', true, ?1, 0)",
        [checksum],
    )
    .unwrap();
}

/// Upgrading from the sqlx-based versions keeps the data: their migration
/// history is checked and adopted, nothing is re-applied.
#[tokio::test]
async fn a_database_from_an_earlier_version_is_adopted_with_its_data() {
    use sha2::Digest as _;
    let init = include_str!("../../migrations/sqlite/V1__init.sql");
    let dir = tempfile::tempdir().unwrap();
    earlier_version_database(
        &dir.path().join("tasks.db"),
        &sha2::Sha384::digest(init.as_bytes()),
    );
    let url = format!("sqlite://{}/tasks.db", dir.path().display());
    let (mut child, base) =
        crate::helpers::spawn_binary(dir.path(), &[("DATABASE_URL", &url), ("RUST_LOG", "warn")])
            .await;
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/tasks"))
        .bearer_auth(crate::helpers::token("old-user"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(listed["items"][0]["title"], "Written before", "{listed}");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
}

/// A history whose script differs from the embedded one stops start-up with
/// a sentence, instead of running against a schema it does not know.
#[test]
fn a_changed_migration_in_an_earlier_history_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    earlier_version_database(&dir.path().join("tasks.db"), b"not the checksum");
    let out = tasks_api(dir.path())
        .env("BETTER_AUTH_SECRET", SECRET)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("migration 1 (init) was changed after it was applied"),
        "{stderr}"
    );
}

/// A PostgreSQL start-up failure says what the server said, with its
/// SQLSTATE, rather than the driver's "db error" (and never the password),
/// whether from the library or from the binary's `serve` and `migrate`.
#[tokio::test]
async fn a_postgres_startup_failure_gives_the_servers_reason_and_code() {
    let Some(base) = crate::helpers::postgres_url() else {
        return;
    };
    let password = "pw-never-printed-7c1e";
    let url = crate::helpers::with_password(
        &crate::helpers::with_database(&base, "no_such_database_h19"),
        password,
    );
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("BETTER_AUTH_SECRET", SECRET),
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
    .unwrap();
    tasks_api::app::install_crypto_provider();
    let err = tasks_api::Application::build(config)
        .await
        .err()
        .expect("must refuse");
    let says = |message: &str| {
        assert!(
            message.contains(r#"database "no_such_database_h19" does not exist"#)
                && message.contains("SQLSTATE 3D000"),
            "{message}"
        );
        assert!(!message.contains("db error"), "{message}");
        assert!(
            !message.contains(password),
            "the password is printed: {message}"
        );
    };
    says(&format!("{err:#}"));
    let dir = tempfile::tempdir().unwrap();
    for command in ["serve", "migrate"] {
        let out = tasks_api(dir.path())
            .env("BETTER_AUTH_SECRET", SECRET)
            .env("DATABASE_URL", &url)
            .arg(command)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command}");
        says(&String::from_utf8_lossy(&out.stderr));
    }
}
