//! PostgreSQL failures as the HTTP layer and an operator see them: a 503
//! (retry later) or a 500 (a bug), errors no retry fixes, and the server's
//! own words instead of the drivers' generic sentences.

use crate::db::StoreError;

/// The answer for writes whose connection was given up on mid-statement.
pub(super) fn outcome_unknown() -> StoreError {
    unavailable(anyhow::anyhow!(
        "the database stopped answering during a write; whether it was stored is unknown"
    ))
}

pub(super) fn unavailable(err: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(err.into())
}

/// Connection-level failures are 503s; statement failures are bugs.
pub(super) fn classify(err: tokio_postgres::Error) -> StoreError {
    let transient = err.is_closed()
        || match err.code() {
            // 08: connection exception; 57P0x: admin shutdown, crash,
            // cannot connect now; 53300: too many connections.
            Some(code) => {
                let code = code.code();
                code.starts_with("08") || code.starts_with("57P") || code == "53300"
            }
            // No SQLSTATE and no server error: the socket or the protocol.
            None => err.as_db_error().is_none(),
        };
    if transient {
        StoreError::Unavailable(err.into())
    } else {
        StoreError::Other(err.into())
    }
}

/// Whether no retry fixes the error: authentication, unknown database or
/// role, and TLS/channel-binding refusals.
pub(super) fn is_permanent(err: &tokio_postgres::Error) -> bool {
    match err.code().map(|c| c.code()) {
        Some(code) if code.starts_with("28") || code == "3D000" => true,
        // PgBouncer reports everything as 08P01, a database missing from its
        // configuration ("no such database: x") or on the server behind it
        // ("database \"x\" does not exist") too.
        Some("08P01") => err.as_db_error().is_some_and(|db| {
            db.message().starts_with("no such database") || db.message().ends_with("does not exist")
        }),
        // Client-side refusals: SCRAM failed, or channel binding was
        // required and the server or TLS could not provide it.
        None => {
            err.to_string().contains("authentication")
                || err.to_string().contains("channel binding")
        }
        _ => false,
    }
}

/// A connection that died under us, as opposed to a server refusing work.
pub(super) fn connection_lost(err: &anyhow::Error) -> bool {
    err.downcast_ref::<tokio_postgres::Error>()
        .is_some_and(|e| {
            e.is_closed()
                || e.code().is_none_or(|c| {
                    c.code().starts_with("08")
                        || c == &tokio_postgres::error::SqlState::ADMIN_SHUTDOWN
                })
        })
}

/// A failure to open a connection as an operator can act on it. deadpool
/// and tokio-postgres each wrap the cause in a generic sentence ("Error
/// occurred while creating a new object: db error"); this gives the
/// server's (or the pooler's) own message and SQLSTATE instead, say
/// `database "x" does not exist (SQLSTATE 3D000)`, or the chain of causes
/// of a network or TLS failure. Neither holds the URL, so never its password.
pub(super) fn describe_pool_error(err: &deadpool_postgres::PoolError) -> String {
    use std::fmt::Write as _;
    let deadpool_postgres::PoolError::Backend(err) = err else {
        return err.to_string();
    };
    if let Some(db) = err.as_db_error() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            let _ = write!(text, "; detail: {detail}");
        }
        if let Some(hint) = db.hint() {
            let _ = write!(text, "; hint: {hint}");
        }
        return text;
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(inner) = cause {
        let _ = write!(text, ": {inner}");
        cause = inner.source();
    }
    text
}

pub(super) fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => classify(err),
        other => unavailable(anyhow::anyhow!("{other}")),
    }
}
