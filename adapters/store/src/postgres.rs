//! [`PostgresStore`]: the template, session, execution and token stores on one
//! PostgreSQL database, with the schema of `migrations/postgres/`. Same
//! semantics as [`crate::SqliteStore`]; all SQL lives here; rows become
//! domain values only in `rows`.

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};
use vm_domain::catalog::{LibraryRef, ModuleName};
use vm_domain::event::Event;
use vm_domain::execution::Execution;
use vm_domain::ids::{ExecutionId, SessionId, TemplateId, TokenId};
use vm_domain::ports::{ExecutionStore, SessionStore, StoreHealth, TemplateStore, TokenStore};
use vm_domain::session::{Session, SessionStatus};
use vm_domain::template::{Capability, Settings, StartupFile, Template};
use vm_domain::token::{SecretDigest, Token};
use vm_domain::{DomainError, Timestamp};

use crate::error::{chain, db_error, missing_parent_or_db_error, OpenError, StoreError};
use crate::location::{PoolSettings, PostgresUrl};
use crate::rows::{self, count_value, json_text, scopes_json, text_json, PgColumns};

type TemplateRow = rows::TemplateRow<PgColumns>;
type SettingsRow = rows::SettingsRow<PgColumns>;
type CapabilityRow = rows::CapabilityRow<PgColumns>;
type StartupFileRow = rows::StartupFileRow<PgColumns>;
type SessionRow = rows::SessionRow<PgColumns>;
type ExecutionRow = rows::ExecutionRow<PgColumns>;
type EventRow = rows::EventRow<PgColumns>;
type TokenRow = rows::TokenRow<PgColumns>;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// `SELECT` of templates with their modules (by name, in byte order as
/// SQLite sorts) and libraries (in load order) as JSON arrays, followed by
/// the given clauses.
macro_rules! select_templates {
    ($clauses:literal) => {
        concat!(
            "SELECT t.id, t.name, t.engine, t.is_active, t.created_at, t.updated_at, \
               COALESCE((SELECT json_agg(m.name ORDER BY m.name COLLATE \"C\") \
                  FROM template_modules m WHERE m.template_id = t.id), '[]'::json) AS modules, \
               COALESCE((SELECT json_agg(l.name ORDER BY l.position) \
                  FROM template_libraries l WHERE l.template_id = t.id), '[]'::json) AS libraries \
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

/// The four store ports on one PostgreSQL database. Cloning is cheap and
/// shares the connection pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` and applies pending migrations.
    ///
    /// A first connection is made on its own, within the pool's
    /// `acquire_timeout`, so that an unreachable server or a refused login
    /// is reported at once as one sentence naming host and port (the pool
    /// would retry a refused connection until its timeout and forget why).
    pub async fn connect(url: &PostgresUrl) -> Result<Self, OpenError> {
        let (driver_url, settings) = url.split()?;
        let options = PgConnectOptions::from_url(&driver_url)
            .map_err(|e| OpenError::InvalidUrl { url: url.redacted(), reason: e.to_string() })?;
        let server = server_of(&options);
        let first = tokio::time::timeout(settings.acquire_timeout, options.connect()).await.map_err(|_| {
            OpenError::Unreachable {
                server: server.clone(),
                reason: format!("no answer within {} s", settings.acquire_timeout.as_secs()),
            }
        })?;
        match first {
            Ok(conn) => {
                let _ = conn.close().await;
            }
            Err(sqlx::Error::Database(db)) => {
                return Err(OpenError::Refused { server, reason: db.message().to_owned() });
            }
            Err(err @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_))) => {
                return Err(OpenError::Unreachable { server, reason: unreachable_reason(&err) });
            }
            Err(err) => return Err(OpenError::Refused { server, reason: chain(&err) }),
        }
        let pool = pool_options(&settings)
            .connect_with(options.clone())
            .await
            .map_err(|err| OpenError::Unreachable { server: server.clone(), reason: chain(&err) })?;
        let database = format!("{server}/{}", options.get_database().unwrap_or(options.get_username()));
        MIGRATOR.run(&pool).await.map_err(|err| OpenError::Migrate { database, reason: chain(&err) })?;
        tracing::debug!(%server, max_connections = settings.max_connections, "PostgreSQL store open");
        Ok(Self { pool })
    }

    /// The connection pool, for diagnostics and tests; the services go
    /// through the ports.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Waits for running queries and closes every connection. Later calls
    /// fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn pool_options(settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Some(settings.idle_timeout))
}

