//! [`Measured`]: the store ports with each call timed into
//! `vm_store_query_duration_seconds{op}`, `op` naming the port method
//! (`sessions.list`, `executions.finish`, …). The `metrics` facade does
//! nothing until the daemon installs a recorder.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use metrics::{describe_histogram, histogram, Unit};
use vm_domain::catalog::{LibraryRef, ModuleName};
use vm_domain::event::Event;
use vm_domain::execution::Execution;
use vm_domain::ids::{ExecutionId, NodeId, SessionId, TemplateId, TokenId};
use vm_domain::node::Node;
use vm_domain::ports::{Connections, ExecutionStore, NodeStore, SessionStore, StoreHealth, TemplateStore, TokenStore};
use vm_domain::session::{Session, SessionStatus};
use vm_domain::template::{Capability, Settings, StartupFile, Template};
use vm_domain::token::{SecretDigest, Token};
use vm_domain::{DomainError, Timestamp};

/// Histogram, label `op`.
pub const QUERY_DURATION: &str = "vm_store_query_duration_seconds";

/// Gives the store's metrics their help texts.
pub fn describe() {
    describe_histogram!(
        QUERY_DURATION,
        Unit::Seconds,
        "Time a store call took, from asking to answer (waiting for a connection included), by operation (e.g. sessions.list)."
    );
}

/// A store whose every port call is timed.
pub struct Measured<S>(pub Arc<S>);

async fn timed<T>(op: &'static str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = call.await;
    histogram!(QUERY_DURATION, "op" => op).record(started.elapsed().as_secs_f64());
    answer
}

