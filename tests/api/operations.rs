//! Operating safely: security headers, CORS, the request time limit, and
//! logs that never contain credentials.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, SECRET, TestApp, assert_problem, postgres_url, token, wait_until};

fn assert_security_headers(response: &reqwest::Response, what: &str) {
    let h = response.headers();
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
}

async fn security_headers_on_api_docs_and_errors(app: TestApp) {
    let t = token("alice");
    let ok = app
        .req(Method::GET, "/api/v1/tasks", Some(&t))
        .send()
        .await
        .unwrap();
    assert_security_headers(&ok, "api");
    assert_eq!(ok.headers()["cache-control"], "no-store");
    let err = app
        .req(Method::GET, "/api/v1/tasks", None)
        .send()
        .await
        .unwrap();
    assert_security_headers(&err, "401");
    assert_eq!(err.headers()["cache-control"], "no-store");
    let missing = app.req(Method::GET, "/nowhere", None).send().await.unwrap();
    assert_security_headers(&missing, "404");
    let docs = app.req(Method::GET, "/docs/", None).send().await.unwrap();
    assert_security_headers(&docs, "docs");
    let csp = docs.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}

async fn cors_allows_only_configured_origins(app: TestApp) {
    let preflight = |origin: &'static str| {
        app.req(Method::OPTIONS, "/api/v1/tasks", None)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, if-match",
            )
            .send()
    };
    let allowed = preflight("http://localhost:3000").await.unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("PATCH"), "{methods}");
    assert_security_headers(&allowed, "preflight");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    assert!(
        other
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    // Actual requests: the allowed origin may read the response and its ETag.
    let t = token("alice");
    let response = app
        .req(Method::GET, "/api/v1/tasks", Some(&t))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("etag") && exposed.contains("location"),
        "{exposed}"
    );
}

/// Every kind of answer (data, errors, health, docs assets, preflights)
/// carries the same headers: never cached, never framed, a CSP.
async fn every_answer_is_uncached_and_unframable(app: TestApp) {
    let t = token("alice");
    let answers = [
        app.req(Method::GET, "/api/v1/tasks", Some(&t)),
        app.req(Method::GET, "/api/v1/tasks", None),
        app.req(Method::GET, "/health", None),
        app.req(Method::GET, "/nowhere", None),
        app.req(Method::GET, "/docs/swagger-ui.css", None),
        app.req(Method::OPTIONS, "/api/v1/tasks", None)
            .header("origin", "http://localhost:3000")
            .header("access-control-request-method", "POST"),
    ];
    for request in answers {
        let response = request.send().await.unwrap();
        let what = response.url().path().to_owned();
        assert_security_headers(&response, &what);
        let h = response.headers();
        assert_eq!(h["cache-control"], "no-store", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    }
}

/// Answers to an origin that is not configured carry no `Access-Control-*`
/// header at all, preflight or not: a stranger learns nothing of the CORS
/// rules (tower-http's CORS layer alone would send some).
async fn strangers_get_no_cors_headers(app: TestApp) {
    let t = token("alice");
    let preflight = app
        .req(Method::OPTIONS, "/api/v1/tasks", None)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    let actual = app
        .req(Method::GET, "/api/v1/tasks", Some(&t))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status(), StatusCode::OK);
    for response in [preflight, actual] {
        let leaked: Vec<_> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
    }
}

crate::both_backends!(
    security_headers_on_api_docs_and_errors,
    cors_allows_only_configured_origins,
    every_answer_is_uncached_and_unframable,
    strangers_get_no_cors_headers
);

