//! [`SqliteStore`]: the template, session, execution and token stores on one
//! SQLite file, with the schema of `migrations/sqlite/`. All SQL lives here;
//! rows become domain values only in `rows`.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use vm_domain::catalog::{LibraryRef, ModuleName};
use vm_domain::event::Event;
use vm_domain::execution::Execution;
use vm_domain::ids::{ExecutionId, SessionId, TemplateId, TokenId};
use vm_domain::ports::{ExecutionStore, SessionStore, StoreHealth, TemplateStore, TokenStore};
use vm_domain::session::{Session, SessionStatus};
use vm_domain::template::{Capability, Settings, StartupFile, Template};
use vm_domain::token::{SecretDigest, Token};
use vm_domain::{DomainError, Timestamp};

use crate::error::{db_error, missing_parent_or_db_error, OpenError, StoreError};
use crate::rows::{self, count_value, json_text, scopes_json, timestamp_text, SqliteColumns};

type TemplateRow = rows::TemplateRow<SqliteColumns>;
type SettingsRow = rows::SettingsRow<SqliteColumns>;
type CapabilityRow = rows::CapabilityRow<SqliteColumns>;
type StartupFileRow = rows::StartupFileRow<SqliteColumns>;
type SessionRow = rows::SessionRow<SqliteColumns>;
type ExecutionRow = rows::ExecutionRow<SqliteColumns>;
type EventRow = rows::EventRow<SqliteColumns>;
type TokenRow = rows::TokenRow<SqliteColumns>;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Connections in the pool. SQLite has one writer at a time; the others read.
const MAX_CONNECTIONS: u32 = 8;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts a write transaction holding the write lock from its first
/// statement, so a concurrent writer waits out [`BUSY_TIMEOUT`] instead of
/// failing at once on a stale read snapshot.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Events per multi-row `INSERT`: five parameters each, far below SQLite's
/// limit of 32766 parameters per statement.
const EVENTS_PER_INSERT: usize = 1_000;

/// `SELECT` of templates with their modules (by name) and libraries (in load
/// order) as JSON arrays, followed by the given clauses.
macro_rules! select_templates {
    ($clauses:literal) => {
        concat!(
            "SELECT t.id, t.name, t.engine, t.is_active, t.created_at, t.updated_at, \
               (SELECT json_group_array(m.name ORDER BY m.name) \
                  FROM template_modules m WHERE m.template_id = t.id) AS modules, \
               (SELECT json_group_array(l.name ORDER BY l.position) \
                  FROM template_libraries l WHERE l.template_id = t.id) AS libraries \
             FROM templates t ",
            $clauses
        )
    };
}

macro_rules! select_sessions {
    ($clauses:literal) => {
        concat!(
            "SELECT id, template_id, workspace_id, base_commit_oid, worktree_path, status, \
                    created_at, closed_at, last_error \
             FROM sessions ",
            $clauses
        )
    };
}

macro_rules! select_executions {
    ($clauses:literal) => {
        concat!(
            "SELECT id, session_id, kind, input, path, args, env, status, started_at, ended_at, \
                    result, error, duration_ms, event_count, output_bytes \
             FROM executions ",
            $clauses
        )
    };
}

macro_rules! select_tokens {
    ($clauses:literal) => {
        concat!(
            "SELECT id, name, scopes, created_at, last_used_at, expires_at, revoked_at \
             FROM api_tokens ",
            $clauses
        )
    };
}

/// The four store ports on one SQLite database file. Cloning is cheap and
/// shares the connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file (and its parent
    /// directories) if missing, and applies pending migrations. Connections
    /// use WAL, `synchronous = NORMAL`, foreign keys and a busy timeout.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        let open_error = |reason: String| OpenError::Sqlite { path: path.to_owned(), reason };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| open_error(err.to_string()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|err| open_error(err.to_string()))?;
        MIGRATOR.run(&pool).await.map_err(|err| OpenError::Migrate {
            database: path.display().to_string(),
            reason: crate::error::chain(&err),
        })?;
        tracing::debug!(path = %path.display(), "SQLite store open");
        Ok(Self { pool })
    }

    /// The connection pool, for diagnostics and tests; the services go
    /// through the ports.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Waits for running queries and closes every connection, which also
    /// checkpoints the WAL. Later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Sets a template's `updated_at`; `false` when there is no such template.