#[async_trait]
impl<S: TemplateStore> TemplateStore for Measured<S> {
    async fn insert(&self, template: &Template, settings: &Settings) -> Result<(), DomainError> {
        timed("templates.insert", self.0.insert(template, settings)).await
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, DomainError> {
        timed("templates.get", self.0.get(id)).await
    }

    async fn list(&self) -> Result<Vec<Template>, DomainError> {
        timed("templates.list", self.0.list()).await
    }

    async fn delete(&self, id: TemplateId) -> Result<bool, DomainError> {
        timed("templates.delete", self.0.delete(id)).await
    }

    async fn settings(&self, id: TemplateId) -> Result<Option<Settings>, DomainError> {
        timed("templates.settings", self.0.settings(id)).await
    }

    async fn replace_settings(&self, id: TemplateId, settings: &Settings, at: Timestamp) -> Result<bool, DomainError> {
        timed("templates.replace_settings", self.0.replace_settings(id, settings, at)).await
    }

    async fn add_capability(&self, capability: &Capability) -> Result<(), DomainError> {
        timed("templates.add_capability", self.0.add_capability(capability)).await
    }

    async fn capabilities(&self, id: TemplateId) -> Result<Vec<Capability>, DomainError> {
        timed("templates.capabilities", self.0.capabilities(id)).await
    }

    async fn add_startup_file(&self, file: &StartupFile) -> Result<(), DomainError> {
        timed("templates.add_startup_file", self.0.add_startup_file(file)).await
    }

    async fn startup_files(&self, id: TemplateId) -> Result<Vec<StartupFile>, DomainError> {
        timed("templates.startup_files", self.0.startup_files(id)).await
    }

    async fn add_module(&self, id: TemplateId, name: &ModuleName, at: Timestamp) -> Result<(), DomainError> {
        timed("templates.add_module", self.0.add_module(id, name, at)).await
    }

    async fn remove_module(&self, id: TemplateId, name: &ModuleName, at: Timestamp) -> Result<bool, DomainError> {
        timed("templates.remove_module", self.0.remove_module(id, name, at)).await
    }

    async fn add_library(&self, id: TemplateId, library: &LibraryRef, at: Timestamp) -> Result<(), DomainError> {
        timed("templates.add_library", self.0.add_library(id, library, at)).await
    }

    async fn remove_library(&self, id: TemplateId, library: &LibraryRef, at: Timestamp) -> Result<bool, DomainError> {
        timed("templates.remove_library", self.0.remove_library(id, library, at)).await
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for Measured<S> {
    async fn insert(&self, session: &Session) -> Result<(), DomainError> {
        timed("sessions.insert", self.0.insert(session)).await
    }

    async fn get(&self, id: SessionId) -> Result<Option<Session>, DomainError> {
        timed("sessions.get", self.0.get(id)).await
    }

    async fn list(&self, status: Option<SessionStatus>) -> Result<Vec<Session>, DomainError> {
        timed("sessions.list", self.0.list(status)).await
    }

    async fn update_state(&self, session: &Session) -> Result<(), DomainError> {
        timed("sessions.update_state", self.0.update_state(session)).await
    }

    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, u64)>, DomainError> {
        timed("sessions.count_by_status", self.0.count_by_status()).await
    }

    async fn live_on(&self, node: Option<NodeId>) -> Result<Vec<Session>, DomainError> {
        timed("sessions.live_on", self.0.live_on(node)).await
    }
}

#[async_trait]
impl<S: NodeStore> NodeStore for Measured<S> {
    async fn insert(&self, node: &Node) -> Result<(), DomainError> {
        timed("nodes.insert", self.0.insert(node)).await
    }

    async fn renew(&self, id: NodeId, at: Timestamp, expires: Timestamp) -> Result<bool, DomainError> {
        timed("nodes.renew", self.0.renew(id, at, expires)).await
    }

    async fn get(&self, id: NodeId) -> Result<Option<Node>, DomainError> {
        timed("nodes.get", self.0.get(id)).await
    }

    async fn list(&self) -> Result<Vec<Node>, DomainError> {
        timed("nodes.list", self.0.list()).await
    }

    async fn claim_lost(&self, except: NodeId, now: Timestamp, all_others: bool) -> Result<Option<Node>, DomainError> {
        timed("nodes.claim_lost", self.0.claim_lost(except, now, all_others)).await
    }

    async fn mark_lost(&self, id: NodeId, at: Timestamp) -> Result<(), DomainError> {
        timed("nodes.mark_lost", self.0.mark_lost(id, at)).await
    }

    async fn shared_secret(&self, candidate: &str) -> Result<String, DomainError> {
        timed("nodes.shared_secret", self.0.shared_secret(candidate)).await
    }
}

#[async_trait]
impl<S: ExecutionStore> ExecutionStore for Measured<S> {
    async fn insert(&self, execution: &Execution) -> Result<(), DomainError> {
        timed("executions.insert", self.0.insert(execution)).await
    }

    async fn append_events(&self, id: ExecutionId, events: &[Event]) -> Result<(), DomainError> {
        timed("executions.append_events", self.0.append_events(id, events)).await
    }

    async fn finish(&self, execution: &Execution, events: &[Event]) -> Result<(), DomainError> {
        timed("executions.finish", self.0.finish(execution, events)).await
    }

    async fn get(&self, id: ExecutionId) -> Result<Option<Execution>, DomainError> {
        timed("executions.get", self.0.get(id)).await
    }

    async fn list(&self, session_id: Option<SessionId>, limit: u32) -> Result<Vec<Execution>, DomainError> {
        timed("executions.list", self.0.list(session_id, limit)).await
    }

    async fn events_after(&self, id: ExecutionId, after_seq: i64) -> Result<Vec<Event>, DomainError> {
        timed("executions.events_after", self.0.events_after(id, after_seq)).await
    }

    async fn running(&self) -> Result<Vec<Execution>, DomainError> {
        timed("executions.running", self.0.running()).await
    }

    /// Not timed: it returns at once and writes in the background.
    fn finish_later(&self, execution: Execution, events: Vec<Event>) {
        self.0.finish_later(execution, events)
    }
}

#[async_trait]
impl<S: TokenStore> TokenStore for Measured<S> {
    async fn insert(&self, token: &Token, digest: &SecretDigest) -> Result<(), DomainError> {
        timed("tokens.insert", self.0.insert(token, digest)).await
    }

    async fn by_digest(&self, digest: &SecretDigest) -> Result<Option<Token>, DomainError> {
        timed("tokens.by_digest", self.0.by_digest(digest)).await
    }

    async fn get(&self, id: TokenId) -> Result<Option<Token>, DomainError> {
        timed("tokens.get", self.0.get(id)).await
    }

    async fn list(&self) -> Result<Vec<Token>, DomainError> {
        timed("tokens.list", self.0.list()).await
    }

    async fn revoke(&self, id: TokenId, at: Timestamp) -> Result<bool, DomainError> {
        timed("tokens.revoke", self.0.revoke(id, at)).await
    }

    async fn touch(&self, id: TokenId, at: Timestamp) -> Result<(), DomainError> {
        timed("tokens.touch", self.0.touch(id, at)).await
    }
}

#[async_trait]
impl<S: StoreHealth> StoreHealth for Measured<S> {
    async fn check(&self) -> Result<(), DomainError> {
        timed("health.check", self.0.check()).await
    }

    fn pending_writes(&self) -> usize {
        self.0.pending_writes()
    }

    fn connections(&self) -> Connections {
        self.0.connections()
    }
}
