//! Values shared by the services' unit tests.

use std::sync::Arc;

use chrono::TimeZone;

use crate::ids::{SessionId, StartupFileId, TemplateId};
use crate::paths::{ScriptPath, WorktreePath};
use crate::ports::clock::MockClock;
use crate::ports::Clock;
use crate::session::{Label, Session, SessionStatus};
use crate::template::{StartupFile, StartupMode, Template, TemplateName};

pub fn fixed_clock() -> Arc<dyn Clock> {
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
    // Time stands still: background pacing never fires; what it would do
    // happens at the end of each execution.
    clock.expect_sleep().returning(|_| Box::pin(std::future::pending()));
    Arc::new(clock)
}

pub fn a_template(id: TemplateId) -> Template {
    let now = fixed_clock().now();
    Template {
        id,
        name: TemplateName::parse("demo").unwrap(),
        engine: "boa".into(),
        is_active: true,
        exposed_modules: vec![],
        libraries: vec![],
        created_at: now,
        updated_at: now,
    }
}

pub fn a_session(id: SessionId, status: SessionStatus) -> Session {
    Session {
        id,
        template_id: TemplateId::new(),
        workspace_id: Label::parse("workspace_id", "ws").unwrap(),
        base_commit_oid: Label::parse("base_commit_oid", "abc").unwrap(),
        worktree_path: WorktreePath::from_stored("/tmp"),
        status,
        created_at: fixed_clock().now(),
        closed_at: None,
        last_error: None,
        forked_from: None,
        node_id: None,
    }
}

pub fn a_startup_file(template_id: TemplateId, path: &str) -> StartupFile {
    StartupFile {
        id: StartupFileId::new(),
        template_id,
        path: ScriptPath::parse(path).unwrap(),
        order_index: 0,
        mode: StartupMode::Eval,
        created_at: fixed_clock().now(),
    }
}

pub fn an_execution(id: crate::ids::ExecutionId, session_id: SessionId) -> crate::execution::Execution {
    crate::execution::Execution {
        id,
        session_id,
        kind: crate::execution::ExecutionKind::Repl,
        input: Some("1".into()),
        path: None,
        args: Default::default(),
        env: Default::default(),
        status: crate::execution::ExecutionStatus::Ok,
        started_at: fixed_clock().now(),
        ended_at: Some(fixed_clock().now()),
        result: None,
        error: None,
        metrics: Default::default(),
    }
}
