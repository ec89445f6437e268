//! vm-store: the store ports of `vm-domain` (templates, sessions, executions)
//! on SQLite through sqlx, with embedded migrations. The services never see
//! SQL or a row; this crate knows no other adapter.
//!
//! Layout:
//! - [`sqlite`]: [`SqliteStore`], the three ports on one SQLite file; the
//!   schema is `migrations/sqlite/`.
//! - `rows`: row structs and the only conversions from rows into domain types.
//! - `error`: sqlx failures become `DomainError`s here, logged when unexpected.

mod error;
mod rows;
pub mod sqlite;

pub use sqlite::SqliteStore;
