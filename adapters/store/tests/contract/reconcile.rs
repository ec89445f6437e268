//! Restart reconciliation, the domain's rule, on a real store: what a
//! previous process left live is closed, what it left running is finalised
//! with a `system` event, and everything else is left as it was.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use vm_domain::event::{EventPayload, SystemLevel};
use vm_domain::execution::ExecutionStatus;
use vm_domain::ids::{SessionId, TemplateId};
use vm_domain::node::NodeConfig;
use vm_domain::ports::{Clock, Job, JsRuntime, LiveEvents, Outcome, RuntimeError, RuntimeSpec, Sleep};
use vm_domain::services::{NodeService, ReconcileReport};
use vm_domain::session::SessionStatus;
use vm_domain::Timestamp;

use crate::harness::Harness;
use crate::seed::{at, events, finished, running, session};

/// The runtime of a process that just started: no engine is alive, so
/// nothing can run. Reconciliation must not need one.
struct NoEngines;

#[async_trait]
impl JsRuntime for NoEngines {
    fn engine(&self) -> &'static str {
        "boa"
    }

    async fn start(&self, _spec: RuntimeSpec) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unavailable("reconciliation starts no engine".into()))
    }

    async fn run(&self, _session: SessionId, _job: Job, _live: LiveEvents) -> Result<Outcome, RuntimeError> {
        Err(RuntimeError::Unavailable("reconciliation runs nothing".into()))
    }

    async fn cancel(&self, _session: SessionId) -> bool {
        false
    }

    async fn fork(&self, _from: SessionId, _to: SessionId) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unavailable("reconciliation forks nothing".into()))
    }

    async fn close(&self, _session: SessionId) {}

    fn live_sessions(&self) -> Vec<SessionId> {
        Vec::new()
    }

    fn take_lost(&self) -> Vec<(SessionId, String)> {
        Vec::new()
    }
}

/// The restarted daemon's clock, stopped at one instant.
struct StoppedAt(Timestamp);

impl Clock for StoppedAt {
    fn now(&self) -> Timestamp {
        self.0
    }

    fn sleep(&self, duration: std::time::Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A daemon that starts alone on the database (as on SQLite, which it holds
/// exclusively): every node before it is gone.
fn restarted_daemon(h: &Harness, now: Timestamp) -> NodeService {
    let config = NodeConfig {
        url: "http://127.0.0.1:3210".into(),
        version: "test".into(),
        max_sessions: 8,
        lease: std::time::Duration::from_secs(10),
        exclusive: true,
    };
    NodeService::new(
        h.nodes.clone(),
        h.sessions.clone(),
        h.executions.clone(),
        Arc::new(NoEngines),
        Arc::new(StoppedAt(now)),
        config,
    )
}

contract!(a_restart_closes_live_sessions_and_finalises_running_executions, async |h: &Harness| {
    let template_id = TemplateId::new();
    let ready = session(template_id, at(1));
    let mut starting = session(template_id, at(2));
    starting.status = SessionStatus::Starting;
    let mut closed = session(template_id, at(3));
    closed.status = SessionStatus::Closed;
    closed.closed_at = Some(at(4));
    let mut crashed = session(template_id, at(5));
    crashed.status = SessionStatus::Crashed;
    crashed.last_error = Some("worker exited".into());
    for s in [&ready, &starting, &closed, &crashed] {
        h.sessions.insert(s).await.unwrap();
    }
    let interrupted = running(ready.id, at(6));
    let also_interrupted = running(crashed.id, at(7));
    let completed = running(ready.id, at(2));
    for e in [&interrupted, &also_interrupted, &completed] {
        h.executions.insert(e).await.unwrap();
    }
    let completed = finished(&completed, 3);
    h.executions.finish(&completed, &events(&completed, 3)).await.unwrap();
    let now = at(100);

    let report = restarted_daemon(h, now).join("secret").await.unwrap();

    assert_eq!(report, ReconcileReport { closed_sessions: 2, finalised_executions: 2 });
    for live in [&ready, &starting] {
        let after = h.sessions.get(live.id).await.unwrap().unwrap();
        assert_eq!((after.status, after.closed_at), (SessionStatus::Closed, Some(now)), "{:?}", live.status);
        assert!(after.last_error.as_deref().is_some_and(|e| e.contains("daemon")), "{after:?}");
    }
    assert_eq!(h.sessions.get(closed.id).await.unwrap(), Some(closed));
    assert_eq!(h.sessions.get(crashed.id).await.unwrap(), Some(crashed));
    for left in [&interrupted, &also_interrupted] {
        let after = h.executions.get(left.id).await.unwrap().unwrap();
        assert_eq!((after.status, after.ended_at), (ExecutionStatus::Cancelled, Some(now)));
        assert_eq!(after.error.as_ref().map(|e| e["code"].clone()), Some(json!("INTERRUPTED")));
        assert_eq!(after.metrics.event_count, 1);
        let trail = h.executions.events_after(left.id, 0).await.unwrap();
        assert_eq!(trail.len(), 1);
        assert_eq!((trail[0].seq, trail[0].ts), (1, now));
        assert!(matches!(&trail[0].payload, EventPayload::System { level: SystemLevel::Warn, .. }), "{trail:?}");
    }
    assert_eq!(h.executions.get(completed.id).await.unwrap(), Some(completed.clone()));
    assert_eq!(h.executions.events_after(completed.id, 0).await.unwrap().len(), 3);
    assert!(h.executions.running().await.unwrap().is_empty());
});

contract!(a_second_restart_finds_nothing_left_to_reconcile, async |h: &Harness| {
    let live = session(TemplateId::new(), at(1));
    h.sessions.insert(&live).await.unwrap();
    let left = running(live.id, at(2));
    h.executions.insert(&left).await.unwrap();
    let first = restarted_daemon(h, at(10)).join("secret").await.unwrap();
    let after_first = (h.sessions.get(live.id).await.unwrap(), h.executions.get(left.id).await.unwrap());

    let second = restarted_daemon(h, at(20)).join("secret").await.unwrap();

    assert_eq!(first, ReconcileReport { closed_sessions: 1, finalised_executions: 1 });
    assert_eq!(second, ReconcileReport::default());
    assert_eq!((h.sessions.get(live.id).await.unwrap(), h.executions.get(left.id).await.unwrap()), after_first);
    assert_eq!(h.executions.events_after(left.id, 0).await.unwrap().len(), 1);
});

contract!(a_restart_finalises_a_running_execution_after_the_events_it_appended, async |h: &Harness| {
    let live = session(TemplateId::new(), at(1));
    h.sessions.insert(&live).await.unwrap();
    let left = running(live.id, at(2));
    h.executions.insert(&left).await.unwrap();
    let streamed = events(&left, 4);
    h.executions.append_events(left.id, &streamed).await.unwrap();

    let report = restarted_daemon(h, at(10)).join("secret").await.unwrap();

    assert_eq!(report, ReconcileReport { closed_sessions: 1, finalised_executions: 1 });
    let trail = h.executions.events_after(left.id, 0).await.unwrap();
    assert_eq!(trail[..4], streamed[..], "what was flushed before the crash is kept");
    assert_eq!((trail.len(), trail[4].seq, trail[4].ts), (5, 5, at(10)));
    assert!(matches!(&trail[4].payload, EventPayload::System { level: SystemLevel::Warn, .. }), "{trail:?}");
    let after = h.executions.get(left.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.metrics.event_count), (ExecutionStatus::Cancelled, 5));
});
