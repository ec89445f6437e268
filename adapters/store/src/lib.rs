//! vm-store: the store ports of `vm-domain` (templates, sessions,
//! executions, API tokens) on SQLite or PostgreSQL through sqlx, each with
//! embedded migrations. The services never see SQL or a row; this crate
//! knows no other adapter.
//!
//! Layout:
//! - [`location`]: [`Database`], what `--db` names (a file or a URL), shown
//!   without its password; [`PoolSettings`] from the URL's query.
//! - [`sqlite`]: [`SqliteStore`], the four ports on one SQLite file; the
//!   schema is `migrations/sqlite/` (tokens keep only their secret's digest).
//! - [`postgres`]: [`PostgresStore`], the same on PostgreSQL; the schema is
//!   `migrations/postgres/`.
//! - `rows`: row structs and the only conversions from rows into domain types.
//! - `error`: sqlx failures become `DomainError`s here, logged when
//!   unexpected; [`OpenError`] says why a store did not open.
//! - [`metrics`]: every port call timed, through the `metrics` facade.

pub mod dialect;
mod error;
pub mod location;
pub mod metrics;
pub mod postgres;
mod rows;
pub mod sqlite;
mod store;

use std::sync::Arc;

use vm_domain::ports::{ExecutionStore, NodeStore, SessionStore, StoreHealth, TemplateStore, TokenStore};

pub use error::OpenError;
pub use location::{Database, PoolSettings, PostgresUrl};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use store::{Store, READY_TIMEOUT};

/// The four ports and the health probe of one open store, whichever
/// backend it is.
#[derive(Clone)]
pub struct Stores {
    pub templates: Arc<dyn TemplateStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub executions: Arc<dyn ExecutionStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub health: Arc<dyn StoreHealth>,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Stores {
    /// The ports of `store`, each call timed (see [`metrics`]).
    fn over<D: dialect::Dialect>(store: Store<D>, backend: Backend) -> Self {
        metrics::describe();
        let store = Arc::new(metrics::Measured(Arc::new(store)));
        Self {
            templates: store.clone(),
            sessions: store.clone(),
            executions: store.clone(),
            tokens: store.clone(),
            nodes: store.clone(),
            health: store,
            backend,
        }
    }

    /// Stores pending executions (a few seconds at most), then closes the
    /// connections; later calls fail.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(store) => store.close().await,
            Backend::Postgres(store) => store.close().await,
        }
    }
}

/// Opens the store `database` names and applies pending migrations.
pub async fn open(database: &Database) -> Result<Stores, OpenError> {
    Ok(match database {
        Database::Sqlite(path) => {
            let store = SqliteStore::open(path).await?;
            Stores::over(store.clone(), Backend::Sqlite(store))
        }
        Database::Postgres(url) => {
            let store = PostgresStore::connect(url).await?;
            Stores::over(store.clone(), Backend::Postgres(store))
        }
    })
}