/// A request blocked on a database lock past the time limit gets a 503
/// problem promptly, and nothing changes.
async fn time_limit_answers_503(backend: Backend) {
    let Some(app) = TestApp::with_env(backend, &[("REQUEST_TIMEOUT_MS", "400")]).await else {
        return;
    };
    let t = token("alice");
    let id = app.new_task(&t, json!({"title": "locked"})).await["id"]
        .as_i64()
        .unwrap();
    // Another session holds a write lock on the task.
    let guard: Box<dyn std::any::Any + Send> = match backend {
        Backend::Sqlite => {
            let path = app.database_url.trim_start_matches("sqlite://");
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch("begin immediate").unwrap();
            Box::new(conn)
        }
        Backend::Postgres => {
            let (client, connection) =
                tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "begin; select * from tasks where id = {id} for update"
                ))
                .await
                .unwrap();
            Box::new(client)
        }
    };
    let started = Instant::now();
    let response = app.patch_task(&t, id, json!({"title": "changed"})).await;
    let elapsed = started.elapsed();
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        elapsed < Duration::from_secs(4),
        "answered after {elapsed:?}"
    );
    drop(guard);
    let task: serde_json::Value = app.get_task(&t, id).await.json().await.unwrap();
    assert_eq!(task["title"], "locked");
    assert_eq!(task["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_answers_503_on_sqlite() {
    time_limit_answers_503(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_answers_503_on_postgres() {
    if postgres_url().is_some() {
        time_limit_answers_503(Backend::Postgres).await;
    }
}

/// Runs the real binary with debug logs in both formats, sends good and bad
/// tokens, and checks that no log line carries a token, the secret, or an
/// Authorization header — and that request lines carry the request id.
#[tokio::test]
async fn logs_never_contain_tokens_or_the_secret() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let (child, base) = crate::helpers::spawn_binary(
            dir.path(),
            &[
                ("RUST_LOG", "trace,hyper=info,h2=info"),
                ("LOG_FORMAT", format),
            ],
        )
        .await;
        let client = reqwest::Client::new();
        let good = token("log-user");
        let bad = format!("{}x", token("log-user"));
        let wrong_secret = crate::helpers::sign_with(
            &json!({"sub": "u", "exp": crate::helpers::now_secs() + 60}),
            jsonwebtoken::Algorithm::HS256,
            "some-other-secret-that-is-long-enough!!",
        );
        for t in [&good, &bad, &wrong_secret] {
            client
                .get(format!("{base}/api/v1/tasks"))
                .bearer_auth(t)
                .header("x-request-id", "log-check-1")
                .send()
                .await
                .unwrap();
            client
                .post(format!("{base}/api/v1/tasks"))
                .bearer_auth(t)
                .json(&json!({"title": "logged?"}))
                .send()
                .await
                .unwrap();
        }
        client
            .get(format!("{base}/api/v1/tasks?access_token={good}"))
            .send()
            .await
            .unwrap();
        unsafe_kill(child.id());
        let output = child.wait_with_output().unwrap();
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(logs.lines().count() > 10, "expected logs:\n{logs}");
        for (what, needle) in [
            ("token", good.as_str()),
            ("bad token", bad.as_str()),
            ("token signature", good.rsplit('.').next().unwrap()),
            ("token payload", good.split('.').nth(1).unwrap()),
            ("foreign token", wrong_secret.as_str()),
            ("secret", SECRET),
        ] {
            assert!(!logs.contains(needle), "{format} logs contain the {what}");
        }
        assert!(
            !logs.to_lowercase().contains("authorization: bearer"),
            "{format} logs contain a header"
        );
        assert!(
            logs.lines()
                .any(|l| l.contains("log-check-1") && l.contains("request")),
            "{format}: request lines carry the request id"
        );
        if format == "json" {
            for line in logs.lines().filter(|l| l.starts_with('{')) {
                serde_json::from_str::<serde_json::Value>(line).expect("each JSON log line parses");
            }
        }
    }
}

/// SIGTERM (graceful shutdown) so the child flushes its logs.
fn unsafe_kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// One user's burst is spent: 429 with Retry-After and RateLimit-*; another
/// user is unaffected; failed authentication is throttled per IP.
#[tokio::test]
async fn rate_limits_per_user_and_per_ip() {
    let app = TestApp::with_env(
        Backend::Sqlite,
        &[
            ("RATE_LIMIT_PER_SECOND", "1"),
            ("RATE_LIMIT_BURST", "5"),
            ("RATE_LIMIT_IP_PER_SECOND", "1"),
            ("RATE_LIMIT_IP_BURST", "3"),
        ],
    )
    .await
    .unwrap();
    let alice = token("alice");
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            app.req(Method::GET, "/api/v1/tasks", Some(&alice))
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    let limited = app
        .req(Method::GET, "/api/v1/tasks", Some(&alice))
        .send()
        .await
        .unwrap();
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry));
    assert_eq!(limited.headers()["ratelimit-limit"], "5");
    assert_eq!(limited.headers()["ratelimit-remaining"], "0");
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    // Bob is unaffected.
    let bob = app
        .req(Method::GET, "/api/v1/tasks", Some(&token("bob")))
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status(), StatusCode::OK);
    // Unauthenticated guessing from one address: 401 until the IP budget is spent, then 429.
    let mut guesses = Vec::new();
    for i in 0..6 {
        let bad = format!("Bearer guess.{i}.x");
        guesses.push(
            app.req(Method::GET, "/api/v1/tasks", None)
                .header("authorization", bad)
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(&guesses[..3], &[StatusCode::UNAUTHORIZED; 3]);
    assert!(
        guesses[3..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{guesses:?}"
    );
    // A valid user from the same address is not blocked by the IP budget.
    let carol = app
        .req(Method::GET, "/api/v1/tasks", Some(&token("carol")))
        .send()
        .await
        .unwrap();
    assert_eq!(carol.status(), StatusCode::OK);
}

/// `/metrics` shows requests by route template and status, latency, auth
/// failures by reason, rate-limit rejections and the pool.
#[tokio::test]
async fn metrics_count_requests_failures_and_rejections() {
    let app = TestApp::with_env(
        Backend::Sqlite,
        &[
            ("RATE_LIMIT_PER_SECOND", "1"),
            ("RATE_LIMIT_BURST", "5"),
            ("RATE_LIMIT_IP_PER_SECOND", "1"),
            ("RATE_LIMIT_IP_BURST", "3"),
        ],
    )
    .await
    .unwrap();
    let alice = token("alice");
    for _ in 0..7 {
        app.req(Method::GET, "/api/v1/tasks", Some(&alice))
            .send()
            .await
            .unwrap();
    }
    for i in 0..5 {
        app.req(Method::GET, "/api/v1/tasks", None)
            .header("authorization", format!("Bearer guess.{i}.x"))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.req(Method::GET, "/metrics", None).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let ok = r#"http_requests_total{method="GET",route="/api/v1/tasks",status="200"}"#;
    let limited = r#"http_requests_total{method="GET",route="/api/v1/tasks",status="429"}"#;
    assert_eq!(value(ok), 5.0, "{text}");
    assert_eq!(value(limited), 4.0, "{text}");
    assert_eq!(
        value(r#"http_request_duration_seconds_count{route="/api/v1/tasks"}"#),
        12.0
    );
    assert_eq!(
        value(r#"auth_failures_total{reason="token is malformed"}"#),
        5.0,
        "{text}"
    );
    assert_eq!(value(r#"rate_limited_total{scope="user"}"#), 2.0, "{text}");
    assert_eq!(value(r#"rate_limited_total{scope="ip"}"#), 2.0, "{text}");
    assert!(
        text.contains(r#"db_pool_connections{state="idle"}"#),
        "{text}"
    );
    assert!(!text.contains("guess."), "no raw paths or tokens in labels");
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = TestApp::with_env(Backend::Sqlite, &[("METRICS_TOKEN", "scrape-secret-123")])
        .await
        .unwrap();
    let denied = app.req(Method::GET, "/metrics", None).send().await.unwrap();
    assert_problem(denied, StatusCode::UNAUTHORIZED).await;
    let wrong = app
        .req(Method::GET, "/metrics", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_problem(wrong, StatusCode::UNAUTHORIZED).await;
    let ok = app
        .req(Method::GET, "/metrics", Some("scrape-secret-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

/// A client that trickles its headers is disconnected after the header read
/// timeout; a normal request on another connection is unaffected.
#[tokio::test]
async fn slowloris_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_env(Backend::Sqlite, &[("HEADER_READ_TIMEOUT_MS", "500")])
        .await
        .unwrap();
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let mut closed = false;
    // Keep trickling a header byte now and then; the server must hang up.
    for _ in 0..40 {
        let _ = slow.write_all(b"X").await;
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {} // a 408 answer before closing is fine
            Err(_) => {}
        }
    }
    assert!(closed, "the slow connection was not closed");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        started.elapsed()
    );
    let ok = app.req(Method::GET, "/health", None).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

/// Beyond MAX_CONNECTIONS, new connections are closed without an answer;
/// when one closes, there is room again.
#[tokio::test]
async fn connection_cap_refuses_extra_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_env(Backend::Sqlite, &[("MAX_CONNECTIONS", "2")])
        .await
        .unwrap();
    let addr = app.base.trim_start_matches("http://").to_owned();
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(request).await.unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = extra.write_all(request).await;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the third connection must be closed unanswered");
    drop(held.pop());
    // The server frees the slot when it sees the close: wait for that.
    wait_until(
        Duration::from_secs(10),
        "a new connection is answered after one closed",
        || async {
            let Ok(mut again) = tokio::net::TcpStream::connect(&addr).await else {
                return false;
            };
            answers_health(&mut again).await
        },
    )
    .await;
}

/// Opens a connection to `addr` from the loopback address `from` (Linux
/// routes all of 127.0.0.0/8 to loopback, so each is a distinct client IP).
async fn connect_from(from: [u8; 4], addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind((std::net::Ipv4Addr::from(from), 0).into())
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether `GET /health` on `conn` is answered 200 (false when the server
/// closed the connection unanswered).
async fn answers_health(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if conn
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].starts_with(b"HTTP/1.1 200"),
        _ => false,
    }
}

/// Beyond MAX_CONNECTIONS_PER_IP, new connections from that IP are closed
/// unanswered while other IPs are served; when one closes, there is room.
#[tokio::test]
async fn per_ip_connection_cap_refuses_only_that_ip() {
    let app = TestApp::with_env(Backend::Sqlite, &[("MAX_CONNECTIONS_PER_IP", "4")])
        .await
        .unwrap();
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let (here, other) = ([127, 0, 0, 1], [127, 0, 0, 2]);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = connect_from(here, addr).await;
        assert!(answers_health(&mut conn).await);
        held.push(conn);
    }
    let mut fifth = connect_from(here, addr).await;
    assert!(
        !answers_health(&mut fifth).await,
        "a fifth connection from 127.0.0.1 must be closed unanswered"
    );
    let mut elsewhere = connect_from(other, addr).await;
    assert!(
        answers_health(&mut elsewhere).await,
        "127.0.0.2 is not affected"
    );
    drop(held.pop());
    // The server frees the slot when it sees the close: wait for that.
    wait_until(
        Duration::from_secs(10),
        "there is room after a connection closed",
        || async { answers_health(&mut connect_from(here, addr).await).await },
    )
    .await;
    for conn in &mut held {
        assert!(answers_health(conn).await, "held connections keep working");
    }
}

/// A client that trickles its request body is answered 503 once the request
/// time limit passes, instead of holding the connection.
#[tokio::test]
async fn slow_bodies_hit_the_request_time_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_env(Backend::Sqlite, &[("REQUEST_TIMEOUT_MS", "500")])
        .await
        .unwrap();
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let t = token("slow-body");
    let head = format!(
        "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\":"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(app.list_tasks(&t, "").await["items"], json!([]));
}

/// Reads one HTTP/1.1 response (status line, headers, `Content-Length`
/// body) from a keep-alive connection; returns the status code.
async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(conn: &mut R) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = String::new();
    conn.read_line(&mut line).await.unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await.unwrap();
    status
}

/// `GET /metrics` as text (no token configured).
async fn metrics_text(app: &TestApp) -> String {
    let response = app.req(Method::GET, "/metrics", None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// 2,000 requests with unique 4 KB method names (on keep-alive connections)
/// add one `OTHER` series to `/metrics`, not 2,000 series of 4 KB labels.
#[tokio::test]
async fn unknown_methods_share_one_metrics_series() {
    use tokio::io::AsyncWriteExt;
    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 500;
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let addr = app.base.trim_start_matches("http://").to_owned();
    // Every series the flood could touch exists before the baseline: /health
    // (its latency histogram) and /metrics itself.
    app.req(Method::GET, "/health", None).send().await.unwrap();
    metrics_text(&app).await;
    let before = metrics_text(&app).await;
    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        let addr = addr.clone();
        clients.push(tokio::spawn(async move {
            let conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut conn = tokio::io::BufReader::new(conn);
            for i in 0..PER_CONNECTION {
                let method = format!("M{c}{i:07}{}", "X".repeat(4096));
                let request = format!("{method} /health HTTP/1.1\r\nHost: x\r\n\r\n");
                conn.get_mut().write_all(request.as_bytes()).await.unwrap();
                assert_eq!(read_response(&mut conn).await, 405);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let after = metrics_text(&app).await;
    assert!(
        after.len() < before.len() + 2048,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    let other: Vec<_> = after
        .lines()
        .filter(|l| l.starts_with("http_requests_total") && l.contains(r#"method="OTHER""#))
        .collect();
    assert_eq!(
        other,
        [r#"http_requests_total{method="OTHER",route="/health",status="405"} 2000"#]
    );
}

/// The log line of a request with an unknown method names it `OTHER`: a
/// client cannot write kilobytes of its choosing into every log line.
#[tokio::test]
async fn logs_name_unknown_methods_other() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = crate::helpers::spawn_binary(
        dir.path(),
        &[
            ("RUST_LOG", "trace,hyper=info,h2=info"),
            ("LOG_FORMAT", "json"),
        ],
    )
    .await;
    let method = format!("FLOOD{}", "Q".repeat(4096));
    let mut conn = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!(
        "{method} /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: odd-method-1\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 405"));
    unsafe_kill(child.id());
    let output = child.wait_with_output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!logs.contains("FLOOD"), "the raw method is logged");
    assert!(
        logs.lines().any(|l| l.contains("odd-method-1")
            && l.contains(r#""method":"OTHER""#)
            && l.contains(r#""status":405"#)),
        "{logs}"
    );
}

/// The `/metrics` guard takes the `Bearer` scheme in any case, and wrong
/// or missing tokens spend the client address's failed-auth budget (429
/// once it is spent, counted in the metrics), as wrong API tokens do.
#[tokio::test]
async fn metrics_token_guard_is_case_insensitive_and_throttles_guesses() {
    let app = TestApp::with_env(
        Backend::Sqlite,
        &[
            ("METRICS_TOKEN", "scrape-secret-123"),
            ("RATE_LIMIT_IP_PER_SECOND", "1"),
            ("RATE_LIMIT_IP_BURST", "3"),
        ],
    )
    .await
    .unwrap();
    let scrape = |authorization: &str| {
        app.req(Method::GET, "/metrics", None)
            .header("authorization", authorization.to_owned())
            .send()
    };
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let ok = scrape(&format!("{scheme} scrape-secret-123"))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "{scheme}");
    }
    let mut guesses = Vec::new();
    for guess in ["scrape-secret-12", "scrape-secret-1234", "x", "y", "z"] {
        guesses.push(scrape(&format!("Bearer {guess}")).await.unwrap());
    }
    let statuses: Vec<_> = guesses.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ]
    );
    let first = guesses.remove(0);
    assert_eq!(
        first.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_problem(first, StatusCode::UNAUTHORIZED).await;
    assert_problem(guesses.pop().unwrap(), StatusCode::TOO_MANY_REQUESTS).await;
    // The right token still works from another budget's point of view: the
    // IP budget only gates failures, so the scrape itself is not refused.
    let text = scrape("Bearer scrape-secret-123")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"auth_failures_total{reason="the metrics token is invalid"} 5"#),
        "{text}"
    );
    assert!(
        text.contains(r#"rate_limited_total{scope="ip"} 2"#),
        "{text}"
    );
}
