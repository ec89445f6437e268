//! [`Store`]: the template, session, execution and token stores, written
//! once over a [`Dialect`]. Every statement here runs unchanged on SQLite
//! and PostgreSQL; what differs (binding, reading, the write path, bulk
//! inserts, one aggregate query) is the dialect's. Rows become domain
//! values only in `rows`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use vm_domain::catalog::{LibraryRef, ModuleName};
use vm_domain::event::Event;
use vm_domain::execution::{Execution, ExecutionStatus};
use vm_domain::ids::{ExecutionId, NodeId, SessionId, TemplateId, TokenId};
use vm_domain::node::Node;
use vm_domain::ports::{Connections, ExecutionStore, NodeStore, SessionStore, StoreHealth, TemplateStore, TokenStore};
use vm_domain::session::{Session, SessionStatus};
use vm_domain::template::{Capability, Settings, StartupFile, Template};
use vm_domain::token::{SecretDigest, Token};
use vm_domain::{DomainError, Timestamp};

use crate::dialect::{Dialect, NameList, Value, Write};
use crate::error::{db_error, missing_parent_or_db_error, StoreError};
use crate::rows::{self, count_value, scopes_json};

/// How long the readiness probe waits for the store.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The first and the longest pause between two attempts to store a pending
/// execution.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// How long a failed execution write keeps the store not ready when no
/// pending write is retrying (which would show when writes work again):
/// long enough to be seen, short enough that traffic comes back to test.
const WRITE_FAILURE_MEMORY: Duration = Duration::from_secs(5);

/// How long closing the store waits for pending executions to be stored.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The four store ports and the health probe on one database. Cloning is
/// cheap and shares the connections.
pub struct Store<D: Dialect> {
    pub(crate) db: Arc<D>,
    /// Executions whose final write failed and is being retried.
    pending: Arc<AtomicUsize>,
    /// The outage the last execution write met and when, until one
    /// succeeds: reads may still work while writes cannot (a full disk).
    failing_writes: Arc<Mutex<Option<(DomainError, std::time::Instant)>>>,
}

impl<D: Dialect> Clone for Store<D> {
    fn clone(&self) -> Self {
        Self { db: self.db.clone(), pending: self.pending.clone(), failing_writes: self.failing_writes.clone() }
    }
}

impl<D: Dialect> std::fmt::Debug for Store<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("pending", &self.pending.load(Ordering::SeqCst)).finish_non_exhaustive()
    }
}

impl<D: Dialect> Store<D> {
    pub(crate) fn new(db: D) -> Self {
        Self { db: Arc::new(db), pending: Arc::new(AtomicUsize::new(0)), failing_writes: Arc::default() }
    }

    /// Remembers whether an execution write (insert, append of events,
    /// finish) met an outage, for readiness.
    fn note_write<T>(&self, outcome: Result<T, DomainError>) -> Result<T, DomainError> {
        let failed = match &outcome {
            Ok(_) => None,
            Err(err) => match bare_outage(err) {
                Some(outage) => Some((outage, std::time::Instant::now())),
                None => return outcome,
            },
        };
        *self.failing_writes.lock().expect("never poisoned") = failed;
        outcome
    }

    /// Waits (a few seconds at most) for pending executions to be stored,
    /// then for running statements, and closes every connection. Later
    /// calls fail with `STORE_UNAVAILABLE`.
    pub async fn close(&self) {
        let deadline = tokio::time::Instant::now() + CLOSE_GRACE;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lost = self.pending.load(Ordering::SeqCst);
        if lost > 0 {
            tracing::error!(executions = lost, "closing the store with finished executions not yet stored");
        }
        self.db.close().await;
    }

