//! Turns sqlx failures into [`DomainError`]s at the edge of the crate: a
//! missing parent row becomes the matching not-found error, anything else is
//! logged in full and becomes `Internal`. [`OpenError`] is the one failure
//! that reaches an operator directly: the store could not be opened.

use std::path::PathBuf;

use sqlx::error::ErrorKind;
use vm_domain::DomainError;

/// What went wrong inside the store, kept as the source of `Internal`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("stored {table} row is unreadable: {detail}")]
    CorruptRow { table: &'static str, detail: String },

    #[error("count {value} does not fit a signed 64-bit column")]
    CountTooLarge { value: u64 },

    #[error("event of execution {event_of} passed to finish execution {finishing}")]
    ForeignEvent { event_of: String, finishing: String },
}

/// Why the store could not be opened at start. Each message is one sentence
/// for the operator, naming the file or the server's host and port; none
/// carries a password.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the SQLite database at {}: {reason}", path.display())]
    Sqlite { path: PathBuf, reason: String },

    #[error("invalid PostgreSQL URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with its password replaced by `***`.
        url: String,
        reason: String,
    },

    #[error("cannot reach the PostgreSQL server at {server}: {reason}")]
    Unreachable {
        /// `host:port`, or the unix socket path.
        server: String,
        reason: String,
    },

    #[error("the PostgreSQL server at {server} refused the connection: {reason}")]
    Refused { server: String, reason: String },

    #[error("cannot apply the database migrations to {database}: {reason}")]
    Migrate { database: String, reason: String },
}

impl From<OpenError> for DomainError {
    fn from(err: OpenError) -> Self {
        DomainError::internal(err)
    }
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

/// An error and its sources as one line, `a: b: c`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
