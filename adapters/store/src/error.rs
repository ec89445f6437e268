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

    #[error("stored column {column} is unreadable: {detail}")]
    CorruptColumn { column: String, detail: String },

    #[error("count {value} does not fit a signed 64-bit column")]
    CountTooLarge { value: u64 },

    #[error("event of execution {event_of} passed with the events of execution {writing}")]
    ForeignEvent { event_of: String, writing: String },
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

/// A column that does not read as its type: a corrupt row.
pub(crate) fn corrupt_column(column: &str, detail: impl std::fmt::Display) -> DomainError {
    StoreError::CorruptColumn { column: column.to_owned(), detail: detail.to_string() }.into()
}

/// A database error as callers see it: an outage of the store (unreachable,
/// overloaded, out of disk) is `STORE_UNAVAILABLE` or `STORAGE_FULL`, logged
/// as a warning; anything else is logged in full and becomes `Internal`.
pub(crate) fn db_error(err: sqlx::Error) -> DomainError {
    match outage(&err) {
        Some(Outage::Full) => {
            tracing::warn!(error = %err, "store: disk full");
            DomainError::StorageFull { reason: reason(&err), execution_id: None }
        }
        Some(Outage::Unavailable) => {
            tracing::warn!(error = %err, "store unavailable");
            DomainError::StoreUnavailable { reason: reason(&err), execution_id: None }
        }
        None => {
            tracing::error!(error = %err, "database error");
            DomainError::internal(err)
        }
    }
}

/// How a store outage shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    Unavailable,
    Full,
}

/// SQLite's primary result codes that mean the disk or a lock, not a bug:
/// `SQLITE_BUSY` 5, `SQLITE_LOCKED` 6, `SQLITE_IOERR` 10, `SQLITE_FULL` 13,
/// `SQLITE_CANTOPEN` 14, `SQLITE_PROTOCOL` 15.
fn sqlite_outage(code: i64) -> Option<Outage> {
    match code & 0xff {
        13 => Some(Outage::Full),
        5 | 6 | 10 | 14 | 15 => Some(Outage::Unavailable),
        _ => None,
    }
}

/// PostgreSQL's SQLSTATE classes and codes that mean the server, not the
/// statement: `53100` disk full; class `08` connection exceptions, `53`
/// insufficient resources, `57P0x` shutdown or startup, `40001`/`40P01`
/// serialization failure or deadlock (worth a retry).
fn postgres_outage(state: &str) -> Option<Outage> {
    match state {
        "53100" => Some(Outage::Full),
        "40001" | "40P01" => Some(Outage::Unavailable),
        _ if state.starts_with("08") || state.starts_with("53") || state.starts_with("57P") => {
            Some(Outage::Unavailable)
        }
        _ => None,
    }
}

fn outage(err: &sqlx::Error) -> Option<Outage> {
    match err {
        sqlx::Error::Io(io) if io.raw_os_error() == Some(28) => Some(Outage::Full),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => Some(Outage::Unavailable),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.parse::<i64>().ok().and_then(sqlite_outage)
            } else {
                postgres_outage(&code)
            }
        }
        _ => None,
    }
}

/// What callers are told: the driver's words, without a password (sqlx
/// errors carry none).
fn reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::PoolTimedOut => "no database connection was free in time".into(),
        sqlx::Error::PoolClosed => "the store is closed".into(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => chain(other),
    }
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
