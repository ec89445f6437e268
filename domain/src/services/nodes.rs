//! Node rules: joining the database, the lease and its renewal, failing
//! over the sessions of a node that was lost, placing new sessions by free
//! capacity, and knowing which node must serve a session's worker.

use std::sync::{Arc, OnceLock};

use serde_json::json;

use super::ReconcileReport;
use crate::event::{Event, EventPayload, SystemLevel};
use crate::execution::{Execution, ExecutionStatus};
use crate::ids::{ExecutionId, NodeId, SessionId};
use crate::node::{Node, NodeConfig, NodeStatus};
use crate::ports::{Clock, ExecutionStore, JsRuntime, NodeStore, SessionStore};
use crate::session::{Session, SessionStatus};
use crate::DomainError;

/// Which node serves a request that needs a session's worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// This node: it runs the worker, or nothing runs it any more and the
    /// stored state answers.
    Here,
    /// Another live node runs it.
    Node { node: Node, session_id: Option<SessionId> },
}

/// What a renewal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease moved on; `released` is what this node failed over from
    /// nodes found lost meanwhile.
    Renewed { lost_nodes: Vec<NodeId>, released: ReconcileReport },
    /// Another node found this one lost (its lease ran out, e.g. while it
    /// was cut off): its sessions were failed over and it must stop.
    Lost,
}

/// Why sessions are released, which decides what they become.
enum Release<'a> {
    /// A daemon starts: nothing runs the sessions of nodes that are gone.
    /// They are `closed`, as a restart always did.
    Start,
    /// Another node stopped renewing its lease: its sessions are `crashed`.
    NodeLost(&'a Node),
    /// This node stops gracefully: its sessions are `closed`.
    Stop,
}

impl Release<'_> {
    fn session_state(&self) -> (SessionStatus, String) {
        match self {
            Release::Start => (
                SessionStatus::Closed,
                "closed at daemon start: the runtime ended with the previous process".to_owned(),
            ),
            Release::NodeLost(node) => (
                SessionStatus::Crashed,
                format!("node lost: node {} ({}) stopped renewing its lease", node.id, node.url),
            ),
            Release::Stop => (SessionStatus::Closed, "closed: its daemon stopped".to_owned()),
        }
    }

    fn execution_message(&self) -> String {
        match self {
            Release::Start | Release::Stop => "execution interrupted: the daemon stopped before it finished".to_owned(),
            Release::NodeLost(node) => {
                format!("execution interrupted: node {} ({}) that ran it was lost", node.id, node.url)
            }
        }
    }
}

pub struct NodeService {
    nodes: Arc<dyn NodeStore>,
    sessions: Arc<dyn SessionStore>,
    executions: Arc<dyn ExecutionStore>,
    runtime: Arc<dyn JsRuntime>,
    clock: Arc<dyn Clock>,
    this: NodeId,
    config: NodeConfig,
    /// Set by [`NodeService::join`].
    secret: OnceLock<String>,
}

impl NodeService {
    pub fn new(
        nodes: Arc<dyn NodeStore>,
        sessions: Arc<dyn SessionStore>,
        executions: Arc<dyn ExecutionStore>,
        runtime: Arc<dyn JsRuntime>,
        clock: Arc<dyn Clock>,
        config: NodeConfig,
    ) -> Self {
        Self { nodes, sessions, executions, runtime, clock, this: NodeId::new(), config, secret: OnceLock::new() }
    }

    /// This node's id (new for every process).
    pub fn id(&self) -> NodeId {
        self.this
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Joins the database: marks lost every other node whose lease expired
    /// (every other node when this one holds the database alone), stores
    /// this node's row, learns the nodes' shared secret (storing
    /// `secret_candidate` if there is none yet), and closes what nothing
    /// runs any more: sessions on no live node, and their executions left
    /// `running`, finalised as `cancelled` with a `system` event.
    pub async fn join(&self, secret_candidate: &str) -> Result<ReconcileReport, DomainError> {
        let now = self.clock.now();
        while self.nodes.claim_lost(self.this, now, self.config.exclusive).await?.is_some() {}
        let node = Node {
            id: self.this,
            url: self.config.url.clone(),
            version: self.config.version.clone(),
            status: NodeStatus::Live,
            started_at: now,
            heartbeat_at: now,
            lease_expires_at: now + self.lease(),
            lost_at: None,
            max_sessions: self.config.max_sessions,
            active_sessions: 0,
        };
        self.nodes.insert(&node).await?;
        let secret = self.nodes.shared_secret(secret_candidate).await?;
        let _ = self.secret.set(secret);
        self.release(None, &Release::Start).await
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(10))
    }