/// `host:port`, or the unix socket directory and port.
fn server_of(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => format!("{} (port {})", socket.display(), options.get_port()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// The I/O error's own words ("Connection refused", "failed to lookup
/// address information: …"), without Rust's "(os error N)".
fn unreachable_reason(err: &sqlx::Error) -> String {
    let text = match err {
        sqlx::Error::Io(io) => io.to_string(),
        other => chain(other),
    };
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_lowercase(),
        None => text,
    }
}

/// Locks the template's row for the rest of the transaction, so that
/// writers of one template's lists take turns as SQLite's single writer
/// does. `false` when there is no such template.
async fn lock_template(conn: &mut PgConnection, id: TemplateId) -> Result<bool, DomainError> {
    let found = sqlx::query("SELECT 1 FROM templates WHERE id = $1 FOR UPDATE")
        .bind(id.as_uuid())
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    Ok(found.is_some())
}

/// Sets a template's `updated_at`; `false` when there is no such template.
async fn touch_template(conn: &mut PgConnection, id: TemplateId, at: Timestamp) -> Result<bool, DomainError> {
    let done = sqlx::query("UPDATE templates SET updated_at = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(at)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}

fn template_not_found(id: TemplateId) -> impl FnOnce() -> DomainError {
    move || DomainError::TemplateNotFound { id: id.to_string() }
}

impl PostgresStore {
    /// Adds one module or library row with `insert` ($1 the template, $2 the
    /// name); `updated_at` moves only when a row was added.
    async fn add_named(
        &self,
        insert: &'static str,
        id: TemplateId,
        name: &str,
        at: Timestamp,
    ) -> Result<(), DomainError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // Two concurrent appends must not compute the same next position.
        if !lock_template(&mut tx, id).await? {
            return Err(template_not_found(id)());
        }
        let done = sqlx::query(insert)
            .bind(id.as_uuid())
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query(delete).bind(id.as_uuid()).bind(name).execute(&mut *tx).await.map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        touch_template(&mut tx, id, at).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}

#[async_trait]
impl TemplateStore for PostgresStore {
    async fn insert(&self, template: &Template, settings: &Settings) -> Result<(), DomainError> {
        let id = template.id.as_uuid();
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query(
            "INSERT INTO templates (id, name, engine, is_active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(template.name.as_str())
        .bind(&template.engine)
        .bind(template.is_active)
        .bind(template.created_at)
        .bind(template.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("INSERT INTO template_settings (template_id, settings) VALUES ($1, $2::jsonb)")
            .bind(id)
            .bind(json_text(settings))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let modules: Vec<&str> = template.exposed_modules.iter().map(|m| m.as_str()).collect();
        sqlx::query(
            "INSERT INTO template_modules (template_id, name) SELECT $1, name FROM UNNEST($2::text[]) AS m (name) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&modules)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let libraries: Vec<&str> = template.libraries.iter().map(|l| l.as_str()).collect();
        sqlx::query(
            "INSERT INTO template_libraries (template_id, name, position) \
             SELECT $1, name, position - 1 FROM UNNEST($2::text[]) WITH ORDINALITY AS l (name, position) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&libraries)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, DomainError> {
        sqlx::query_as::<_, TemplateRow>(select_templates!("WHERE t.id = $1"))
            .bind(id.as_uuid())
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
        let done = sqlx::query("DELETE FROM templates WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn settings(&self, id: TemplateId) -> Result<Option<Settings>, DomainError> {
        sqlx::query_as::<_, SettingsRow>("SELECT settings FROM template_settings WHERE template_id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Settings::try_from)
            .transpose()
    }

    async fn replace_settings(&self, id: TemplateId, settings: &Settings, at: Timestamp) -> Result<bool, DomainError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        if !touch_template(&mut tx, id, at).await? {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO template_settings (template_id, settings) VALUES ($1, $2::jsonb) \
             ON CONFLICT (template_id) DO UPDATE SET settings = excluded.settings",
        )
        .bind(id.as_uuid())
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
             VALUES ($1, $2, $3, $4::json, $5, $6::json, $7)",
        )
        .bind(capability.id.as_uuid())
        .bind(capability.template_id.as_uuid())
        .bind(capability.kind.as_str())
        .bind(text_json(&capability.name))
        .bind(capability.enabled)
        .bind(json_text(&capability.config))
        .bind(capability.created_at)
        .execute(&self.pool)
        .await
        .map_err(|err| missing_parent_or_db_error(err, template_not_found(capability.template_id)))?;
        Ok(())
    }

    async fn capabilities(&self, id: TemplateId) -> Result<Vec<Capability>, DomainError> {
        sqlx::query_as::<_, CapabilityRow>(
            "SELECT id, template_id, kind, name, enabled, config, created_at \
             FROM template_capabilities WHERE template_id = $1 ORDER BY pk",
        )
        .bind(id.as_uuid())
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
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(file.id.as_uuid())
        .bind(file.template_id.as_uuid())
        .bind(file.path.as_str())
        .bind(file.order_index)
        .bind(file.mode.as_str())
        .bind(file.created_at)
        .execute(&self.pool)
        .await
        .map_err(|err| missing_parent_or_db_error(err, template_not_found(file.template_id)))?;
        Ok(())
    }

    async fn startup_files(&self, id: TemplateId) -> Result<Vec<StartupFile>, DomainError> {
        sqlx::query_as::<_, StartupFileRow>(
            "SELECT id, template_id, path, order_index, mode, created_at \
             FROM template_startup_files WHERE template_id = $1 ORDER BY order_index, pk",
        )
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(StartupFile::try_from)
        .collect()
    }

    async fn add_module(&self, id: TemplateId, name: &ModuleName, at: Timestamp) -> Result<(), DomainError> {
        self.add_named(
            "INSERT INTO template_modules (template_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            id,
            name.as_str(),
            at,
        )
        .await
    }

    async fn remove_module(&self, id: TemplateId, name: &ModuleName, at: Timestamp) -> Result<bool, DomainError> {
        self.remove_named("DELETE FROM template_modules WHERE template_id = $1 AND name = $2", id, name.as_str(), at)
            .await
    }

    async fn add_library(&self, id: TemplateId, library: &LibraryRef, at: Timestamp) -> Result<(), DomainError> {
        self.add_named(
            "INSERT INTO template_libraries (template_id, name, position) \
             SELECT $1, $2, COALESCE(MAX(position) + 1, 0) FROM template_libraries WHERE template_id = $1 \
             ON CONFLICT DO NOTHING",
            id,
            library.as_str(),
            at,
        )
        .await
    }

    async fn remove_library(&self, id: TemplateId, library: &LibraryRef, at: Timestamp) -> Result<bool, DomainError> {
        self.remove_named(
            "DELETE FROM template_libraries WHERE template_id = $1 AND name = $2",
            id,
            library.as_str(),
            at,
        )
        .await
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert(&self, session: &Session) -> Result<(), DomainError> {
        sqlx::query(
            "INSERT INTO sessions (id, template_id, workspace_id, base_commit_oid, worktree_path, status, \
                                   created_at, closed_at, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::json)",
        )
        .bind(session.id.as_uuid())
        .bind(session.template_id.as_uuid())
        .bind(session.workspace_id.as_str())
        .bind(session.base_commit_oid.as_str())
        .bind(session.worktree_path.as_path().to_string_lossy())
        .bind(session.status.as_str())
        .bind(session.created_at)
        .bind(session.closed_at)
        .bind(session.last_error.as_deref().map(text_json))
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, DomainError> {
        sqlx::query_as::<_, SessionRow>(select_sessions!("WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Session::try_from)
            .transpose()
    }

    async fn list(&self, status: Option<SessionStatus>) -> Result<Vec<Session>, DomainError> {
        let query = match status {
            Some(status) => {
                sqlx::query_as::<_, SessionRow>(select_sessions!("WHERE status = $1 ORDER BY created_at DESC, pk DESC"))
                    .bind(status.as_str())
            }
            None => sqlx::query_as::<_, SessionRow>(select_sessions!("ORDER BY created_at DESC, pk DESC")),
        };
        query.fetch_all(&self.pool).await.map_err(db_error)?.into_iter().map(Session::try_from).collect()
    }

    async fn update_state(&self, session: &Session) -> Result<(), DomainError> {
        let done = sqlx::query("UPDATE sessions SET status = $2, closed_at = $3, last_error = $4::json WHERE id = $1")
            .bind(session.id.as_uuid())
            .bind(session.status.as_str())
            .bind(session.closed_at)
            .bind(session.last_error.as_deref().map(text_json))
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
impl ExecutionStore for PostgresStore {
    async fn insert(&self, execution: &Execution) -> Result<(), DomainError> {
        let metrics = &execution.metrics;
        sqlx::query(
            "INSERT INTO executions (id, session_id, kind, input, path, args, env, status, started_at, \
                                     ended_at, result, error, duration_ms, event_count, output_bytes) \
             VALUES ($1, $2, $3, $4::json, $5, $6::json, $7::json, $8, $9, $10, $11::json, $12::json, $13, $14, $15)",
        )
        .bind(execution.id.as_uuid())
        .bind(execution.session_id.as_uuid())
        .bind(execution.kind.as_str())
        .bind(execution.input.as_deref().map(text_json))
        .bind(execution.path.as_deref())
        .bind(json_text(&execution.args))
        .bind(json_text(&execution.env))
        .bind(execution.status.as_str())
        .bind(execution.started_at)
        .bind(execution.ended_at)
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

    /// One transaction: the `UPDATE` and a single `INSERT … SELECT FROM
    /// UNNEST` of all events as five arrays, however many there are.
    async fn finish(&self, execution: &Execution, events: &[Event]) -> Result<(), DomainError> {
        if let Some(stray) = events.iter().find(|e| e.execution_id != execution.id) {
            return Err(StoreError::ForeignEvent {
                event_of: stray.execution_id.to_string(),
                finishing: execution.id.to_string(),
            }
            .into());
        }
        let id = execution.id.as_uuid();
        let metrics = &execution.metrics;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let done = sqlx::query(
            "UPDATE executions SET status = $2, ended_at = $3, result = $4::json, error = $5::json, \
                                   duration_ms = $6, event_count = $7, output_bytes = $8 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(execution.status.as_str())
        .bind(execution.ended_at)
        .bind(execution.result.as_ref().map(json_text))
        .bind(execution.error.as_ref().map(json_text))
        .bind(count_value(metrics.duration_ms)?)
        .bind(count_value(metrics.event_count)?)
        .bind(count_value(metrics.output_bytes)?)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(DomainError::ExecutionNotFound { id: execution.id.to_string() });
        }
        if !events.is_empty() {
            let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
            let stamps: Vec<Timestamp> = events.iter().map(|e| e.ts).collect();
            let types: Vec<&str> = events.iter().map(|e| e.payload.type_name()).collect();
            let payloads: Vec<String> = events.iter().map(|e| e.payload.payload_json().to_string()).collect();
            sqlx::query(
                "INSERT INTO execution_events (execution_id, seq, ts, type, payload) \
                 SELECT $1, seq, ts, type, payload::json \
                 FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) AS e (seq, ts, type, payload)",
            )
            .bind(id)
            .bind(&seqs)
            .bind(&stamps)
            .bind(&types)
            .bind(&payloads)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn get(&self, id: ExecutionId) -> Result<Option<Execution>, DomainError> {
        sqlx::query_as::<_, ExecutionRow>(select_executions!("WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Execution::try_from)
            .transpose()
    }

    async fn list(&self, session_id: Option<SessionId>, limit: u32) -> Result<Vec<Execution>, DomainError> {
        let query = match session_id {
            Some(session_id) => sqlx::query_as::<_, ExecutionRow>(select_executions!(
                "WHERE session_id = $1 ORDER BY started_at DESC, pk DESC LIMIT $2"
            ))
            .bind(session_id.as_uuid()),
            None => sqlx::query_as::<_, ExecutionRow>(select_executions!("ORDER BY started_at DESC, pk DESC LIMIT $1")),
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
             FROM execution_events WHERE execution_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(id.as_uuid())
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
impl TokenStore for PostgresStore {
    /// A second token with the same digest (or id) is an `Internal` error:
    /// with 256-bit random secrets it does not happen.
    async fn insert(&self, token: &Token, digest: &SecretDigest) -> Result<(), DomainError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scopes, secret_digest, created_at, last_used_at, expires_at, \
                                     revoked_at) \
             VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8)",
        )
        .bind(token.id.as_uuid())
        .bind(token.name.as_str())
        .bind(scopes_json(&token.scopes))
        .bind(digest.as_str())
        .bind(token.created_at)
        .bind(token.last_used_at)
        .bind(token.expires_at)
        .bind(token.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn by_digest(&self, digest: &SecretDigest) -> Result<Option<Token>, DomainError> {
        sqlx::query_as::<_, TokenRow>(select_tokens!("WHERE secret_digest = $1"))
            .bind(digest.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(Token::try_from)
            .transpose()
    }

    async fn get(&self, id: TokenId) -> Result<Option<Token>, DomainError> {
        sqlx::query_as::<_, TokenRow>(select_tokens!("WHERE id = $1"))
            .bind(id.as_uuid())
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
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(id.as_uuid())
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    /// Touching a token that does not exist changes nothing.
    async fn touch(&self, id: TokenId, at: Timestamp) -> Result<(), DomainError> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

#[async_trait]
impl StoreHealth for PostgresStore {
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
