//! SQLite read connections keep their read transaction between reads while
//! nothing is committed (see `Reader` in `src/db/sqlite.rs`). These tests
//! hold that to its promises over HTTP: a write made by another process
//! still shows within moments while reads keep flowing, and idle read
//! connections let go of their snapshots, so a checkpoint can still empty
//! the write-ahead log. (This server's own writes showing at once is what
//! nearly every test of the suite checks: write, then read.)

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{Backend, TestApp, token, wait_until};

fn open_file(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(app.database_url.trim_start_matches("sqlite://")).unwrap()
}

#[tokio::test]
async fn another_processs_write_shows_while_reads_keep_flowing() {
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "before"})).await["id"]
        .as_i64()
        .unwrap();
    // Reads on every connection, so each holds a snapshot of "before".
    join_all((0..16).map(|_| app.get_task(&t, id))).await;

    open_file(&app)
        .execute(
            "update tasks set title = 'after', title_lc = 'after' where id = ?1",
            [id],
        )
        .unwrap();
    let started = Instant::now();
    loop {
        // Back-to-back reads: the busiest connection is never idle for long.
        let task: serde_json::Value = app.get_task(&t, id).await.json().await.unwrap();
        if task["title"] == "after" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the other process's write is still not visible after {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn idle_read_connections_do_not_hold_back_a_checkpoint() {
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let t = token("alice");
    for i in 0..5 {
        app.new_task(&t, json!({"title": format!("task {i}")}))
            .await;
    }
    // Several read connections, each left idle with a snapshot.
    join_all((0..16).map(|_| app.list_tasks(&t, ""))).await;
    // Commits after those snapshots: the log holds frames they predate.
    for i in 5..10 {
        app.new_task(&t, json!({"title": format!("task {i}")}))
            .await;
    }
    // A truncating checkpoint finishes only when no reader is in the log;
    // idle readers let go of their snapshots within 50 ms.
    let file = open_file(&app);
    // Each attempt answers at once: a busy wait here would block the
    // runtime the server's sweep of idle readers runs on.
    file.busy_timeout(Duration::ZERO).unwrap();
    wait_until(
        Duration::from_secs(5),
        "a truncating checkpoint finishes (no idle reader holds the log)",
        || async {
            let (busy, log_frames): (i64, i64) = file
                .query_row("pragma wal_checkpoint(truncate)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            (busy, log_frames) == (0, 0)
        },
    )
    .await;
    // The server reads on normally from the checkpointed file.
    let page = app.list_tasks(&t, "limit=100").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 10, "{page}");
}
