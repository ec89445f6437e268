//! The domain of vm-system: entities, the rules they obey, the services that
//! apply them, and the ports (traits) through which the services reach stores,
//! JavaScript runtimes and the clock. It knows no adapter: no tokio, poem,
//! sqlx or boa.
//!
//! Layout:
//! - [`ids`]: typed UUID identifiers.
//! - [`error`]: [`DomainError`], one variant per row of SPEC §5's error table.
//! - [`template`], [`session`], [`execution`], [`event`]: the entities.
//! - [`catalog`]: native modules and third-party libraries that can be configured.
//! - [`paths`]: worktree and script path safety.
//! - [`net`]: the `fetch` capability's config (its allow list) as data.
//! - [`node`]: the daemons sharing one database, their leases and capacity.
//! - [`ports`]: store, runtime, library cache and clock traits.
//! - [`token`]: API tokens, scopes, secrets and the caller ([`token::Principal`]).
//! - [`sandbox`]: what a session's processes may touch, as data.
//! - [`services`]: templates, sessions and executions — every business rule.
//! - [`telemetry`]: what executions did, counted as they end (the `metrics`
//!   facade and the same facts for the summary).

pub mod catalog;
pub mod error;
pub mod event;
pub mod execution;
pub mod ids;
pub mod net;
pub mod node;
pub mod paths;
pub mod ports;
pub mod sandbox;
pub mod services;
pub mod session;
pub mod telemetry;
pub mod template;
pub mod token;

pub use error::DomainError;

/// Instants are UTC timestamps everywhere in the domain.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