async fn touch_template(conn: &mut SqliteConnection, id: TemplateId, at: Timestamp) -> Result<bool, DomainError> {
    let done = sqlx::query("UPDATE templates SET updated_at = ?2 WHERE id = ?1")
        .bind(id.to_string())
        .bind(timestamp_text(at))
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}

fn template_not_found(id: TemplateId) -> impl FnOnce() -> DomainError {
    move || DomainError::TemplateNotFound { id: id.to_string() }
}

impl SqliteStore {
    /// Adds one module or library row with `insert` (?1 the template, ?2 the
    /// name); `updated_at` moves only when a row was added.
    async fn add_named(
        &self,
        insert: &'static str,
        id: TemplateId,
        name: &str,
        at: Timestamp,
    ) -> Result<(), DomainError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let done = sqlx::query(insert)
            .bind(id.to_string())
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|err| missing_parent_or_db_error(err, template_not_found(id)))?;
        if done.rows_affected() > 0 {
            touch_template(&mut tx, id, at).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Deletes one module or library row with `delete`; `false`, and no
    /// `updated_at` change, when there was none.
    async fn remove_named(
        &self,
        delete: &'static str,
        id: TemplateId,
        name: &str,
        at: Timestamp,
    ) -> Result<bool, DomainError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let done = sqlx::query(delete).bind(id.to_string()).bind(name).execute(&mut *tx).await.map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        touch_template(&mut tx, id, at).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn insert(&self, template: &Template, settings: &Settings) -> Result<(), DomainError> {
        let id = template.id.to_string();
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO templates (id, name, engine, is_active, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&id)
        .bind(template.name.as_str())
        .bind(&template.engine)
        .bind(template.is_active)
        .bind(timestamp_text(template.created_at))
        .bind(timestamp_text(template.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("INSERT INTO template_settings (template_id, settings) VALUES (?1, ?2)")
            .bind(&id)
            .bind(json_text(settings))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        for module in &template.exposed_modules {
            sqlx::query("INSERT INTO template_modules (template_id, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
                .bind(&id)
                .bind(module.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        for (position, library) in template.libraries.iter().enumerate() {
            sqlx::query(
                "INSERT INTO template_libraries (template_id, name, position) VALUES (?1, ?2, ?3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(library.as_str())
            .bind(i64::try_from(position).expect("a list index fits in i64"))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, DomainError> {
        sqlx::query_as::<_, TemplateRow>(select_templates!("WHERE t.id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Template::try_from)
            .transpose()
    }

    async fn list(&self) -> Result<Vec<Template>, DomainError> {
        sqlx::query_as::<_, TemplateRow>(select_templates!("ORDER BY t.created_at DESC, t.pk DESC"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Template::try_from)
            .collect()
    }

    async fn delete(&self, id: TemplateId) -> Result<bool, DomainError> {
        let done = sqlx::query("DELETE FROM templates WHERE id = ?1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn settings(&self, id: TemplateId) -> Result<Option<Settings>, DomainError> {
        sqlx::query_as::<_, SettingsRow>("SELECT settings FROM template_settings WHERE template_id = ?1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Settings::try_from)
            .transpose()
    }

    async fn replace_settings(&self, id: TemplateId, settings: &Settings, at: Timestamp) -> Result<bool, DomainError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        if !touch_template(&mut tx, id, at).await? {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO template_settings (template_id, settings) VALUES (?1, ?2) \
             ON CONFLICT (template_id) DO UPDATE SET settings = excluded.settings",
        )
        .bind(id.to_string())
        .bind(json_text(settings))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn add_capability(&self, capability: &Capability) -> Result<(), DomainError> {
        sqlx::query(
            "INSERT INTO template_capabilities (id, template_id, kind, name, enabled, config, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(capability.id.to_string())
        .bind(capability.template_id.to_string())
        .bind(capability.kind.as_str())
        .bind(&capability.name)
        .bind(capability.enabled)
        .bind(json_text(&capability.config))
        .bind(timestamp_text(capability.created_at))
        .execute(&self.pool)
        .await
        .map_err(|err| missing_parent_or_db_error(err, template_not_found(capability.template_id)))?;
        Ok(())
    }

    async fn capabilities(&self, id: TemplateId) -> Result<Vec<Capability>, DomainError> {
        sqlx::query_as::<_, CapabilityRow>(
            "SELECT id, template_id, kind, name, enabled, config, created_at \
             FROM template_capabilities WHERE template_id = ?1 ORDER BY pk",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(Capability::try_from)
        .collect()
    }

    async fn add_startup_file(&self, file: &StartupFile) -> Result<(), DomainError> {
        sqlx::query(
            "INSERT INTO template_startup_files (id, template_id, path, order_index, mode, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(file.id.to_string())
        .bind(file.template_id.to_string())
        .bind(file.path.as_str())
        .bind(file.order_index)
        .bind(file.mode.as_str())
        .bind(timestamp_text(file.created_at))
        .execute(&self.pool)
        .await
        .map_err(|err| missing_parent_or_db_error(err, template_not_found(file.template_id)))?;
        Ok(())
    }

    async fn startup_files(&self, id: TemplateId) -> Result<Vec<StartupFile>, DomainError> {
        sqlx::query_as::<_, StartupFileRow>(
            "SELECT id, template_id, path, order_index, mode, created_at \
             FROM template_startup_files WHERE template_id = ?1 ORDER BY order_index, pk",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(StartupFile::try_from)
        .collect()
    }

    async fn add_module(&self, id: TemplateId, name: &ModuleName, at: Timestamp) -> Result<(), DomainError> {
        self.add_named(
            "INSERT INTO template_modules (template_id, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            id,
            name.as_str(),
            at,
        )
        .await
    }

    async fn remove_module(&self, id: TemplateId, name: &ModuleName, at: Timestamp) -> Result<bool, DomainError> {
        self.remove_named("DELETE FROM template_modules WHERE template_id = ?1 AND name = ?2", id, name.as_str(), at)
            .await
    }

    async fn add_library(&self, id: TemplateId, library: &LibraryRef, at: Timestamp) -> Result<(), DomainError> {
        self.add_named(
            "INSERT INTO template_libraries (template_id, name, position) \
             SELECT ?1, ?2, COALESCE(MAX(position) + 1, 0) FROM template_libraries WHERE template_id = ?1 \
             ON CONFLICT DO NOTHING",
            id,
            library.as_str(),
            at,
        )
        .await
    }

    async fn remove_library(&self, id: TemplateId, library: &LibraryRef, at: Timestamp) -> Result<bool, DomainError> {
        self.remove_named(
            "DELETE FROM template_libraries WHERE template_id = ?1 AND name = ?2",
            id,
            library.as_str(),
            at,
        )
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert(&self, session: &Session) -> Result<(), DomainError> {
        sqlx::query(
            "INSERT INTO sessions (id, template_id, workspace_id, base_commit_oid, worktree_path, status, \
                                   created_at, closed_at, last_error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(session.id.to_string())
        .bind(session.template_id.to_string())
        .bind(session.workspace_id.as_str())
        .bind(session.base_commit_oid.as_str())
        .bind(session.worktree_path.as_path().to_string_lossy())
        .bind(session.status.as_str())
        .bind(timestamp_text(session.created_at))
        .bind(session.closed_at.map(timestamp_text))
        .bind(session.last_error.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, DomainError> {
        sqlx::query_as::<_, SessionRow>(select_sessions!("WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Session::try_from)
            .transpose()
    }

    async fn list(&self, status: Option<SessionStatus>) -> Result<Vec<Session>, DomainError> {
        let query = match status {
            Some(status) => {
                sqlx::query_as::<_, SessionRow>(select_sessions!("WHERE status = ?1 ORDER BY created_at DESC, pk DESC"))
                    .bind(status.as_str())
            }
            None => sqlx::query_as::<_, SessionRow>(select_sessions!("ORDER BY created_at DESC, pk DESC")),
        };
        query.fetch_all(&self.pool).await.map_err(db_error)?.into_iter().map(Session::try_from).collect()
    }

    async fn update_state(&self, session: &Session) -> Result<(), DomainError> {
        let done = sqlx::query("UPDATE sessions SET status = ?2, closed_at = ?3, last_error = ?4 WHERE id = ?1")
            .bind(session.id.to_string())
            .bind(session.status.as_str())
            .bind(session.closed_at.map(timestamp_text))
            .bind(session.last_error.as_deref())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(DomainError::SessionNotFound { id: session.id.to_string() });
        }
        Ok(())
    }
}

#[async_trait]
impl ExecutionStore for SqliteStore {
    async fn insert(&self, execution: &Execution) -> Result<(), DomainError> {
        let metrics = &execution.metrics;
        sqlx::query(
            "INSERT INTO executions (id, session_id, kind, input, path, args, env, status, started_at, \
                                     ended_at, result, error, duration_ms, event_count, output_bytes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .bind(execution.id.to_string())
        .bind(execution.session_id.to_string())
        .bind(execution.kind.as_str())
        .bind(execution.input.as_deref())
        .bind(execution.path.as_deref())
        .bind(json_text(&execution.args))
        .bind(json_text(&execution.env))
        .bind(execution.status.as_str())
        .bind(timestamp_text(execution.started_at))
        .bind(execution.ended_at.map(timestamp_text))
        .bind(execution.result.as_ref().map(json_text))
        .bind(execution.error.as_ref().map(json_text))
        .bind(count_value(metrics.duration_ms)?)
        .bind(count_value(metrics.event_count)?)
        .bind(count_value(metrics.output_bytes)?)
        .execute(&self.pool)
        .await
        .map_err(|err| {
            missing_parent_or_db_error(err, || DomainError::SessionNotFound { id: execution.session_id.to_string() })
        })?;
        Ok(())
    }

    async fn finish(&self, execution: &Execution, events: &[Event]) -> Result<(), DomainError> {
        if let Some(stray) = events.iter().find(|e| e.execution_id != execution.id) {
            return Err(StoreError::ForeignEvent {
                event_of: stray.execution_id.to_string(),
                finishing: execution.id.to_string(),
            }
            .into());
        }
        let id = execution.id.to_string();
        let metrics = &execution.metrics;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(db_error)?;
        let done = sqlx::query(
            "UPDATE executions SET status = ?2, ended_at = ?3, result = ?4, error = ?5, \
                                   duration_ms = ?6, event_count = ?7, output_bytes = ?8 \
             WHERE id = ?1",
        )
        .bind(&id)
        .bind(execution.status.as_str())
        .bind(execution.ended_at.map(timestamp_text))
        .bind(execution.result.as_ref().map(json_text))
        .bind(execution.error.as_ref().map(json_text))
        .bind(count_value(metrics.duration_ms)?)
        .bind(count_value(metrics.event_count)?)
        .bind(count_value(metrics.output_bytes)?)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(DomainError::ExecutionNotFound { id });
        }
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO execution_events (execution_id, seq, ts, type, payload) ");
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(id.clone())
                    .push_bind(event.seq)
                    .push_bind(timestamp_text(event.ts))
                    .push_bind(event.payload.type_name())
                    .push_bind(event.payload.payload_json().to_string());
            });
            insert.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn get(&self, id: ExecutionId) -> Result<Option<Execution>, DomainError> {
        sqlx::query_as::<_, ExecutionRow>(select_executions!("WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Execution::try_from)
            .transpose()
    }

    async fn list(&self, session_id: Option<SessionId>, limit: u32) -> Result<Vec<Execution>, DomainError> {
        let query = match session_id {
            Some(session_id) => sqlx::query_as::<_, ExecutionRow>(select_executions!(
                "WHERE session_id = ?1 ORDER BY started_at DESC, pk DESC LIMIT ?2"
            ))
            .bind(session_id.to_string()),
            None => sqlx::query_as::<_, ExecutionRow>(select_executions!("ORDER BY started_at DESC, pk DESC LIMIT ?1")),
        };
        query
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Execution::try_from)
            .collect()
    }

    async fn events_after(&self, id: ExecutionId, after_seq: i64) -> Result<Vec<Event>, DomainError> {
        sqlx::query_as::<_, EventRow>(
            "SELECT execution_id, seq, ts, type AS type_name, payload \
             FROM execution_events WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq",
        )
        .bind(id.to_string())
        .bind(after_seq)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(Event::try_from)
        .collect()
    }

    async fn running(&self) -> Result<Vec<Execution>, DomainError> {
        sqlx::query_as::<_, ExecutionRow>(select_executions!("WHERE status = 'running' ORDER BY started_at, pk"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Execution::try_from)
            .collect()
    }

    fn finish_later(&self, execution: Execution, events: Vec<Event>) {
        let store = self.clone();
        tokio::spawn(async move {
            while let Err(err) = store.finish(&execution, &events).await {
                tracing::warn!(execution_id = %execution.id, error = %err, "pending execution not stored yet");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    /// A second token with the same digest (or id) is an `Internal` error:
    /// with 256-bit random secrets it does not happen.
    async fn insert(&self, token: &Token, digest: &SecretDigest) -> Result<(), DomainError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scopes, secret_digest, created_at, last_used_at, expires_at, \
                                     revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(token.id.to_string())
        .bind(token.name.as_str())
        .bind(scopes_json(&token.scopes))
        .bind(digest.as_str())
        .bind(timestamp_text(token.created_at))
        .bind(token.last_used_at.map(timestamp_text))
        .bind(token.expires_at.map(timestamp_text))
        .bind(token.revoked_at.map(timestamp_text))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn by_digest(&self, digest: &SecretDigest) -> Result<Option<Token>, DomainError> {
        sqlx::query_as::<_, TokenRow>(select_tokens!("WHERE secret_digest = ?1"))
            .bind(digest.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Token::try_from)
            .transpose()
    }

    async fn get(&self, id: TokenId) -> Result<Option<Token>, DomainError> {
        sqlx::query_as::<_, TokenRow>(select_tokens!("WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Token::try_from)
            .transpose()
    }

    async fn list(&self) -> Result<Vec<Token>, DomainError> {
        sqlx::query_as::<_, TokenRow>(select_tokens!("ORDER BY created_at DESC, pk DESC"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Token::try_from)
            .collect()
    }

    /// One statement: the first `revoked_at` stays, and the row counts as
    /// found whether or not it was revoked already.
    async fn revoke(&self, id: TokenId, at: Timestamp) -> Result<bool, DomainError> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1")
            .bind(id.to_string())
            .bind(timestamp_text(at))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    /// Touching a token that does not exist changes nothing.
    async fn touch(&self, id: TokenId, at: Timestamp) -> Result<(), DomainError> {
        sqlx::query("UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(timestamp_text(at))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn check(&self) -> Result<(), DomainError> {
        let probe = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
            Ok(done) => done.map(|_| ()).map_err(db_error),
            Err(_) => Err(DomainError::StoreUnavailable { reason: "no answer within 2 s".into(), execution_id: None }),
        }
    }

    fn pending_writes(&self) -> usize {
        0
    }
}
