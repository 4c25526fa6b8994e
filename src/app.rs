//! Assembly: shared state, the middleware stack, and the server's lifecycle.
//! `Application::build` binds the listener and connects the database, so
//! tests can start the real server on port 0 and learn the port it got.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;

use crate::{
    api::{self, AppState, Shared},
    auth::{ClaimRules, Jwks, KnownUsers, Verifier, refresh_forever},
    config::{Config, Secret},
    db::{self, Store},
    domain::{changes::SyncKey, listing::CursorKey, time},
    error::ApiError,
    metrics::Metrics,
    rate_limit::RateLimits,
};

/// The middleware stack, re-exported where the rest of the assembly lives.
pub use crate::middleware::with_middleware;

/// How many users' profiles the auth layer remembers (see `KnownUsers`).
const KNOWN_USERS_CAPACITY: usize = 100_000;
/// Longest wait for the JWKS endpoint.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often expired idempotency keys are deleted.
const IDEMPOTENCY_PURGE_EVERY: Duration = Duration::from_secs(600);

/// A built server: bound, connected, migrated, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    local_addr: SocketAddr,
    jwks: Option<(Arc<Jwks>, Duration)>,
    limits: crate::server::ConnectionLimits,
}

impl Application {
    /// Connects and migrates the database, then binds `HOST:PORT`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = db::connect(&db_settings(&config)).await?;
        let secret = config.auth_secret.clone().unwrap_or_else(|| {
            tracing::warn!("no BETTER_AUTH_SECRET: list cursors are signed with a per-process key and do not survive a restart");
            Secret::new(random_secret())
        });
        install_crypto_provider();
        let jwks = match &config.jwks_url {
            Some(url) => Some(Arc::new(
                Jwks::new(
                    url.clone(),
                    JWKS_FETCH_TIMEOUT,
                    config.jwks_refetch_interval,
                )
                .context("could not set up the JWKS client")?,
            )),
            None => None,
        };
        let jwks_rules = ClaimRules {
            issuer: config.jwks_issuer.clone(),
            audience: config.jwks_audience.clone(),
        };
        let state = AppState::new(Shared {
            store,
            verifier: Arc::new(Verifier::new(
                config.auth_secret.as_ref(),
                ClaimRules {
                    issuer: config.jwt_issuer.clone(),
                    audience: config.jwt_audience.clone(),
                },
                jwks.clone().map(|j| (j, jwks_rules)),
                config.jwt_leeway,
            )),
            known_users: Arc::new(KnownUsers::new(KNOWN_USERS_CAPACITY)),
            cursor_key: CursorKey::derive(secret.expose().as_bytes()),
            idempotency_ttl: config.idempotency_ttl,
            storage_budget: config.request_timeout * 3 / 4,
            rate_limits: Arc::new(RateLimits::new(
                config.rate_limit_per_second,
                config.rate_limit_burst,
                config.ip_rate_limit_per_second,
                config.ip_rate_limit_burst,
            )),
            metrics: Arc::new(Metrics::new()),
            metrics_token: config.metrics_token.clone(),
            sync_key: SyncKey::derive(secret.expose().as_bytes()),
            changes_retention: config.changes_retention,
            events_max_streams_per_user: config.events_max_streams_per_user,
        });
        let router = router(state.clone(), &config);
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            router,
            state,
            local_addr,
            jwks: jwks.map(|j| (j, config.jwks_cache_ttl)),
            limits: crate::server::ConnectionLimits {
                header_read_timeout: config.header_read_timeout,
                stall_timeout: config.client_stall_timeout,
                max_connections: config.max_connections,
                max_connections_per_ip: config.max_connections_per_ip,
                http2_cleartext: config.http2_cleartext,
                shutdown_grace: Duration::from_secs(10),
            },
        })
    }

    /// The address actually bound (the real port when PORT=0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store this application serves from (tests inspect it directly).
    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let purge = tokio::spawn(purge_idempotency_keys(self.state.clone()));
        let tombstones = tokio::spawn(purge_tombstones(self.state.clone()));
        let store = self.state.store.clone();
        let relay = tokio::spawn(async move { store.relay_other_writers().await });
        // Event streams end at the shutdown signal, so they do not hold the
        // graceful shutdown up until its grace period runs out.
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            state.store.signals().close();
        };
        let limits = tokio::spawn(crate::rate_limit::housekeeping_forever(
            self.state.rate_limits.clone(),
        ));
        // Keys are fetched in the background: an auth server that is down
        // at start-up does not stop us from serving HS tokens and retrying.
        let refresh = self
            .jwks
            .map(|(jwks, ttl)| tokio::spawn(refresh_forever(jwks, ttl)));
        crate::server::serve(self.listener, self.router, self.limits, shutdown).await;
        purge.abort();
        tombstones.abort();
        relay.abort();
        limits.abort();
        if let Some(refresh) = refresh {
            refresh.abort();
        }
        Ok(())
    }
}