    /// Renews this node's lease, then fails over every other node whose
    /// lease has run out: its live sessions become `crashed` ("node lost")
    /// and its running executions `cancelled` with a `system` event; the
    /// events they stored stay. Run every [`NodeConfig::heartbeat`].
    pub async fn heartbeat(&self) -> Result<Heartbeat, DomainError> {
        let now = self.clock.now();
        if !self.nodes.renew(self.this, now, now + self.lease()).await? {
            return Ok(Heartbeat::Lost);
        }
        let mut lost_nodes = Vec::new();
        let mut released = ReconcileReport::default();
        while let Some(node) = self.nodes.claim_lost(self.this, now, false).await? {
            tracing::warn!(node_id = %node.id, url = node.url, "node lost: its lease ran out; failing its sessions over");
            let report = self.release(Some(node.id), &Release::NodeLost(&node)).await?;
            released.closed_sessions += report.closed_sessions;
            released.finalised_executions += report.finalised_executions;
            lost_nodes.push(node.id);
        }
        Ok(Heartbeat::Renewed { lost_nodes, released })
    }

    /// Leaves the database as the daemon stops (after its drain): closes
    /// this node's sessions and their runtimes and marks the node lost, so
    /// that no other node waits for its lease.
    pub async fn leave(&self) -> Result<ReconcileReport, DomainError> {
        let report = self.release(Some(self.this), &Release::Stop).await?;
        for id in self.runtime.live_sessions() {
            self.runtime.close(id).await;
        }
        self.nodes.mark_lost(self.this, self.clock.now()).await?;
        Ok(report)
    }

    /// The sessions that claim to be live on `node` (on no live node with
    /// `None`) take the state `why` gives, and the executions still
    /// `running` in them are finalised as `cancelled`. One session or
    /// execution that cannot be written is logged and skipped: another
    /// node may have finalised it first.
    async fn release(&self, node: Option<NodeId>, why: &Release<'_>) -> Result<ReconcileReport, DomainError> {
        let now = self.clock.now();
        let mut report = ReconcileReport::default();
        let (status, reason) = why.session_state();
        for mut session in self.sessions.live_on(node).await? {
            session.status = status;
            session.closed_at = (status == SessionStatus::Closed).then_some(now);
            session.last_error = Some(reason.clone());
            match self.sessions.update_state(&session).await {
                Ok(()) => report.closed_sessions += 1,
                Err(err) => tracing::warn!(session_id = %session.id, error = %err, "cannot release a session"),
            }
        }
        let live_nodes: Vec<NodeId> = match node {
            Some(_) => Vec::new(),
            None => {
                self.nodes.list().await?.into_iter().filter(|n| n.status == NodeStatus::Live).map(|n| n.id).collect()
            }
        };
        let message = why.execution_message();
        for execution in self.executions.running().await? {
            let owner = self.sessions.get(execution.session_id).await?.and_then(|s| s.node_id);
            let orphaned = match node {
                Some(node) => owner == Some(node),
                None => owner.is_none_or(|owner| !live_nodes.contains(&owner)),
            };
            if !orphaned {
                continue;
            }
            let id = execution.id;
            match self.interrupt(execution, &message).await {
                Ok(()) => report.finalised_executions += 1,
                Err(err) => {
                    tracing::warn!(execution_id = %id, error = %err, "cannot finalise an interrupted execution")
                }
            }
        }
        Ok(report)
    }

