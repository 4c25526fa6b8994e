//! `GET /api/v1/events`: live changes as Server-Sent Events, resumed with
//! `Last-Event-ID`, isolated per user, across instances, and through a
//! lost `LISTEN` connection.

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::changes::sync;
use crate::helpers::{TestApp, assert_problem, now_secs, sign, token};

/// How long a test waits for an event it expects.
const EXPECT: Duration = Duration::from_secs(10);

/// One event as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub id: String,
    pub event: String,
    pub data: Value,
}

/// An open stream, read frame by frame.
pub struct Events {
    body: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
    comments: usize,
}

impl Events {
    pub async fn open(app: &TestApp, t: &str, last_event_id: Option<&str>) -> Events {
        let response = Self::request(app, t, last_event_id).await;
        Self::from_response(response)
    }

    /// A stream opened with `client` (e.g. one speaking HTTP/2).
    async fn open_with(app: &TestApp, client: &reqwest::Client, t: &str) -> Events {
        let response = client
            .get(format!("{}/api/v1/events", app.base))
            .bearer_auth(t)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        Self::from_response(response)
    }

    fn from_response(response: reqwest::Response) -> Events {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Events {
            body: response
                .bytes_stream()
                .map(|r| r.map(|b| b.to_vec()))
                .boxed(),
            buffer: String::new(),
            comments: 0,
        }
    }

    async fn request(app: &TestApp, t: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut request = app
            .req(Method::GET, "/api/v1/events", Some(t))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        request.send().await.unwrap()
    }

    /// The next event within `wait`; `None` if none came (or the stream
    /// ended).
    async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, None);
                for line in frame.lines() {
                    if line.starts_with(':') {
                        assert_eq!(line, ": keep-alive", "the only comment the server sends");
                        self.comments += 1;
                    } else if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
                        id = Some(v.to_owned());
                    } else if let Some(v) =
                        line.strip_prefix("event: ").or(line.strip_prefix("event:"))
                    {
                        event = Some(v.to_owned());
                    } else if let Some(v) =
                        line.strip_prefix("data: ").or(line.strip_prefix("data:"))
                    {
                        assert!(data.is_none(), "data on one line: {frame:?}");
                        data = Some(serde_json::from_str(v).expect("data is JSON"));
                    }
                }
                if let (Some(id), Some(event), Some(data)) = (id, event, data) {
                    return Some(Received { id, event, data });
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    pub async fn next(&mut self) -> Received {
        self.next_within(EXPECT).await.expect("an event")
    }

    /// Whether the server ended the stream within `wait`.
    async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(None | Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
                Err(_) => return false,
            }
        }
    }
}

fn task_id(event: &Received) -> i64 {
    event.data["task"]["id"]
        .as_i64()
        .or(event.data["id"].as_i64())
        .unwrap()
}

async fn writes_arrive_as_events(app: TestApp) {
    let t = token("alice");
    let mut events = Events::open(&app, &t, None).await;
    let task = app.new_task(&t, json!({"title": "live"})).await;
    let id = task["id"].as_i64().unwrap();
    let created = events.next().await;
    assert_eq!(created.event, "upsert");
    assert_eq!(created.data, json!({"op": "upsert", "task": task}));
    app.toggle_task(&t, id).await;
    let toggled = events.next().await;
    assert_eq!(toggled.data["task"]["completed"], true);
    let deleted = app
        .req(Method::DELETE, &format!("/api/v1/tasks/{id}"), Some(&t))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = events.next().await;
    assert_eq!(gone.event, "delete");
    assert_eq!(gone.data["op"], "delete");
    assert_eq!(gone.data["id"], id);
    // An event id is a token the feed accepts: nothing after the delete.
    let after = sync(&app, &t, &format!("since={}", gone.id)).await;
    assert_eq!(after["changes"], json!([]));
}

