//! SQLite failures as the HTTP layer sees them: a 503 (retry later) or a
//! 500 (a bug or a corrupt row).

use rusqlite::ErrorCode;

use crate::db::StoreError;

/// Whether `err` means "retry later" (503) rather than a bug (500): another
/// connection kept the lock past the busy timeout, or the file cannot be
/// opened or written right now.
fn is_unavailable(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull,
        )
    )
}

pub(super) fn classify(err: rusqlite::Error) -> StoreError {
    if is_unavailable(&err) {
        StoreError::Unavailable(err.into())
    } else {
        StoreError::Other(err.into())
    }
}

pub(super) fn is_missing_user(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}
