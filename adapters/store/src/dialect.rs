//! What differs between the backends, and only that: how a value is bound
//! ([`Value`]), how a column is read ([`ReadRow`]), how statements run and
//! writes are serialised ([`Dialect`], [`Write`]), and the few statements
//! that have no common SQL. Everything else is in [`crate::store`], once.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use vm_domain::event::Event;
use vm_domain::ports::Connections;
use vm_domain::{DomainError, Timestamp};

/// A statement parameter in domain terms; each dialect binds it in its own
/// column type. Statements number their parameters `$1`, `$2`, … (SQLite
/// reads `$N` as the N-th parameter too).
#[derive(Debug, Clone)]
pub enum Value<'a> {
    /// A `uuid` (PostgreSQL) or its hyphenated text (SQLite), or `NULL`.
    Id(Option<Uuid>),
    Text(Option<&'a str>),
    /// Free text that may hold a NUL character, which a PostgreSQL `text`
    /// cannot: there a JSON string in a `json` column, in SQLite plain text.
    FreeText(Option<&'a str>),
    /// A serialised JSON value: typed `json` in PostgreSQL, text in SQLite.
    Json(Option<String>),
    /// A `timestamptz`, or fixed-width RFC 3339 text in SQLite.
    At(Option<Timestamp>),
    Int(i64),
    Bool(bool),
}

impl<'a> Value<'a> {
    pub fn id(id: impl Into<Uuid>) -> Self {
        Self::Id(Some(id.into()))
    }

    pub fn text(text: &'a str) -> Self {
        Self::Text(Some(text))
    }

    pub fn at(at: Timestamp) -> Self {
        Self::At(Some(at))
    }

    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        Self::Json(Some(crate::rows::json_text(value)))
    }
}

/// Reads the columns of one result row by name. A value of the wrong type
/// or shape is a corrupt row: `Internal`, never a panic.
pub trait ReadRow: Send {
    fn nullable_id<T: From<Uuid>>(&self, column: &str) -> Result<Option<T>, DomainError>;
    fn text(&self, column: &str) -> Result<Option<String>, DomainError>;
    fn free_text(&self, column: &str) -> Result<Option<String>, DomainError>;
    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, DomainError>;
    fn at(&self, column: &str) -> Result<Option<Timestamp>, DomainError>;
    fn int(&self, column: &str) -> Result<i64, DomainError>;
    fn flag(&self, column: &str) -> Result<bool, DomainError>;

    /// An id in a `NOT NULL` column.
    fn id<T: From<Uuid>>(&self, column: &str) -> Result<T, DomainError> {
        self.nullable_id(column)?.ok_or_else(|| crate::error::corrupt_column(column, "NULL in a NOT NULL column"))
    }
}

/// An open write transaction. Dropping it without [`Write::commit`] rolls
/// it back.
#[async_trait]
pub trait Write: Send {
    type Row: ReadRow;
    /// Runs a statement; how many rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, sqlx::Error>;
    async fn fetch_optional(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Option<Self::Row>, sqlx::Error>;
    /// Appends an execution's events, however many, in as few statements as
    /// the backend allows.
    async fn insert_events(&mut self, events: &[Event]) -> Result<(), sqlx::Error>;
    /// Appends template module names, or library names in load order after
    /// the existing ones, skipping names already there.
    async fn insert_names(&mut self, list: NameList, template: Uuid, names: &[&str]) -> Result<(), sqlx::Error>;
    /// Makes the transaction's writes durable; on failure the transaction
    /// is rolled back (or its connection discarded), never left open.
    async fn commit(self) -> Result<(), sqlx::Error>;
}

/// The two name lists of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameList {
    Modules,
    Libraries,
}

/// One backend: a pool of readers, the write path, and its dialect of SQL.
#[async_trait]
pub trait Dialect: Send + Sync + 'static {
    type Row: ReadRow;
    type Write: Write<Row = Self::Row>;

    /// `SELECT` of templates with their module names (byte order) and
    /// library names (load order) as JSON arrays `modules` and `libraries`,
    /// from `templates t`; clauses follow.
    const SELECT_TEMPLATES: &'static str;

    /// Locks a template row (`$1`) until the transaction ends, where a
    /// transaction does not already exclude other writers; `None` when it does.
    const LOCK_TEMPLATE: Option<&'static str>;

    async fn fetch_all(&self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Self::Row>, sqlx::Error>;
    async fn fetch_optional(&self, sql: &str, params: &[Value<'_>]) -> Result<Option<Self::Row>, sqlx::Error>;
    /// Runs one write statement on its own; how many rows it changed.
    async fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, sqlx::Error>;
    /// Starts a write transaction.
    async fn begin(&self) -> Result<Self::Write, sqlx::Error>;
    /// Answers one trivial query, for readiness.
    async fn ping(&self) -> Result<(), sqlx::Error>;
    /// The connections in use, idle and allowed right now, without waiting.
    fn connections(&self) -> Connections;
    /// Waits for running statements and closes every connection.
    async fn close(&self);
}