async fn a_resumed_stream_has_no_gap_and_no_duplicate(app: TestApp) {
    let t = token("alice");
    let mut first = Events::open(&app, &t, None).await;
    let mut written = Vec::new();
    for i in 0..3 {
        written.push(
            app.new_task(&t, json!({"title": format!("a{i}")})).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut last_id = String::new();
    for _ in 0..2 {
        let event = first.next().await;
        seen.push(task_id(&event));
        last_id = event.id;
    }
    drop(first);
    // Written while no stream was open.
    for i in 0..4 {
        written.push(
            app.new_task(&t, json!({"title": format!("b{i}")})).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut resumed = Events::open(&app, &t, Some(&last_id)).await;
    // Written while the replay may still be running.
    let live = app.new_task(&t, json!({"title": "live"})).await["id"]
        .as_i64()
        .unwrap();
    written.push(live);
    while seen.len() < written.len() {
        seen.push(task_id(&resumed.next().await));
    }
    assert_eq!(seen, written, "every change once, in order");
    assert!(
        resumed
            .next_within(Duration::from_millis(300))
            .await
            .is_none(),
        "no duplicate follows"
    );
    // `?since=` works the same as the header.
    let response = app
        .req(
            Method::GET,
            &format!("/api/v1/events?since={last_id}"),
            Some(&t),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn another_users_stream_receives_nothing(app: TestApp) {
    let bob = token("bob");
    let mut events = Events::open(&app, &bob, None).await;
    let alice = token("alice");
    let task = app.new_task(&alice, json!({"title": "alice's"})).await;
    app.toggle_task(&alice, task["id"].as_i64().unwrap()).await;
    let own = app.new_task(&bob, json!({"title": "bob's"})).await;
    let first = events.next().await;
    assert_eq!(
        first.data["task"], own,
        "bob's first event is his own write"
    );
}

/// A write through one instance reaches a stream on another: PostgreSQL
/// through `NOTIFY`/`LISTEN`, SQLite through the file's `data_version`
/// (the second instance has connections of its own, as another process
/// would).
async fn a_stream_on_one_instance_hears_writes_through_another(app: TestApp) {
    let other = app.another_instance(&[]).await;
    let t = token("alice");
    let mut events = Events::open(&other, &t, None).await;
    let task = app.new_task(&t, json!({"title": "via A"})).await;
    assert_eq!(events.next().await.data["task"], task);
    let patched = app
        .patch_task(&t, task["id"].as_i64().unwrap(), json!({"title": "again"}))
        .await;
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(events.next().await.data["task"], patched);
}

/// A graceful shutdown ends open streams at once instead of waiting for
/// its grace period (10 s) to run out.
async fn shutdown_ends_open_streams(mut app: TestApp) {
    let t = token("alice");
    let mut events = Events::open(&app, &t, None).await;
    let stopping = tokio::spawn(async move {
        let started = std::time::Instant::now();
        app.stop().await;
        started.elapsed()
    });
    assert!(events.ends_within(EXPECT).await, "the stream ends");
    let took = stopping.await.unwrap();
    assert!(
        took < Duration::from_secs(9),
        "shutdown waited {took:?}: the grace period ran out"
    );
}

/// A quiet stream still carries a comment line at least every 15 s
/// (API.md), so proxies with an idle timeout keep it open.
async fn a_quiet_stream_carries_keep_alive_comments(app: TestApp) {
    let mut events = Events::open(&app, &token("alice"), None).await;
    assert_eq!(events.next_within(Duration::from_secs(16)).await, None);
    assert!(events.comments >= 1, "no keep-alive comment within 16 s");
}

/// `/metrics` counts the instance's open streams, and forgets closed ones.
async fn open_streams_are_counted_in_metrics(app: TestApp) {
    let open = || app.metric("event_streams_open");
    assert_eq!(open().await, Some(0.0));
    let alices = Events::open(&app, &token("alice"), None).await;
    let bobs = Events::open(&app, &token("bob"), None).await;
    assert_eq!(open().await, Some(2.0));
    drop((alices, bobs));
    crate::helpers::wait_until(EXPECT, "closed streams are no longer counted", || async {
        open().await == Some(0.0)
    })
    .await;
}

/// A write wakes only its own user's streams: bob's stream does not read the
/// feed while alice writes (SQLite's watcher sees every commit of the file,
/// this process's too; PostgreSQL's sweep reads every streaming user's
/// counter). Watched for longer than the 1 s in which other writers'
/// changes must arrive, so a wake-up would have come by then.
async fn a_write_wakes_only_its_users_streams(app: TestApp) {
    let reads = || async { app.metric("event_stream_reads_total").await.unwrap() };
    let mut bobs = Events::open(&app, &token("bob"), None).await;
    let before = reads().await;
    for i in 0..3 {
        app.new_task(&token("alice"), json!({"title": format!("alice {i}")}))
            .await;
    }
    let watched = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < watched {
        assert_eq!(
            reads().await,
            before,
            "bob's stream read after alice's write"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let own = app.new_task(&token("bob"), json!({"title": "bob's"})).await;
    assert_eq!(bobs.next().await.data["task"], own);
    assert!(reads().await > before, "the metric counts bob's read");
}

/// A validly signed token whose `exp` lies beyond what a clock can add
/// to now still opens a stream that works (it once overflowed: a 500).
async fn a_far_off_expiry_opens_a_working_stream(app: TestApp) {
    let far = sign(&json!({"sub": "alice", "exp": 10_000_000_000_000_000_000u64}));
    let mut events = Events::open(&app, &far, None).await;
    let task = app.new_task(&far, json!({"title": "far"})).await;
    assert_eq!(events.next().await.data["task"], task);
}

crate::both_backends!(
    a_far_off_expiry_opens_a_working_stream,
    a_write_wakes_only_its_users_streams,
    open_streams_are_counted_in_metrics,
    a_quiet_stream_carries_keep_alive_comments,
    shutdown_ends_open_streams,
    writes_arrive_as_events,
    a_resumed_stream_has_no_gap_and_no_duplicate,
    another_users_stream_receives_nothing,
    a_stream_on_one_instance_hears_writes_through_another,
);

/// Tests that configure their own server.
mod configured {
    use super::*;
    use crate::helpers::Backend;

    async fn streams_are_capped_and_tokens_checked(backend: Backend) {
        let Some(app) = TestApp::with_env(
            backend,
            &[
                ("EVENTS_MAX_STREAMS_PER_USER", "2"),
                ("JWT_LEEWAY_SECONDS", "0"),
            ],
        )
        .await
        else {
            return;
        };
        let t = token("alice");
        let _one = Events::open(&app, &t, None).await;
        let two = Events::open(&app, &t, None).await;
        let third = Events::request(&app, &t, None).await;
        assert_problem(third, StatusCode::TOO_MANY_REQUESTS).await;
        // Another user is not affected; a closed stream frees its place.
        let _bob = Events::open(&app, &token("bob"), None).await;
        drop(two);
        crate::helpers::wait_until(EXPECT, "a closed stream frees its place", || async {
            Events::request(&app, &t, None).await.status() == StatusCode::OK
        })
        .await;
        // A bad or outdated token is refused before the stream starts.
        let bad = app
            .req(Method::GET, "/api/v1/events", Some(&t))
            .header("last-event-id", "not-a-token")
            .send()
            .await
            .unwrap();
        let problem = assert_problem(bad, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["errors"][0]["field"], "Last-Event-ID");
        app.new_task(&t, json!({"title": "x"})).await;
        let since = sync(&app, &t, "").await["next_since"]
            .as_str()
            .unwrap()
            .to_owned();
        let deleted = app
            .req(Method::DELETE, "/api/v1/me", Some(&t))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        drop(_one);
        let gone = app
            .req(Method::GET, "/api/v1/events", Some(&t))
            .header("last-event-id", since)
            .send()
            .await
            .unwrap();
        assert_problem(gone, StatusCode::GONE).await;
    }

    /// Over cleartext HTTP/2 with prior knowledge (what a proxy in front may
    /// speak upstream), streams share one connection, receive live events and
    /// end at shutdown without waiting for the grace period (`HTTP2_CLEARTEXT=on`).
    async fn streams_work_over_http2(backend: Backend) {
        let Some(mut app) = TestApp::with_env(backend, &[("HTTP2_CLEARTEXT", "on")]).await else {
            return;
        };
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let (alice, bob) = (token("alice"), token("bob"));
        let mut alices = Events::open_with(&app, &h2, &alice).await;
        let mut bobs = Events::open_with(&app, &h2, &bob).await;
        let task = app.new_task(&alice, json!({"title": "over h2"})).await;
        assert_eq!(task_id(&alices.next().await), task["id"].as_i64().unwrap());
        let created = h2
            .post(format!("{}/api/v1/tasks", app.base))
            .bearer_auth(&bob)
            .json(&json!({"title": "sent over h2"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let created: Value = created.json().await.unwrap();
        assert_eq!(task_id(&bobs.next().await), created["id"].as_i64().unwrap());
        let stopping = tokio::spawn(async move {
            let started = std::time::Instant::now();
            app.stop().await;
            started.elapsed()
        });
        assert!(alices.ends_within(EXPECT).await, "alice's stream ends");
        assert!(bobs.ends_within(EXPECT).await, "bob's stream ends");
        let took = stopping.await.unwrap();
        assert!(
            took < Duration::from_secs(9),
            "shutdown waited {took:?}: the grace period ran out"
        );
    }

    /// Without `HTTP2_CLEARTEXT=on` a connection speaks HTTP/1.1 only.
    async fn http2_is_off_by_default(backend: Backend) {
        let Some(app) = TestApp::new(backend).await else {
            return;
        };
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let refused = h2.get(format!("{}/health", app.base)).send().await;
        assert!(refused.is_err(), "{refused:?}");
        let health = app.req(Method::GET, "/health", None).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }

    async fn a_stream_ends_when_its_token_expires(backend: Backend) {
        let Some(app) = TestApp::with_env(backend, &[("JWT_LEEWAY_SECONDS", "0")]).await else {
            return;
        };
        let short = sign(&json!({"sub": "alice", "exp": now_secs() + 2}));
        let mut events = Events::open(&app, &short, None).await;
        assert!(
            events.ends_within(Duration::from_secs(15)).await,
            "the stream ends when its token expires"
        );
    }

    /// A client that stops reading is disconnected, not buffered for: once
    /// its stream's buffer and its connection's stayed full for
    /// `CLIENT_STALL_TIMEOUT_SECONDS`, the stream ends (its place under
    /// the per-user cap is free again) and the connection is closed.
    async fn a_client_that_stops_reading_is_disconnected(backend: Backend) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let Some(app) = TestApp::with_env(
            backend,
            &[
                ("CLIENT_STALL_TIMEOUT_SECONDS", "1"),
                ("EVENTS_MAX_STREAMS_PER_USER", "1"),
            ],
        )
        .await
        else {
            return;
        };
        let t = token("alice");
        // A reader with a small receive window that reads the response head
        // and nothing after it.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let addr = app.base.trim_start_matches("http://").parse().unwrap();
        let mut stalled = socket.connect(addr).await.unwrap();
        let head = format!(
            "GET /api/v1/events HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {t}\r\n\
             accept: text/event-stream\r\n\r\n"
        );
        stalled.write_all(head.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 512];
            let n = stalled.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the stream closed before its head");
            seen.extend_from_slice(&chunk[..n]);
        }
        assert!(
            seen.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&seen)
        );
        assert_problem(
            Events::request(&app, &t, None).await,
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
        // Large events until every buffer on the way is full and has stayed
        // full for the timeout: the stalled stream's place is then free.
        let large = json!({
            "title": "t".repeat(200),
            "description": "d".repeat(1000),
            "tags": (0..20).map(|i| format!("{i:02}{}", "x".repeat(48))).collect::<Vec<_>>(),
        });
        let started = std::time::Instant::now();
        let mut written = 0;
        loop {
            for _ in 0..25 {
                app.new_task(&t, large.clone()).await;
            }
            written += 25;
            if Events::request(&app, &t, None).await.status() == StatusCode::OK {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the stalled stream still holds its place after {written} events"
            );
        }
        // The connection is closed: reading what the socket holds ends in
        // an end of file or a reset, not in more events.
        let closed = tokio::time::timeout(EXPECT, async {
            let mut chunk = vec![0u8; 65536];
            loop {
                match stalled.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the stalled connection is still open");
    }

    /// The listening connection killed mid-stream: notifications sent
    /// while it reconnects are lost, and the stream still delivers every
    /// change (the sweep of the users' change counters wakes it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_killed_listener_loses_no_event() {
        let Some(app) = TestApp::new(Backend::Postgres).await else {
            return;
        };
        let other = app.another_instance(&[]).await;
        let (direct, schema) = app.pg_schema().expect("a PostgreSQL app");
        let admin = crate::helpers::admin_client(direct).await;
        let listeners = format!("{schema} listener");
        crate::helpers::wait_until(EXPECT, "both instances listen", || async {
            admin
                .query_one(
                    "select count(*) from pg_stat_activity where application_name = $1",
                    &[&listeners],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 2
        })
        .await;
        let t = token("alice");
        let mut events = Events::open(&other, &t, None).await;
        let first = app.new_task(&t, json!({"title": "before"})).await;
        assert_eq!(events.next().await.data["task"], first);
        let killed: i64 = admin
            .query_one(
                "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1) k",
                &[&listeners],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(killed, 2);
        let mut written = Vec::new();
        for i in 0..5 {
            written.push(
                app.new_task(&t, json!({"title": format!("during {i}")}))
                    .await,
            );
        }
        let mut received = Vec::new();
        while received.len() < written.len() {
            received.push(events.next().await.data["task"].clone());
        }
        assert_eq!(received, written);
    }

    /// A change committed with no notification (its writer died before
    /// sending it, or the `NOTIFY` failed): here a write made behind the
    /// server's back, as the server's own PATCH would make it. The stream
    /// still delivers it, from the sweep of the users' change counters.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_change_whose_notification_was_lost_still_arrives() {
        let Some(app) = TestApp::new(Backend::Postgres).await else {
            return;
        };
        let t = token("alice");
        let mut events = Events::open(&app, &t, None).await;
        let task = app.new_task(&t, json!({"title": "before"})).await;
        assert_eq!(events.next().await.data["task"], task);
        let id = task["id"].as_i64().unwrap();
        app.execute(&format!(
            "with s as (update users set sync_seq = sync_seq + 1 where id = 'alice' returning sync_seq) \
             update tasks set title = 'changed quietly', title_lc = 'changed quietly', \
             version = version + 1, updated_at = now(), sync_seq = (select sync_seq from s) \
             where id = {id} and user_id = 'alice'"
        ))
        .await;
        let quiet = events.next().await;
        assert_eq!(quiet.event, "upsert");
        assert_eq!(quiet.data["task"]["id"], id);
        assert_eq!(quiet.data["task"]["title"], "changed quietly");
        assert_eq!(quiet.data["task"]["version"], 2);
    }

    crate::each_backend!(
        streams_work_over_http2,
        http2_is_off_by_default,
        streams_are_capped_and_tokens_checked,
        a_stream_ends_when_its_token_expires,
        a_client_that_stops_reading_is_disconnected,
    );
}
