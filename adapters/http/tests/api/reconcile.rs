//! Restart reconciliation on a store a previous process left behind.

use std::collections::BTreeMap;

use serde_json::{json, Map};
use vm_domain::execution::{Execution, ExecutionKind, ExecutionStatus, Metrics};
use vm_domain::ids::{ExecutionId, SessionId, TemplateId};
use vm_domain::paths::WorktreePath;
use vm_domain::session::{Label, Session, SessionStatus};

use crate::harness::{fresh_database, services_over};

#[tokio::test]
async fn a_restart_closes_live_sessions_and_finalises_running_executions() {
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database(dir.path());
    let session_id = SessionId::new();
    let execution_id = ExecutionId::new();
    {
        let store = vm_store::open(&db).await.unwrap();
        let now = chrono::Utc::now();
        let session = Session {
            id: session_id,
            template_id: TemplateId::new(),
            workspace_id: Label::parse("workspace_id", "ws").unwrap(),
            base_commit_oid: Label::parse("base_commit_oid", "abc").unwrap(),
            worktree_path: WorktreePath::from_stored(dir.path()),
            status: SessionStatus::Ready,
            created_at: now,
            closed_at: None,
            last_error: None,
            forked_from: None,
            node_id: None,
        };
        store.sessions.insert(&session).await.unwrap();
        let execution = Execution {
            id: execution_id,
            session_id,
            kind: ExecutionKind::Repl,
            input: Some("while (true) {}".into()),
            path: None,
            args: Map::new(),
            env: BTreeMap::new(),
            status: ExecutionStatus::Running,
            started_at: now,
            ended_at: None,
            result: None,
            error: None,
            metrics: Metrics::default(),
        };
        store.executions.insert(&execution).await.unwrap();
        store.close().await;
    }

    let services = services_over(&db, dir.path().join("cache")).await;
    let session = services.sessions.get(session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Closed);
    assert!(session.closed_at.is_some());
    assert!(session.last_error.unwrap().contains("daemon"));
    let execution = services.executions.get(execution_id).await.unwrap();
    assert_eq!(execution.status, ExecutionStatus::Cancelled);
    assert!(execution.ended_at.is_some());
    let events = services.executions.events(execution_id, None).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload.type_name(), "system");
    assert_eq!(events[0].payload.payload_json()["level"], json!("warn"));
    assert!(services.sessions.live_sessions().is_empty());
}
