//! Criterion micro-benchmarks of the per-request CPU work that is not I/O:
//!
//! - bearer-token verification through the server's own `Verifier`: HS256
//!   (the shared secret) and EdDSA (a JWKS key, served by a local axum server
//!   from the test fixture `tests/fixtures/keys/jwks.json` and cached);
//! - task JSON serialisation with serde_json, as the service writes it (one
//!   task, and a 20-task list page);
//! - list query-string parsing.
//!
//! Run with `cargo bench --bench micro` (add `-- --quick` for a fast pass).
//! `Verifier::verify` is async but never waits once the key is cached, so it
//! is driven with `futures::executor::block_on` (a few ns of overhead).

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tasks_api::{
    auth::{ClaimRules, Jwks, Verifier, mint_hs256},
    config::Secret,
    domain::{
        listing::{ListQuery, V1_LIMITS},
        task::{Priority, Task},
    },
};

const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";
const JWKS: &str = include_str!("../tests/fixtures/keys/jwks.json");
const ED25519_PEM: &[u8] = include_bytes!("../tests/fixtures/keys/ed25519.pem");

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serves the fixture JWKS on a loopback port and returns a verifier that
/// knows both the HS secret and the (already fetched) JWKS keys. The runtime
/// is returned so the server lives as long as the benchmark.
fn verifier() -> (tokio::runtime::Runtime, Verifier) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let jwks = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    JWKS,
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let jwks = Arc::new(
            Jwks::new(
                format!("http://{addr}/jwks.json"),
                Duration::from_secs(5),
                Duration::from_secs(10),
            )
            .expect("JWKS client"),
        );
        assert!(
            jwks.refresh().await,
            "the fixture JWKS could not be fetched"
        );
        jwks
    });
    let verifier = Verifier::new(
        Some(&Secret::new(SECRET)),
        ClaimRules::default(),
        Some((jwks, ClaimRules::default())),
        Duration::from_secs(60),
    );
    (runtime, verifier)
}

fn eddsa_token() -> String {
    let now = unix_now();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("test-eddsa".to_owned());
    let claims = json!({
        "sub": "bench-user",
        "email": "bench@example.com",
        "name": "Bench User",
        "iat": now,
        "exp": now + 3600,
    });
    let key = EncodingKey::from_ed_pem(ED25519_PEM).expect("fixture Ed25519 key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign EdDSA token")
}

fn token_verification(c: &mut Criterion) {
    let (_runtime, verifier) = verifier();
    let hs256 = mint_hs256(
        &Secret::new(SECRET),
        "bench-user",
        Some("bench@example.com"),
        Some("Bench User"),
        Duration::from_secs(3600),
    )
    .expect("mint HS256 token");
    let eddsa = eddsa_token();
    // Both must verify, or the benchmark would time the error path.
    for token in [&hs256, &eddsa] {
        let who = block_on(verifier.verify(token)).expect("bench token verifies");
        assert_eq!(who.sub, "bench-user");
    }
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    // First sighting: signature and claims.
    group.bench_function("hs256", |b| {
        b.iter(|| block_on(verifier.verify_uncached(black_box(&hs256))))
    });
    group.bench_function("eddsa_jwks", |b| {
        b.iter(|| block_on(verifier.verify_uncached(black_box(&eddsa))))
    });
    // Every later request with the same token: the remembered identity.
    group.bench_function("hs256_seen_before", |b| {
        b.iter(|| block_on(verifier.verify(black_box(&hs256))))
    });
    group.bench_function("eddsa_jwks_seen_before", |b| {
        b.iter(|| block_on(verifier.verify(black_box(&eddsa))))
    });
    group.finish();
}

fn sample_task(id: i64) -> Task {
    let created = Utc
        .with_ymd_and_hms(2026, 11, 1, 8, 30, 0)
        .single()
        .expect("valid date")
        + chrono::Duration::microseconds(123_456 + id);
    Task {
        id,
        user_id: "user-0042".to_owned(),
        title: format!("Buy milk and call the dentist #{id}"),
        description: Some("Semi-skimmed, two litres; ask about the Tuesday slot.".to_owned()),
        completed: id % 3 == 0,
        priority: Priority::High,
        tags: vec!["home".to_owned(), "errands".to_owned()],
        due_date: Some(created + chrono::Duration::days(3)),
        completed_at: (id % 3 == 0).then_some(created + chrono::Duration::hours(5)),
        created_at: created,
        updated_at: created + chrono::Duration::hours(5),
        version: 3,
    }
}

fn task_serialisation(c: &mut Criterion) {
    let task = sample_task(1);
    let page: Vec<Task> = (1..=20).map(sample_task).collect();
    let mut group = c.benchmark_group("serialise");
    let one = serde_json::to_vec(&task).expect("serialise task");
    group.throughput(Throughput::Bytes(one.len() as u64));
    group.bench_function("task", |b| b.iter(|| serde_json::to_vec(black_box(&task))));
    let body = json!({ "items": &page, "next_cursor": null });
    let many = serde_json::to_vec(&body).expect("serialise page");
    group.throughput(Throughput::Bytes(many.len() as u64));
    group.bench_function("page_of_20", |b| {
        b.iter(|| serde_json::to_vec(black_box(&page)))
    });
    group.finish();
}

fn query_parsing(c: &mut Criterion) {
    let raw = "status=pending&tag=a&tag=b&q=milk&sort=-due_date&limit=50";
    assert!(ListQuery::parse(Some(raw), V1_LIMITS, false).is_ok());
    c.bench_function("list_query_parse", |b| {
        b.iter(|| ListQuery::parse(black_box(Some(raw)), V1_LIMITS, false).is_ok())
    });
}

criterion_group!(
    benches,
    token_verification,
    task_serialisation,
    query_parsing
);
criterion_main!(benches);
