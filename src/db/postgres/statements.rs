//! How statements reach the server: prepared once per connection and reused
//! (a direct connection), or sent as the unnamed statement (a transaction
//! pooler), and the fallback when a prepared statement turns out to be gone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use deadpool_postgres::StatementCache;
use tokio_postgres::{
    Row,
    types::{ToSql, Type},
};

use super::errors::classify;
use crate::db::{
    StoreError, StoreResult,
    sql::{Param, SqlBuilder},
};

/// Most prepared statements kept per connection. The SQL is built from a
/// finite set of shapes (values are always parameters), so this is only a
/// backstop: past it the connection's cache is emptied and refilled.
const STATEMENT_CACHE_CAP: usize = 256;

/// How statements reach the server, and how many went each way.
#[derive(Default)]
pub(super) struct Statements {
    /// Prepared once per connection and reused (a direct connection), or
    /// sent unnamed each time (through a pooler). Turned off for good, for
    /// every connection of the store, once a pooler gives itself away (see
    /// [`Statements::pooler_detected`]).
    prepared: AtomicBool,
    pub(super) run_prepared: AtomicU64,
    pub(super) run_unnamed: AtomicU64,
}

impl Statements {
    pub(super) fn new(prepared: bool) -> Self {
        Self {
            prepared: AtomicBool::new(prepared),
            ..Self::default()
        }
    }

    fn prepared(&self) -> bool {
        self.prepared.load(Ordering::Relaxed)
    }

    /// A prepared statement vanished from its connection (SQLSTATE 26000) or
    /// a name was already taken (42P05): only a transaction pooler that
    /// hands each transaction another server connection does that, so the
    /// URL did not look pooled (an unusual port or host). From now on every
    /// statement goes unnamed; said once, when the switch happens.
    fn pooler_detected(&self, err: &tokio_postgres::Error) {
        if self.prepared.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = %err,
                "a transaction pooler (PgBouncer-like) was detected: prepared statements vanished between \
                 transactions; statements are sent unnamed from now on (set DB_PREPARED_STATEMENTS=off to \
                 say so up front)"
            );
        }
    }
}

/// One connection (or a transaction on it) as the statements see it.
#[derive(Clone, Copy)]
pub(super) struct Conn<'a> {
    pub(super) client: &'a tokio_postgres::Client,
    /// The connection's prepared statements, when they are used at all.
    cache: Option<&'a StatementCache>,
    /// Inside an explicit transaction a failed statement aborts it, so a
    /// stale prepared statement cannot be retried unnamed.
    in_transaction: bool,
    statements: &'a Statements,
}

impl<'a> Conn<'a> {
    pub(super) fn new(object: &'a deadpool_postgres::Object, statements: &'a Statements) -> Self {
        Self {
            client: object,
            cache: statements
                .prepared()
                .then(|| object.statement_cache.as_ref()),
            in_transaction: false,
            statements,
        }
    }

    pub(super) fn transaction(
        tx: &'a deadpool_postgres::Transaction<'_>,
        statements: &'a Statements,
    ) -> Self {
        Self {
            client: tx.client(),
            cache: statements.prepared().then(|| tx.statement_cache.as_ref()),
            in_transaction: true,
            statements,
        }
    }
}

/// The driver's view of one parameter.
fn to_pg(param: &Param) -> (&(dyn ToSql + Sync), Type) {
    match param {
        Param::Text(v) => (v, Type::TEXT),
        Param::Int(v) => (v, Type::INT8),
        Param::SmallInt(v) => (v, Type::INT2),
        Param::Bool(v) => (v, Type::BOOL),
        Param::Timestamp(v) => (v, Type::TIMESTAMPTZ),
        Param::TextList(v) => (v, Type::TEXT_ARRAY),
        Param::IntList(v) => (v, Type::INT8_ARRAY),
        Param::OptText(v) => (v, Type::TEXT),
        Param::OptTimestamp(v) => (v, Type::TIMESTAMPTZ),
    }
}

/// Runs one statement on a connection or in a transaction: through the
/// connection's prepared statement for this SQL when statements are
/// prepared, as the unnamed statement otherwise.
pub(super) async fn query(conn: Conn<'_>, b: &SqlBuilder) -> StoreResult<Vec<Row>> {
    let params: Vec<_> = b.params.iter().map(to_pg).collect();
    if let Some(cache) = conn.cache.filter(|_| !b.plan_each_time) {
        match query_prepared(conn.client, cache, b, &params).await {
            Err(err) if stale_statement(&err) => {
                // Dropped by the server (a pooler swapped the connection) or
                // invalidated by a schema change: forget them all. The
                // statement did not run, so outside a transaction it can be
                // sent again, unnamed; a transaction it aborted is retried
                // whole by its caller (see [`create_on`](super::create::create_on)).
                cache.clear();
                if pooler_gave_away(&err) {
                    conn.statements.pooler_detected(&err);
                } else {
                    tracing::warn!(error = %err, "prepared statement unusable; statement cache cleared");
                }
                if conn.in_transaction {
                    return Err(classify(err));
                }
            }
            other => {
                conn.statements.run_prepared.fetch_add(1, Ordering::Relaxed);
                return other.map_err(classify);
            }
        }
    }
    conn.statements.run_unnamed.fetch_add(1, Ordering::Relaxed);
    conn.client
        .query_typed(&b.sql, &params)
        .await
        .map_err(classify)
}

/// Prepares `b` once per connection (one extra round trip the first time),
/// then binds and executes it: no parsing or planning on the server.
async fn query_prepared(
    client: &tokio_postgres::Client,
    cache: &StatementCache,
    b: &SqlBuilder,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
    if cache.size() >= STATEMENT_CACHE_CAP {
        cache.clear();
    }
    let statement = cache.prepare_typed(client, &b.sql, &types).await?;
    let values: Vec<_> = params.iter().map(|(v, _)| *v).collect();
    client.query(&statement, &values).await
}

/// A prepared statement the server no longer has (26000) or a name it
/// already has (42P05, refused at Parse), or whose plan a schema change
/// invalidated (0A000 "cached plan must not change result type"): in each
/// case nothing ran.
fn stale_statement(err: &tokio_postgres::Error) -> bool {
    pooler_gave_away(err)
        || err.code() == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED)
}

/// The stale-statement errors only a transaction pooler causes: a session
/// keeps its prepared statements, and tokio-postgres never reuses a name.
fn pooler_gave_away(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    err.code().is_some_and(|c| {
        *c == SqlState::INVALID_SQL_STATEMENT_NAME || *c == SqlState::DUPLICATE_PSTATEMENT
    })
}

/// Whether a statement of a transaction failed because its prepared
/// statement was unusable ([`stale_statement`]): nothing of the
/// transaction was stored, and it can be run again from the start.
pub(super) fn aborted_by_stale_statement(err: &StoreError) -> bool {
    let (StoreError::Unavailable(e) | StoreError::Other(e)) = err;
    e.downcast_ref::<tokio_postgres::Error>()
        .is_some_and(stale_statement)
}
