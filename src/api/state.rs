//! The state every handler and extractor receives.

use std::{sync::Arc, time::Duration};

use crate::{
    auth::{KnownUsers, Verifier},
    config::Secret,
    db::Store,
    domain::{changes::SyncKey, listing::CursorKey},
    metrics::Metrics,
    rate_limit::RateLimits,
};

/// Everything a handler may need. Cloned for every request (axum's `State`
/// and each middleware take it by value), so it is one reference count, not
/// one per field: measured, cloning and dropping the field-by-field version
/// (five `Arc`s and an owned secret) cost ~3% of the server's CPU per list.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state of one application, shared by every request it serves.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of `AppState`.
pub struct Shared {
    /// The storage backend chosen at start-up.
    pub store: Arc<dyn Store>,
    /// Token verification keys and rules.
    pub verifier: Arc<Verifier>,
    /// Which users are already in the database with which claims.
    pub known_users: Arc<KnownUsers>,
    /// Signs list cursors.
    pub cursor_key: CursorKey,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// How long after its start a request's storage calls must have ended
    /// (three quarters of `REQUEST_TIMEOUT_MS`, see `api/deadline.rs`).
    pub storage_budget: Duration,
    /// Per-user and per-IP request budgets.
    pub rate_limits: Arc<RateLimits>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Bearer token guarding `/metrics`, when configured.
    pub metrics_token: Option<Secret>,
    /// Signs sync tokens (the change feed's `next_since`, event ids).
    pub sync_key: SyncKey,
    /// How long tombstones are kept; an older sync token answers 410.
    pub changes_retention: Duration,
    /// Most open event streams per user.
    pub events_max_streams_per_user: usize,
}
