//! Fresh stores for one test: a new database per call, kept alive as long as
//! the [`Harness`], behind the three port traits. SQLite gets a new file;
//! PostgreSQL a new database in the test process's throwaway cluster.

use std::sync::Arc;

use sqlx::migrate::Migrator;
use tempfile::TempDir;
use vm_domain::ports::{ExecutionStore, NodeStore, SessionStore, TemplateStore, TokenStore};
use vm_store::{PostgresStore, PostgresUrl, SqliteStore};

/// The stores of one fresh database, seen only through the ports, plus plain
/// SQL for what the ports cannot show.
pub struct Harness {
    pub templates: Arc<dyn TemplateStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub executions: Arc<dyn ExecutionStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub nodes: Arc<dyn NodeStore>,
    backend: Backend,
}

enum Backend {
    Sqlite {
        store: Arc<SqliteStore>,
        /// Deleted on drop, so it lives as long as the store.
        _dir: TempDir,
    },
    /// The database goes with the cluster when the test process ends.
    Postgres { store: Arc<PostgresStore> },
}

/// A SQLite store on a new file in a new temporary directory.
pub async fn fresh_sqlite() -> Harness {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("vm-system.db")).await.expect("a fresh SQLite store opens");
    let store = Arc::new(store);
    Harness {
        templates: store.clone(),
        sessions: store.clone(),
        executions: store.clone(),
        tokens: store.clone(),
        nodes: store.clone(),
        backend: Backend::Sqlite { store, _dir: dir },
    }
}

/// A PostgreSQL store on a new database, or `None` when this machine has no
/// PostgreSQL server programs and CI does not require them (`vm_testpg`
/// has then warned loudly, once).
pub async fn fresh_postgres() -> Option<Harness> {
    let url = fresh_postgres_url()?;
    let store = PostgresStore::connect(&url).await.expect("a fresh PostgreSQL store connects");
    let store = Arc::new(store);
    Some(Harness {
        templates: store.clone(),
        sessions: store.clone(),
        executions: store.clone(),
        tokens: store.clone(),
        nodes: store.clone(),
        backend: Backend::Postgres { store },
    })
}

/// The migrations of `backend` (`sqlite` or `postgres`) older than
/// `version`: a schema as an older release left it, to migrate from.
pub async fn migrations_before(backend: &str, version: i64) -> Migrator {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    let mut migrator = Migrator::new(dir).await.expect("the migrations read");
    let older: Vec<_> = migrator.migrations.iter().filter(|m| m.version < version).cloned().collect();
    assert!(!older.is_empty() && older.len() < migrator.migrations.len(), "{version} is a later migration");
    migrator.migrations = older.into();
    migrator
}

/// The URL of a new, empty database in the shared cluster.
pub fn fresh_postgres_url() -> Option<PostgresUrl> {
    vm_testpg::fresh_database_url().map(PostgresUrl::new)
}

impl Harness {
    /// How many rows of `table` have `column = value`, counted with plain SQL
    /// behind the ports' back.
    pub async fn count_rows(&self, table: &str, column: &str, value: impl ToString) -> i64 {
        match &self.backend {
            Backend::Sqlite { store, .. } => {
                let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?1");
                sqlx::query_scalar(&sql)
                    .bind(value.to_string())
                    .fetch_one(store.pool())
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"))
            }
            Backend::Postgres { store } => {
                let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column}::text = $1");
                sqlx::query_scalar(&sql)
                    .bind(value.to_string())
                    .fetch_one(store.pool())
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"))
            }
        }
    }
}
