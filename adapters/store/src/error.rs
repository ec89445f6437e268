//! Turns sqlx failures into [`DomainError`]s at the edge of the crate: a
//! missing parent row becomes the matching not-found error, anything else is
//! logged in full and becomes `Internal`.

use std::path::PathBuf;

use sqlx::error::ErrorKind;
use vm_domain::DomainError;

/// What went wrong inside the store, kept as the source of `Internal`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("cannot open the SQLite database at {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("cannot apply the database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    #[error("stored {table} row is unreadable: {detail}")]
    CorruptRow { table: &'static str, detail: String },

    #[error("count {value} does not fit a signed 64-bit column")]
    CountTooLarge { value: u64 },

    #[error("event of execution {event_of} passed to finish execution {finishing}")]
    ForeignEvent { event_of: String, finishing: String },
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, source = ?std::error::Error::source(&err), "store failure");
        DomainError::internal(err)
    }
}

/// An unexpected database error: logged, then `Internal`.
pub(crate) fn db_error(err: sqlx::Error) -> DomainError {
    tracing::error!(error = %err, "database error");
    DomainError::internal(err)
}

/// Like [`db_error`], except that a foreign-key violation (the parent row is
/// gone) becomes `not_found()`.
pub(crate) fn missing_parent_or_db_error(err: sqlx::Error, not_found: impl FnOnce() -> DomainError) -> DomainError {
    match &err {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation => not_found(),
        _ => db_error(err),
    }
}
