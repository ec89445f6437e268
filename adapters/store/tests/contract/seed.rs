//! Domain values to store: fixed instants, and templates, sessions,
//! executions and events with sensible defaults.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration};
use serde_json::{json, Map};
use vm_domain::catalog::{LibraryRef, ModuleName};
use vm_domain::event::{ConsoleLevel, Event, EventPayload};
use vm_domain::execution::{Execution, ExecutionKind, ExecutionStatus, Metrics};
use vm_domain::ids::{ExecutionId, SessionId, TemplateId};
use vm_domain::paths::WorktreePath;
use vm_domain::session::{Label, Session, SessionStatus};
use vm_domain::template::{Template, TemplateName, DEFAULT_ENGINE};
use vm_domain::Timestamp;

use crate::harness::Harness;

/// A fixed instant `seconds` after an arbitrary epoch, with microseconds so
/// that losing them would show.
pub fn at(seconds: i64) -> Timestamp {
    DateTime::from_timestamp(1_700_000_000 + seconds, 123_456_000).expect("a valid instant")
}

pub fn module(name: &str) -> ModuleName {
    ModuleName::parse(name).expect("a catalog module")
}

pub fn library(name: &str) -> LibraryRef {
    LibraryRef::parse(name).expect("a catalog library")
}

/// A template named `name`, created (and last updated) at `created_at`, with
/// no modules or libraries.
pub fn template(name: &str, created_at: Timestamp) -> Template {
    Template {
        id: TemplateId::new(),
        name: TemplateName::parse(name).expect("a valid name"),
        engine: DEFAULT_ENGINE.to_owned(),
        is_active: true,
        exposed_modules: Vec::new(),
        libraries: Vec::new(),
        created_at,
        updated_at: created_at,
    }
}

/// A `ready` session of `template_id`, created at `created_at`.
pub fn session(template_id: TemplateId, created_at: Timestamp) -> Session {
    Session {
        id: SessionId::new(),
        template_id,
        workspace_id: Label::parse("workspace_id", "ws-1").expect("a valid label"),
        base_commit_oid: Label::parse("base_commit_oid", "0123abcd").expect("a valid label"),
        worktree_path: WorktreePath::from_stored("/srv/worktrees/ws-1"),
        status: SessionStatus::Ready,
        created_at,
        closed_at: None,
        last_error: None,
        forked_from: None,
        node_id: None,
    }
}

/// A stored session of a template that need not exist.
pub async fn a_session(h: &Harness) -> Session {
    let session = session(TemplateId::new(), at(0));
    h.sessions.insert(&session).await.expect("the session is stored");
    session
}

/// A `running` REPL execution in `session_id`, started at `started_at`.
pub fn running(session_id: SessionId, started_at: Timestamp) -> Execution {
    Execution {
        id: ExecutionId::new(),
        session_id,
        kind: ExecutionKind::Repl,
        input: Some("1 + 1".into()),
        path: None,
        args: Map::new(),
        env: BTreeMap::new(),
        status: ExecutionStatus::Running,
        started_at,
        ended_at: None,
        result: None,
        error: None,
        metrics: Metrics::default(),
    }
}

/// `execution` as it ends `ok` one second after it started, having
/// recorded `event_count` events.
pub fn finished(execution: &Execution, event_count: usize) -> Execution {
    Execution {
        status: ExecutionStatus::Ok,
        ended_at: Some(execution.started_at + Duration::seconds(1)),
        result: Some(json!(2)),
        metrics: Metrics { duration_ms: 1000, event_count: event_count as u64, output_bytes: 42 },
        ..execution.clone()
    }
}

/// `count` console events of `execution`, `seq` 1, 2, 3 …
pub fn events(execution: &Execution, count: usize) -> Vec<Event> {
    (1..=count as i64)
        .map(|seq| Event {
            execution_id: execution.id,
            seq,
            ts: execution.started_at + Duration::microseconds(seq),
            payload: EventPayload::Console { level: ConsoleLevel::Log, text: format!("line {seq}") },
        })
        .collect()
}

/// A stored execution, finished with `count` events.
pub async fn execution_with_events(h: &Harness, count: usize) -> Execution {
    let session = a_session(h).await;
    let execution = running(session.id, at(1));
    h.executions.insert(&execution).await.expect("the execution is stored");
    let done = finished(&execution, count);
    h.executions.finish(&done, &events(&execution, count)).await.expect("the execution finishes");
    done
}