    async fn all<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: fn(&D::Row) -> Result<T, DomainError>,
    ) -> Result<Vec<T>, DomainError> {
        self.db.fetch_all(sql, params).await.map_err(db_error)?.iter().map(read).collect()
    }

    async fn one<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: fn(&D::Row) -> Result<T, DomainError>,
    ) -> Result<Option<T>, DomainError> {
        self.db.fetch_optional(sql, params).await.map_err(db_error)?.as_ref().map(read).transpose()
    }

    /// Adds one module or library row with `insert` (`$1` the template, `$2`
    /// the name); `updated_at` moves only when a row was added.
    async fn add_named(&self, insert: &str, id: TemplateId, name: &str, at: Timestamp) -> Result<(), DomainError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        // Two concurrent appends must not compute the same next position.
        if !lock_template::<D>(&mut tx, id).await? {
            return Err(template_not_found(id)());
        }
        let added = tx
            .execute(insert, &[Value::id(id), Value::text(name)])
            .await
            .map_err(|err| missing_parent_or_db_error(err, template_not_found(id)))?;
        if added > 0 {
            touch_template(&mut tx, id, at).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Deletes one module or library row with `delete`; `false`, and no
    /// `updated_at` change, when there was none.
    async fn remove_named(&self, delete: &str, id: TemplateId, name: &str, at: Timestamp) -> Result<bool, DomainError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let removed = tx.execute(delete, &[Value::id(id), Value::text(name)]).await.map_err(db_error)?;
        if removed == 0 {
            return Ok(false);
        }
        touch_template(&mut tx, id, at).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// The final state and the last events of an execution, in one
    /// transaction. The events follow any appended before; nothing here
    /// assumes they start at `seq` 1.
    async fn write_finish(&self, execution: &Execution, events: &[Event]) -> Result<(), DomainError> {
        all_of(execution.id, events)?;
        let metrics = &execution.metrics;
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let done = tx
            .execute(
                "UPDATE executions SET status = $2, ended_at = $3, result = $4, error = $5, \
                                       duration_ms = $6, event_count = $7, output_bytes = $8 \
                 WHERE id = $1",
                &[
                    Value::id(execution.id),
                    Value::text(execution.status.as_str()),
                    Value::At(execution.ended_at),
                    Value::Json(execution.result.as_ref().map(rows::json_text)),
                    Value::Json(execution.error.as_ref().map(rows::json_text)),
                    Value::Int(count_value(metrics.duration_ms)?),
                    Value::Int(count_value(metrics.event_count)?),
                    Value::Int(count_value(metrics.output_bytes)?),
                ],
            )
            .await
            .map_err(db_error)?;
        if done == 0 {
            return Err(DomainError::ExecutionNotFound { id: execution.id.to_string() });
        }
        tx.insert_events(events).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// A batch of events of a running execution, in one transaction (on
    /// SQLite one script: `BEGIN IMMEDIATE`, the inserts and `COMMIT`).
    /// A missing execution is `EXECUTION_NOT_FOUND` (the events' foreign
    /// key); a `seq` already stored fails the whole batch with `Internal`, a
    /// caller's bug (the primary key), so nothing stored is ever
    /// overwritten. That the batch comes after what is stored is the
    /// caller's promise, not checked: it would cost a read per batch.
    async fn write_events(&self, id: ExecutionId, events: &[Event]) -> Result<(), DomainError> {
        all_of(id, events)?;
        let not_found = |err| missing_parent_or_db_error(err, || DomainError::ExecutionNotFound { id: id.to_string() });
        let mut tx = self.db.begin().await.map_err(db_error)?;
        tx.insert_events(events).await.map_err(not_found)?;
        tx.commit().await.map_err(not_found)
    }

    /// Whether the execution's final state is stored: it is no longer
    /// `running`. Used after a failed attempt, whose commit may have landed.
    async fn is_finished(&self, id: ExecutionId) -> bool {
        matches!(ExecutionStore::get(self, id).await, Ok(Some(e)) if e.status != ExecutionStatus::Running)
    }
}

/// Refuses events of another execution than `id`: a caller's bug, which
/// would otherwise store them under that other execution.
fn all_of(id: ExecutionId, events: &[Event]) -> Result<(), DomainError> {
    match events.iter().find(|e| e.execution_id != id) {
        Some(stray) => {
            Err(StoreError::ForeignEvent { event_of: stray.execution_id.to_string(), writing: id.to_string() }.into())
        }
        None => Ok(()),
    }
}

/// A store outage as it stands on its own, without the execution a caller
/// was told about; `None` for any other error. (`DomainError` is not
/// `Clone`: its `Internal` holds the source.)
fn bare_outage(err: &DomainError) -> Option<DomainError> {
    match err {
        DomainError::StoreUnavailable { reason, .. } => {
            Some(DomainError::StoreUnavailable { reason: reason.clone(), execution_id: None })
        }
        DomainError::StorageFull { reason, .. } => {
            Some(DomainError::StorageFull { reason: reason.clone(), execution_id: None })
        }
        _ => None,
    }
}

/// Locks the template row where the dialect needs it; `false` when there
/// is no such template.
async fn lock_template<D: Dialect>(tx: &mut D::Write, id: TemplateId) -> Result<bool, DomainError> {
    match D::LOCK_TEMPLATE {
        Some(lock) => Ok(tx.fetch_optional(lock, &[Value::id(id)]).await.map_err(db_error)?.is_some()),
        None => Ok(true),
    }
}

/// Sets a template's `updated_at`; `false` when there is no such template.
async fn touch_template(tx: &mut impl Write, id: TemplateId, at: Timestamp) -> Result<bool, DomainError> {
    let done = tx
        .execute("UPDATE templates SET updated_at = $2 WHERE id = $1", &[Value::id(id), Value::at(at)])
        .await
        .map_err(db_error)?;
    Ok(done > 0)
}

fn template_not_found(id: TemplateId) -> impl FnOnce() -> DomainError {
    move || DomainError::TemplateNotFound { id: id.to_string() }
}

#[async_trait]
impl<D: Dialect> TemplateStore for Store<D> {
    async fn insert(&self, template: &Template, settings: &Settings) -> Result<(), DomainError> {
        let id = template.id.as_uuid();
        let mut tx = self.db.begin().await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO templates (id, name, engine, is_active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Value::id(id),
                Value::text(template.name.as_str()),
                Value::text(&template.engine),
                Value::Bool(template.is_active),
                Value::at(template.created_at),
                Value::at(template.updated_at),
            ],
        )
        .await
        .map_err(db_error)?;
        tx.execute(
            "INSERT INTO template_settings (template_id, settings) VALUES ($1, $2)",
            &[Value::id(id), Value::json(settings)],
        )
        .await
        .map_err(db_error)?;
        let modules: Vec<&str> = template.exposed_modules.iter().map(|m| m.as_str()).collect();
        tx.insert_names(NameList::Modules, id, &modules).await.map_err(db_error)?;
        let libraries: Vec<&str> = template.libraries.iter().map(|l| l.as_str()).collect();
        tx.insert_names(NameList::Libraries, id, &libraries).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, DomainError> {
        let sql = format!("{} WHERE t.id = $1", D::SELECT_TEMPLATES);
        self.one(&sql, &[Value::id(id)], rows::template).await
    }

    async fn list(&self) -> Result<Vec<Template>, DomainError> {
        let sql = format!("{} ORDER BY t.created_at DESC, t.pk DESC", D::SELECT_TEMPLATES);
        self.all(&sql, &[], rows::template).await
    }

    async fn delete(&self, id: TemplateId) -> Result<bool, DomainError> {
        let done = self.db.execute("DELETE FROM templates WHERE id = $1", &[Value::id(id)]).await.map_err(db_error)?;
        Ok(done > 0)
    }

    async fn settings(&self, id: TemplateId) -> Result<Option<Settings>, DomainError> {
        self.one("SELECT settings FROM template_settings WHERE template_id = $1", &[Value::id(id)], rows::settings)
            .await
    }

    async fn replace_settings(&self, id: TemplateId, settings: &Settings, at: Timestamp) -> Result<bool, DomainError> {
        let mut tx = self.db.begin().await.map_err(db_error)?;
        if !touch_template(&mut tx, id, at).await? {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO template_settings (template_id, settings) VALUES ($1, $2) \
             ON CONFLICT (template_id) DO UPDATE SET settings = excluded.settings",
            &[Value::id(id), Value::json(settings)],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn add_capability(&self, capability: &Capability) -> Result<(), DomainError> {
        self.db
            .execute(
                "INSERT INTO template_capabilities (id, template_id, kind, name, enabled, config, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    Value::id(capability.id),
                    Value::id(capability.template_id),
                    Value::text(capability.kind.as_str()),
                    Value::FreeText(Some(&capability.name)),
                    Value::Bool(capability.enabled),
                    Value::json(&capability.config),
                    Value::at(capability.created_at),
                ],
            )
            .await
            .map_err(|err| missing_parent_or_db_error(err, template_not_found(capability.template_id)))?;
        Ok(())
    }

    async fn capabilities(&self, id: TemplateId) -> Result<Vec<Capability>, DomainError> {
        let sql = format!(
            "SELECT {} FROM template_capabilities WHERE template_id = $1 ORDER BY pk",
            rows::CAPABILITY_COLUMNS
        );
        self.all(&sql, &[Value::id(id)], rows::capability).await
    }

    async fn add_startup_file(&self, file: &StartupFile) -> Result<(), DomainError> {
        self.db
            .execute(
                "INSERT INTO template_startup_files (id, template_id, path, order_index, mode, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    Value::id(file.id),
                    Value::id(file.template_id),
                    Value::text(file.path.as_str()),
                    Value::Int(file.order_index),
                    Value::text(file.mode.as_str()),
                    Value::at(file.created_at),
                ],
            )
            .await
            .map_err(|err| missing_parent_or_db_error(err, template_not_found(file.template_id)))?;
        Ok(())
    }

    async fn startup_files(&self, id: TemplateId) -> Result<Vec<StartupFile>, DomainError> {
        let sql = format!(
            "SELECT {} FROM template_startup_files WHERE template_id = $1 ORDER BY order_index, pk",
            rows::STARTUP_FILE_COLUMNS
        );
        self.all(&sql, &[Value::id(id)], rows::startup_file).await
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
impl<D: Dialect> SessionStore for Store<D> {
    async fn insert(&self, session: &Session) -> Result<(), DomainError> {
        let worktree = session.worktree_path.as_path().to_string_lossy();
        self.db
            .execute(
                "INSERT INTO sessions (id, template_id, workspace_id, base_commit_oid, worktree_path, status, \
                                       created_at, closed_at, last_error, forked_from, node_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    Value::id(session.id),
                    Value::id(session.template_id),
                    Value::text(session.workspace_id.as_str()),
                    Value::text(session.base_commit_oid.as_str()),
                    Value::text(&worktree),
                    Value::text(session.status.as_str()),
                    Value::at(session.created_at),
                    Value::At(session.closed_at),
                    Value::FreeText(session.last_error.as_deref()),
                    Value::Id(session.forked_from.map(Into::into)),
                    Value::Id(session.node_id.map(Into::into)),
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, DomainError> {
        let sql = format!("SELECT {} FROM sessions WHERE id = $1", rows::SESSION_COLUMNS);
        self.one(&sql, &[Value::id(id)], rows::session).await
    }

    async fn list(&self, status: Option<SessionStatus>) -> Result<Vec<Session>, DomainError> {
        match status {
            Some(status) => {
                let sql = format!(
                    "SELECT {} FROM sessions WHERE status = $1 ORDER BY created_at DESC, pk DESC",
                    rows::SESSION_COLUMNS
                );
                self.all(&sql, &[Value::text(status.as_str())], rows::session).await
            }
            None => {
                let sql = format!("SELECT {} FROM sessions ORDER BY created_at DESC, pk DESC", rows::SESSION_COLUMNS);
                self.all(&sql, &[], rows::session).await
            }
        }
    }

    async fn update_state(&self, session: &Session) -> Result<(), DomainError> {
        let done = self
            .db
            .execute(
                "UPDATE sessions SET status = $2, closed_at = $3, last_error = $4 WHERE id = $1",
                &[
                    Value::id(session.id),
                    Value::text(session.status.as_str()),
                    Value::At(session.closed_at),
                    Value::FreeText(session.last_error.as_deref()),
                ],
            )
            .await
            .map_err(db_error)?;
        if done == 0 {
            return Err(DomainError::SessionNotFound { id: session.id.to_string() });
        }
        Ok(())
    }

    /// One aggregate query; a status the domain does not know is a corrupt row.
    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, u64)>, DomainError> {
        self.all("SELECT status, COUNT(*) AS n FROM sessions GROUP BY status", &[], rows::status_count).await
    }

    async fn live_on(&self, node: Option<NodeId>) -> Result<Vec<Session>, DomainError> {
        const LIVE: &str = "status IN ('starting', 'ready')";
        match node {
            Some(node) => {
                let sql = format!(
                    "SELECT {} FROM sessions WHERE node_id = $1 AND {LIVE} ORDER BY created_at, pk",
                    rows::SESSION_COLUMNS
                );
                self.all(&sql, &[Value::id(node)], rows::session).await
            }
            None => {
                let sql = format!(
                    "SELECT {} FROM sessions WHERE {LIVE} AND (node_id IS NULL OR node_id NOT IN \
                     (SELECT id FROM nodes WHERE status = 'live')) ORDER BY created_at, pk",
                    rows::SESSION_COLUMNS
                );
                self.all(&sql, &[], rows::session).await
            }
        }
    }
}

#[async_trait]
impl<D: Dialect> NodeStore for Store<D> {
    async fn insert(&self, node: &Node) -> Result<(), DomainError> {
        self.db
            .execute(
                "INSERT INTO nodes (id, url, version, status, started_at, heartbeat_at, lease_expires_at, lost_at, \
                                    max_sessions) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    Value::id(node.id),
                    Value::text(&node.url),
                    Value::text(&node.version),
                    Value::text(node.status.as_str()),
                    Value::at(node.started_at),
                    Value::at(node.heartbeat_at),
                    Value::at(node.lease_expires_at),
                    Value::At(node.lost_at),
                    Value::Int(i64::from(node.max_sessions)),
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn renew(&self, id: NodeId, at: Timestamp, expires: Timestamp) -> Result<bool, DomainError> {
        let renewed = self
            .db
            .execute(
                "UPDATE nodes SET heartbeat_at = $2, lease_expires_at = $3 WHERE id = $1 AND status = 'live'",
                &[Value::id(id), Value::at(at), Value::at(expires)],
            )
            .await
            .map_err(db_error)?;
        Ok(renewed > 0)
    }

    async fn get(&self, id: NodeId) -> Result<Option<Node>, DomainError> {
        let sql = format!("SELECT {} FROM nodes n WHERE n.id = $1", rows::node_columns("n"));
        self.one(&sql, &[Value::id(id)], rows::node).await
    }

    async fn list(&self) -> Result<Vec<Node>, DomainError> {
        let sql = format!(
            "SELECT {} FROM nodes n ORDER BY CASE WHEN n.status = 'live' THEN 0 ELSE 1 END, n.started_at DESC, n.pk DESC",
            rows::node_columns("n")
        );
        self.all(&sql, &[], rows::node).await
    }

    /// One conditional `UPDATE … RETURNING`: of two nodes claiming the same
    /// row at once, the second finds it no longer live and gets nothing.
    async fn claim_lost(&self, except: NodeId, now: Timestamp, all_others: bool) -> Result<Option<Node>, DomainError> {
        let sql = format!(
            "UPDATE nodes SET status = 'lost', lost_at = $2 \
             WHERE status = 'live' AND id = (SELECT id FROM nodes WHERE status = 'live' AND id <> $1 \
                                              AND ($3 OR lease_expires_at < $2) ORDER BY pk LIMIT 1) \
             RETURNING {}",
            rows::node_columns("nodes")
        );
        let mut tx = self.db.begin().await.map_err(db_error)?;
        let row = tx
            .fetch_optional(&sql, &[Value::id(except), Value::at(now), Value::Bool(all_others)])
            .await
            .map_err(db_error)?;
        let node = row.as_ref().map(rows::node).transpose()?;
        tx.commit().await.map_err(db_error)?;
        Ok(node)
    }

    async fn mark_lost(&self, id: NodeId, at: Timestamp) -> Result<(), DomainError> {
        self.db
            .execute(
                "UPDATE nodes SET status = 'lost', lost_at = $2 WHERE id = $1 AND status = 'live'",
                &[Value::id(id), Value::at(at)],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn shared_secret(&self, candidate: &str) -> Result<String, DomainError> {
        self.db
            .execute(
                "INSERT INTO cluster_secrets (name, value) VALUES ('node_credential', $1) ON CONFLICT DO NOTHING",
                &[Value::text(candidate)],
            )
            .await
            .map_err(db_error)?;
        let stored = self
            .db
            .fetch_optional("SELECT value FROM cluster_secrets WHERE name = 'node_credential'", &[])
            .await
            .map_err(db_error)?;
        let value = stored.as_ref().map(|row| crate::dialect::ReadRow::text(row, "value")).transpose()?.flatten();
        value.ok_or_else(|| DomainError::internal("the node credential was stored but cannot be read"))
    }
}

#[async_trait]
impl<D: Dialect> ExecutionStore for Store<D> {
    async fn insert(&self, execution: &Execution) -> Result<(), DomainError> {
        let metrics = &execution.metrics;
        let inserted = self
            .db
            .execute(
                "INSERT INTO executions (id, session_id, kind, input, path, args, env, status, started_at, \
                                         ended_at, result, error, duration_ms, event_count, output_bytes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                &[
                    Value::id(execution.id),
                    Value::id(execution.session_id),
                    Value::text(execution.kind.as_str()),
                    Value::FreeText(execution.input.as_deref()),
                    Value::Text(execution.path.as_deref()),
                    Value::json(&execution.args),
                    Value::json(&execution.env),
                    Value::text(execution.status.as_str()),
                    Value::at(execution.started_at),
                    Value::At(execution.ended_at),
                    Value::Json(execution.result.as_ref().map(rows::json_text)),
                    Value::Json(execution.error.as_ref().map(rows::json_text)),
                    Value::Int(count_value(metrics.duration_ms)?),
                    Value::Int(count_value(metrics.event_count)?),
                    Value::Int(count_value(metrics.output_bytes)?),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|err| {
                missing_parent_or_db_error(err, || DomainError::SessionNotFound {
                    id: execution.session_id.to_string(),
                })
            });
        self.note_write(inserted)
    }

    /// An empty batch returns at once, touching neither the database nor
    /// the write health.
    async fn append_events(&self, id: ExecutionId, events: &[Event]) -> Result<(), DomainError> {
        if events.is_empty() {
            return Ok(());
        }
        let appended = self.write_events(id, events).await;
        self.note_write(appended)
    }

    async fn finish(&self, execution: &Execution, events: &[Event]) -> Result<(), DomainError> {
        let finished = self.write_finish(execution, events).await;
        self.note_write(finished)
    }

    async fn get(&self, id: ExecutionId) -> Result<Option<Execution>, DomainError> {
        let sql = format!("SELECT {} FROM executions WHERE id = $1", rows::EXECUTION_COLUMNS);
        self.one(&sql, &[Value::id(id)], rows::execution).await
    }

    async fn list(&self, session_id: Option<SessionId>, limit: u32) -> Result<Vec<Execution>, DomainError> {
        let limit = Value::Int(i64::from(limit));
        match session_id {
            Some(session_id) => {
                let sql = format!(
                    "SELECT {} FROM executions WHERE session_id = $1 ORDER BY started_at DESC, pk DESC LIMIT $2",
                    rows::EXECUTION_COLUMNS
                );
                self.all(&sql, &[Value::id(session_id), limit], rows::execution).await
            }
            None => {
                let sql = format!(
                    "SELECT {} FROM executions ORDER BY started_at DESC, pk DESC LIMIT $1",
                    rows::EXECUTION_COLUMNS
                );
                self.all(&sql, &[limit], rows::execution).await
            }
        }
    }

    async fn events_after(&self, id: ExecutionId, after_seq: i64) -> Result<Vec<Event>, DomainError> {
        self.all(
            "SELECT execution_id, seq, ts, type AS type_name, payload \
             FROM execution_events WHERE execution_id = $1 AND seq > $2 ORDER BY seq",
            &[Value::id(id), Value::Int(after_seq)],
            rows::event,
        )
        .await
    }

    async fn running(&self) -> Result<Vec<Execution>, DomainError> {
        let sql = format!(
            "SELECT {} FROM executions WHERE status = 'running' ORDER BY started_at, pk",
            rows::EXECUTION_COLUMNS
        );
        self.all(&sql, &[], rows::execution).await
    }

    /// Retries [`ExecutionStore::finish`] with a growing pause (up to
    /// [`RETRY_MAX`]) for as long as the store is out, and stops once the
    /// execution is stored, including by an attempt whose commit landed
    /// although it reported a failure.
    fn finish_later(&self, execution: Execution, events: Vec<Event>) {
        let store = self.clone();
        store.pending.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(execution_id = %execution.id, "execution finished while the store is out; kept in memory");
        tokio::spawn(async move {
            let mut pause = RETRY_FIRST;
            loop {
                tokio::time::sleep(pause).await;
                match store.finish(&execution, &events).await {
                    Ok(()) => break,
                    Err(_) if store.is_finished(execution.id).await => break,
                    Err(err) if err.is_store_outage() || err.code() == "INTERNAL" => {
                        tracing::debug!(execution_id = %execution.id, error = %err, "pending execution not stored yet");
                    }
                    Err(err) => {
                        tracing::error!(execution_id = %execution.id, error = %err, "pending execution dropped");
                        break;
                    }
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
            store.pending.fetch_sub(1, Ordering::SeqCst);
            tracing::info!(execution_id = %execution.id, "pending execution handled");
        });
    }
}

#[async_trait]
impl<D: Dialect> TokenStore for Store<D> {
    /// A second token with the same digest (or id) is an `Internal` error:
    /// with 256-bit random secrets it does not happen.
    async fn insert(&self, token: &Token, digest: &SecretDigest) -> Result<(), DomainError> {
        self.db
            .execute(
                "INSERT INTO api_tokens (id, name, scopes, secret_digest, created_at, last_used_at, expires_at, \
                                         revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    Value::id(token.id),
                    Value::text(token.name.as_str()),
                    Value::Json(Some(scopes_json(&token.scopes))),
                    Value::text(digest.as_str()),
                    Value::at(token.created_at),
                    Value::At(token.last_used_at),
                    Value::At(token.expires_at),
                    Value::At(token.revoked_at),
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn by_digest(&self, digest: &SecretDigest) -> Result<Option<Token>, DomainError> {
        let sql = format!("SELECT {} FROM api_tokens WHERE secret_digest = $1", rows::TOKEN_COLUMNS);
        self.one(&sql, &[Value::text(digest.as_str())], rows::token).await
    }

    async fn get(&self, id: TokenId) -> Result<Option<Token>, DomainError> {
        let sql = format!("SELECT {} FROM api_tokens WHERE id = $1", rows::TOKEN_COLUMNS);
        self.one(&sql, &[Value::id(id)], rows::token).await
    }

    async fn list(&self) -> Result<Vec<Token>, DomainError> {
        let sql = format!("SELECT {} FROM api_tokens ORDER BY created_at DESC, pk DESC", rows::TOKEN_COLUMNS);
        self.all(&sql, &[], rows::token).await
    }

    /// One statement: the first `revoked_at` stays, and the row counts as
    /// found whether or not it was revoked already.
    async fn revoke(&self, id: TokenId, at: Timestamp) -> Result<bool, DomainError> {
        let done = self
            .db
            .execute(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[Value::id(id), Value::at(at)],
            )
            .await
            .map_err(db_error)?;
        Ok(done > 0)
    }

    /// Touching a token that does not exist changes nothing.
    async fn touch(&self, id: TokenId, at: Timestamp) -> Result<(), DomainError> {
        self.db
            .execute("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", &[Value::id(id), Value::at(at)])
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> StoreHealth for Store<D> {
    /// A bounded query, and the outage the last execution write met if no
    /// write has succeeded since, while a pending write is retrying or for
    /// [`WRITE_FAILURE_MEMORY`] (reads may work on a full disk).
    async fn check(&self) -> Result<(), DomainError> {
        match tokio::time::timeout(READY_TIMEOUT, self.db.ping()).await {
            Ok(answered) => answered.map_err(db_error)?,
            Err(_) => {
                return Err(DomainError::StoreUnavailable {
                    reason: format!("no answer within {} s", READY_TIMEOUT.as_secs()),
                    execution_id: None,
                })
            }
        }
        let waiting = self.pending.load(Ordering::SeqCst) > 0;
        match &*self.failing_writes.lock().expect("never poisoned") {
            Some((outage, at)) if waiting || at.elapsed() < WRITE_FAILURE_MEMORY => {
                Err(bare_outage(outage).expect("only outages are kept"))
            }
            _ => Ok(()),
        }
    }

    fn pending_writes(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    fn connections(&self) -> Connections {
        self.db.connections()
    }
}
