//! Fresh stores for one test: a new database per call, kept alive as long as
//! the [`Harness`], behind the three port traits.

use std::sync::Arc;

use tempfile::TempDir;
use vm_domain::ports::{ExecutionStore, SessionStore, TemplateStore};
use vm_store::SqliteStore;

/// The stores of one fresh database, seen only through the ports, plus plain
/// SQL for what the ports cannot show.
pub struct Harness {
    pub templates: Arc<dyn TemplateStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub executions: Arc<dyn ExecutionStore>,
    backend: Backend,
}

enum Backend {
    Sqlite {
        store: Arc<SqliteStore>,
        /// Deleted on drop, so it lives as long as the store.
        _dir: TempDir,
    },
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
        backend: Backend::Sqlite { store, _dir: dir },
    }
}

impl Harness {
    /// How many rows of `table` have `column = value`, counted with plain SQL
    /// behind the ports' back.
    pub async fn count_rows(&self, table: &str, column: &str, value: impl ToString) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?1");
        match &self.backend {
            Backend::Sqlite { store, .. } => sqlx::query_scalar(&sql)
                .bind(value.to_string())
                .fetch_one(store.pool())
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err}")),
        }
    }
}