    /// Finalises an execution nothing runs any more as `cancelled`, after
    /// the events it stored, with a `system` event saying why.
    async fn interrupt(&self, mut execution: Execution, message: &str) -> Result<(), DomainError> {
        let now = self.clock.now();
        let next_seq = self.executions.events_after(execution.id, 0).await?.last().map_or(1, |e| e.seq + 1);
        let event = Event {
            execution_id: execution.id,
            seq: next_seq,
            ts: now,
            payload: EventPayload::System { message: message.to_owned(), level: SystemLevel::Warn },
        };
        execution.status = ExecutionStatus::Cancelled;
        execution.ended_at = Some(now);
        execution.error = Some(json!({ "code": "INTERRUPTED", "message": message }));
        execution.metrics.event_count = next_seq as u64;
        execution.metrics.duration_ms = (now - execution.started_at).num_milliseconds().max(0) as u64;
        self.executions.finish(&execution, &[event]).await
    }

    /// Every node, live ones first.
    pub async fn list(&self) -> Result<Vec<Node>, DomainError> {
        self.nodes.list().await
    }

    /// Where a new session goes: with `local`, this node if it has room;
    /// otherwise the live node with the most free capacity (this one on a
    /// tie). `NO_CAPACITY` when there is no room.
    pub async fn place(&self, local: bool) -> Result<Route, DomainError> {
        let now = self.clock.now();
        let nodes = self.nodes.list().await?;
        let here = nodes.iter().find(|n| n.id == self.this);
        if local {
            return match here {
                Some(node) if node.free_capacity() == 0 => Err(self.no_capacity("on this node (placement=local)")),
                _ => Ok(Route::Here),
            };
        }
        let best = nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Live && (n.id == self.this || !n.lease_expired(now)))
            .max_by_key(|n| (n.free_capacity(), n.id == self.this));
        match best {
            None => Ok(Route::Here),
            Some(node) if node.free_capacity() == 0 => Err(self.no_capacity("on any live node")),
            Some(node) if node.id == self.this => Ok(Route::Here),
            Some(node) => Ok(Route::Node { node: node.clone(), session_id: None }),
        }
    }

    fn no_capacity(&self, scope: &str) -> DomainError {
        DomainError::NoCapacity { scope: scope.to_owned(), max_sessions: self.config.max_sessions }
    }

    /// Which node serves a request for `id`'s worker (an execution, a
    /// cancel, a fork, a close). `NODE_UNAVAILABLE` while the session's
    /// node is lost but its sessions are not failed over yet.
    pub async fn route_session(&self, id: SessionId) -> Result<Route, DomainError> {
        match self.sessions.get(id).await? {
            Some(session) => self.route(&session).await,
            None => Ok(Route::Here),
        }
    }

    /// [`NodeService::route_session`] for the session of execution `id`;
    /// with `running_only`, an execution that ended is served here (its
    /// events are all stored).
    pub async fn route_execution(&self, id: ExecutionId, running_only: bool) -> Result<Route, DomainError> {
        let Some(execution) = self.executions.get(id).await? else { return Ok(Route::Here) };
        if running_only && execution.status != ExecutionStatus::Running {
            return Ok(Route::Here);
        }
        self.route_session(execution.session_id).await
    }

    async fn route(&self, session: &Session) -> Result<Route, DomainError> {
        let owner = match session.node_id {
            Some(owner) if owner != self.this && session.status.claims_live() => owner,
            _ => return Ok(Route::Here),
        };
        match self.nodes.get(owner).await? {
            Some(node) if node.status == NodeStatus::Live => Ok(Route::Node { node, session_id: Some(session.id) }),
            node => Err(DomainError::NodeUnavailable {
                node_id: owner,
                url: node.map(|n| n.url).unwrap_or_default(),
                session_id: Some(session.id),
                reason: "the node was lost and its sessions are being failed over".to_owned(),
            }),
        }
    }

    /// The secret nodes show each other on forwarded requests.
    pub fn secret(&self) -> &str {
        self.secret.get().map_or("", String::as_str)
    }

    /// Whether `credential` is the nodes' shared secret (compared in
    /// constant time). Always `false` before [`NodeService::join`].
    pub fn accepts(&self, credential: &str) -> bool {
        let secret = self.secret().as_bytes();
        let given = credential.as_bytes();
        !secret.is_empty()
            && secret.len() == given.len()
            && secret.iter().zip(given).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}