/// What the storage layer needs of the configuration. `db` takes this
/// rather than `Config`, so it depends on nothing above it.
pub fn db_settings(config: &Config) -> db::Settings {
    db::Settings {
        database_url: config.database_url.expose().to_owned(),
        db_pool_size: config.db_pool_size,
        db_acquire_timeout: config.db_acquire_timeout,
        db_startup_timeout: config.db_startup_timeout,
        db_prepared_statements: config.db_prepared_statements,
        db_shared_read_connections: config.db_shared_read_connections,
        request_timeout: config.request_timeout,
        database_listen_url: config
            .database_listen_url
            .as_ref()
            .map(|url| url.expose().to_owned()),
    }
}

/// Makes ring the process-wide rustls provider (idempotent). Every TLS
/// client here also names its provider explicitly; this covers clients built
/// with defaults, such as reqwest's.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A fresh random secret, for dev mode and for signing cursors when no
/// shared secret is configured.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn router(state: AppState, config: &Config) -> Router {
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .url(
            "/openapi.json",
            <api::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        )
        .config(
            utoipa_swagger_ui::Config::default()
                // The pasted token lives as long as the page: persisted, it
                // would sit in localStorage for any script on this origin.
                .persist_authorization(false)
                .validator_url("none"),
        );
    let metrics = state.metrics.clone();
    let routes = api::routes()
        .merge(api::mcp::routes(&state, config))
        .route("/", axum::routing::get(home))
        .route("/metrics", axum::routing::get(api::metrics::metrics))
        .merge(docs)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state);
    with_middleware(routes, config, metrics)
}

/// `GET /`: a person who opens the printed address lands on the docs page.
/// 303 (not 301/308): browsers cache permanent redirects for good, and this
/// one is a convenience that may change; 303 also says "look there", not
/// "this resource moved". Not in the OpenAPI document: no API client needs
/// it.
async fn home() -> axum::response::Redirect {
    axum::response::Redirect::to("/docs/")
}

/// How long one purge may run: it is nobody's request, and a minute bounds
/// a statement stuck on a lock without cutting a large purge short.
const PURGE_BUDGET: Duration = Duration::from_secs(60);

async fn purge_idempotency_keys(state: AppState) {
    let mut tick = tokio::time::interval(IDEMPOTENCY_PURGE_EVERY);
    loop {
        tick.tick().await;
        let ttl =
            chrono::Duration::from_std(state.idempotency_ttl).unwrap_or(chrono::Duration::days(1));
        let cutoff = time::now() - ttl;
        let by = db::Deadline::after(PURGE_BUDGET);
        match state.store.purge_idempotency_keys(cutoff, by).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged expired idempotency keys"),
            Err(err) => tracing::warn!(error = %err, "could not purge idempotency keys"),
        }
    }
}

/// How often tombstones past the retention are purged.
const TOMBSTONE_PURGE_EVERY: Duration = Duration::from_secs(600);
/// Tombstones deleted per statement: small, so a purge never holds many
/// row locks or one long transaction.
const TOMBSTONE_BATCH: u32 = 1_000;
/// Extra time a tombstone is kept past the retention: a delete's
/// `deleted_at` is its statement's clock, a little before it committed, and
/// a token issued meanwhile must still see it.
const TOMBSTONE_MARGIN: chrono::Duration = chrono::Duration::hours(1);

async fn purge_tombstones(state: AppState) {
    let mut tick = tokio::time::interval(TOMBSTONE_PURGE_EVERY);
    loop {
        tick.tick().await;
        let retention = chrono::Duration::from_std(state.changes_retention)
            .unwrap_or(chrono::Duration::days(30));
        let cutoff = time::now() - retention - TOMBSTONE_MARGIN;
        let mut total = 0;
        loop {
            let by = db::Deadline::after(PURGE_BUDGET);
            match state
                .store
                .purge_tombstones(cutoff, TOMBSTONE_BATCH, by)
                .await
            {
                Ok(n) => {
                    total += n;
                    if n < u64::from(TOMBSTONE_BATCH) {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not purge tombstones");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(deleted = total, "purged expired tombstones");
        }
    }
}
