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
