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

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::ports::runtime::MockJsRuntime;
    use crate::ports::store::{MockExecutionStore, MockNodeStore, MockSessionStore};
    use crate::services::fixtures::{a_session, an_execution, fixed_clock};

    struct Parts {
        nodes: MockNodeStore,
        sessions: MockSessionStore,
        executions: MockExecutionStore,
        runtime: MockJsRuntime,
    }

    impl Parts {
        fn new() -> Self {
            Self {
                nodes: MockNodeStore::new(),
                sessions: MockSessionStore::new(),
                executions: MockExecutionStore::new(),
                runtime: MockJsRuntime::new(),
            }
        }

        fn build(self) -> NodeService {
            let config = NodeConfig {
                url: "http://127.0.0.1:3211".into(),
                version: "test".into(),
                max_sessions: 4,
                lease: std::time::Duration::from_secs(8),
                exclusive: false,
            };
            NodeService::new(
                Arc::new(self.nodes),
                Arc::new(self.sessions),
                Arc::new(self.executions),
                Arc::new(self.runtime),
                fixed_clock(),
                config,
            )
        }
    }

    fn a_node(id: NodeId, max_sessions: u32, active_sessions: u32) -> Node {
        let now = fixed_clock().now();
        Node {
            id,
            url: format!("http://node-{}", &id.to_string()[..8]),
            version: "test".into(),
            status: NodeStatus::Live,
            started_at: now,
            heartbeat_at: now,
            lease_expires_at: now + chrono::Duration::seconds(8),
            lost_at: None,
            max_sessions,
            active_sessions,
        }
    }

    /// The service and the id it will have, with `others` beside it and
    /// this node at `(max, active)`.
    fn placing(here: (u32, u32), others: Vec<Node>) -> NodeService {
        let parts = Parts::new();
        let service = parts.build();
        let this = a_node(service.id(), here.0, here.1);
        let mut listed = vec![this];
        listed.extend(others);
        let mut nodes = MockNodeStore::new();
        nodes.expect_list().returning(move || Ok(listed.clone()));
        NodeService { nodes: Arc::new(nodes), ..service }
    }

    #[test]
    fn a_new_session_goes_to_the_node_with_the_most_room_and_this_one_on_a_tie() {
        let roomy = a_node(NodeId::new(), 10, 2);
        let service = placing((4, 1), vec![roomy.clone(), a_node(NodeId::new(), 3, 0)]);
        assert_eq!(block_on(service.place(false)).unwrap(), Route::Node { node: roomy, session_id: None });
        let service = placing((4, 1), vec![a_node(NodeId::new(), 5, 2)]);
        assert_eq!(block_on(service.place(false)).unwrap(), Route::Here, "3 free each: this node");
    }

    #[test]
    fn nodes_that_are_lost_or_past_their_lease_take_no_session() {
        let mut lost = a_node(NodeId::new(), 50, 0);
        lost.status = NodeStatus::Lost;
        let mut stale = a_node(NodeId::new(), 50, 0);
        stale.lease_expires_at = fixed_clock().now() - chrono::Duration::seconds(1);
        let service = placing((4, 3), vec![lost, stale]);
        assert_eq!(block_on(service.place(false)).unwrap(), Route::Here);
    }

    #[test]
    fn no_room_anywhere_is_no_capacity_and_local_looks_only_here() {
        let service = placing((4, 4), vec![a_node(NodeId::new(), 2, 2)]);
        assert_eq!(block_on(service.place(false)).unwrap_err().code(), "NO_CAPACITY");
        let service = placing((4, 4), vec![a_node(NodeId::new(), 9, 0)]);
        let err = block_on(service.place(true)).unwrap_err();
        assert_eq!(err.code(), "NO_CAPACITY");
        assert!(err.to_string().contains("placement=local"), "{err}");
        let service = placing((4, 3), vec![a_node(NodeId::new(), 9, 0)]);
        assert_eq!(block_on(service.place(true)).unwrap(), Route::Here);
    }

    #[test]
    fn a_live_session_of_another_live_node_is_served_there_and_others_here() {
        let owner = a_node(NodeId::new(), 4, 1);
        let mut parts = Parts::new();
        let (owned, closed, mine) = (SessionId::new(), SessionId::new(), SessionId::new());
        let owner_id = owner.id;
        parts.nodes.expect_get().returning(move |_| Ok(Some(owner.clone())));
        let service_id = std::sync::Arc::new(std::sync::Mutex::new(None::<NodeId>));
        let me = service_id.clone();
        parts.sessions.expect_get().returning(move |id| {
            let mut session = a_session(id, SessionStatus::Ready);
            session.node_id = Some(owner_id);
            if id == closed {
                session.status = SessionStatus::Closed;
            }
            if id == mine {
                session.node_id = *me.lock().unwrap();
            }
            Ok(Some(session))
        });
        let service = parts.build();
        *service_id.lock().unwrap() = Some(service.id());
        match block_on(service.route_session(owned)).unwrap() {
            Route::Node { node, session_id } => assert_eq!((node.id, session_id), (owner_id, Some(owned))),
            Route::Here => panic!("the owner serves it"),
        }
        assert_eq!(block_on(service.route_session(closed)).unwrap(), Route::Here, "nothing runs it");
        assert_eq!(block_on(service.route_session(mine)).unwrap(), Route::Here);
    }

    #[test]
    fn a_live_session_of_a_lost_node_not_yet_failed_over_is_node_unavailable() {
        let mut gone = a_node(NodeId::new(), 4, 1);
        gone.status = NodeStatus::Lost;
        let gone_id = gone.id;
        let mut parts = Parts::new();
        parts.nodes.expect_get().returning(move |_| Ok(Some(gone.clone())));
        parts.sessions.expect_get().returning(move |id| {
            let mut session = a_session(id, SessionStatus::Ready);
            session.node_id = Some(gone_id);
            Ok(Some(session))
        });
        let err = block_on(parts.build().route_session(SessionId::new())).unwrap_err();
        assert_eq!(err.code(), "NODE_UNAVAILABLE");
        assert_eq!(err.details()["node_id"], gone_id.to_string());
    }

    #[test]
    fn a_node_found_lost_by_another_must_stop() {
        let mut parts = Parts::new();
        parts.nodes.expect_renew().returning(|_, _, _| Ok(false));
        parts.nodes.expect_claim_lost().never();
        assert_eq!(block_on(parts.build().heartbeat()).unwrap(), Heartbeat::Lost);
    }

    #[test]
    fn a_heartbeat_fails_over_a_lost_node_its_sessions_crashed_and_executions_cancelled() {
        let lost = a_node(NodeId::new(), 4, 1);
        let lost_id = lost.id;
        let mut parts = Parts::new();
        parts.nodes.expect_renew().times(1).returning(|_, _, _| Ok(true));
        let mut claims = vec![None, Some(lost.clone())];
        parts.nodes.expect_claim_lost().times(2).returning(move |_, _, all| {
            assert!(!all, "only expired nodes are claimed");
            Ok(claims.pop().unwrap())
        });
        let session_id = SessionId::new();
        parts.sessions.expect_live_on().withf(move |node| *node == Some(lost_id)).returning(move |_| {
            let mut session = a_session(session_id, SessionStatus::Ready);
            session.node_id = Some(lost_id);
            Ok(vec![session])
        });
        parts
            .sessions
            .expect_update_state()
            .withf(move |s| {
                s.id == session_id
                    && s.status == SessionStatus::Crashed
                    && s.last_error.as_deref().is_some_and(|e| e.starts_with("node lost"))
            })
            .times(1)
            .returning(|_| Ok(()));
        parts.sessions.expect_get().returning(move |id| {
            let mut session = a_session(id, SessionStatus::Crashed);
            session.node_id = Some(if id == session_id { lost_id } else { NodeId::new() });
            Ok(Some(session))
        });
        let mut running = an_execution(crate::ids::ExecutionId::new(), session_id);
        running.status = ExecutionStatus::Running;
        let elsewhere = {
            let mut e = an_execution(crate::ids::ExecutionId::new(), SessionId::new());
            e.status = ExecutionStatus::Running;
            e
        };
        let running_id = running.id;
        parts.executions.expect_running().returning(move || Ok(vec![running.clone(), elsewhere.clone()]));
        parts.executions.expect_events_after().returning(|_, _| Ok(vec![]));
        parts
            .executions
            .expect_finish()
            .withf(move |e, events| {
                e.id == running_id
                    && e.status == ExecutionStatus::Cancelled
                    && matches!(events, [Event { seq: 1, payload: EventPayload::System { .. }, .. }])
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let beat = block_on(parts.build().heartbeat()).unwrap();
        let released = ReconcileReport { closed_sessions: 1, finalised_executions: 1 };
        assert_eq!(beat, Heartbeat::Renewed { lost_nodes: vec![lost_id], released });
    }

    #[test]
    fn only_the_shared_secret_is_accepted_and_nothing_before_joining() {
        let mut parts = Parts::new();
        parts.nodes.expect_claim_lost().returning(|_, _, _| Ok(None));
        parts.nodes.expect_insert().returning(|_| Ok(()));
        parts.nodes.expect_shared_secret().returning(|_| Ok("s3cret-of-the-cluster".into()));
        parts.nodes.expect_list().returning(|| Ok(vec![]));
        parts.sessions.expect_live_on().returning(|_| Ok(vec![]));
        parts.executions.expect_running().returning(|| Ok(vec![]));
        let service = parts.build();
        assert!(!service.accepts(""), "before joining");
        block_on(service.join("mine")).unwrap();
        assert!(service.accepts("s3cret-of-the-cluster"));
        assert!(!service.accepts("s3cret-of-the-clustex"));
        assert!(!service.accepts("s3cret"));
        assert!(!service.accepts(""));
    }
}
