//! Session rules: creation from a template (runtime, libraries, startup files
//! as executions), the state machine, closing, and reconciliation after a
//! restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Map;
use tracing::Instrument;

use super::executions::{Activity, Recorder, Work};
use super::ExecutionService;
use crate::execution::{ExecutionKind, ExecutionStatus};
use crate::ids::{NodeId, SessionId};
use crate::paths::{WorktreePath, WorktreePolicy};
use crate::ports::{Clock, ExecutionStore, Job, JsRuntime, ProcessStats, RuntimeSpec, SessionStore, TemplateStore};
use crate::session::{Session, SessionSpec, SessionStatus};
use crate::template::{Capability, Settings, StartupFile, Template};
use crate::DomainError;

/// What reconciliation found left over from a previous process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub closed_sessions: usize,
    pub finalised_executions: usize,
}

pub struct SessionService {
    templates: Arc<dyn TemplateStore>,
    recorder: Arc<Recorder>,
    worktrees: WorktreePolicy,
    /// The node whose sessions this service starts.
    node: NodeId,
    /// Live sessions this node runs at most; no bound until [`SessionService::on_node`].
    max_sessions: Option<u32>,
}

impl SessionService {
    /// Builds the session service and the execution service that shares its
    /// runtime, stores and one-execution-per-session rule.
    pub fn new(
        templates: Arc<dyn TemplateStore>,
        sessions: Arc<dyn SessionStore>,
        executions: Arc<dyn ExecutionStore>,
        runtime: Arc<dyn JsRuntime>,
        clock: Arc<dyn Clock>,
        worktrees: WorktreePolicy,
    ) -> (Self, ExecutionService) {
        let recorder = Arc::new(Recorder::new(sessions, executions, runtime, clock));
        let service =
            Self { templates, recorder: recorder.clone(), worktrees, node: NodeId::new(), max_sessions: None };
        (service, ExecutionService::new(recorder))
    }

    /// Starts sessions as `node`'s, at most `max_sessions` live at once:
    /// past it a create or fork is `NO_CAPACITY`.
    pub fn on_node(mut self, node: NodeId, max_sessions: u32) -> Self {
        self.node = node;
        self.max_sessions = Some(max_sessions);
        self
    }

    /// `NO_CAPACITY` when this node runs `max_sessions` live sessions.
    fn ensure_room(&self) -> Result<(), DomainError> {
        let Some(max_sessions) = self.max_sessions else { return Ok(()) };
        if self.runtime().live_sessions().len() >= max_sessions as usize {
            return Err(DomainError::NoCapacity { scope: "on this node".to_owned(), max_sessions });
        }
        Ok(())
    }

    fn sessions(&self) -> &dyn SessionStore {
        &*self.recorder.sessions
    }

    fn runtime(&self) -> &dyn JsRuntime {
        &*self.recorder.runtime
    }

    /// Creates a session: allocates the runtime with the template's settings,
    /// modules and libraries, then runs the startup files in order, each as a
    /// `startup` execution. Any failure leaves the session `crashed` and is
    /// reported as `STARTUP_FAILED` carrying the session id. Refused with
    /// `SHUTTING_DOWN` once the daemon drains.
    pub async fn create(&self, spec: SessionSpec) -> Result<Session, DomainError> {
        self.recorder.refuse_when_draining()?;
        let SessionSpec { template_id, workspace_id, base_commit_oid, worktree_path: raw_worktree } = spec;
        let worktree_path = WorktreePath::parse(&raw_worktree)?;
        self.worktrees.check(&raw_worktree, &worktree_path)?;
        self.ensure_room()?;
        let template = self
            .templates
            .get(template_id)
            .await?
            .ok_or_else(|| DomainError::TemplateNotFound { id: template_id.to_string() })?;
        if template.engine != self.runtime().engine() {
            return Err(DomainError::EngineUnsupported {
                engine: template.engine,
                supported: vec![self.runtime().engine().to_owned()],
            });
        }
        let settings = self
            .templates
            .settings(template_id)
            .await?
            .ok_or_else(|| DomainError::TemplateNotFound { id: template_id.to_string() })?;
        let capabilities = self.templates.capabilities(template_id).await?;
        let startup_files = self.templates.startup_files(template_id).await?;

        let session = Session {
            id: SessionId::new(),
            template_id,
            workspace_id,
            base_commit_oid,
            worktree_path,
            status: SessionStatus::Starting,
            created_at: self.recorder.clock.now(),
            closed_at: None,
            last_error: None,
            forked_from: None,
            node_id: Some(self.node),
        };
        // At error level, as the request span: its id reaches every line.
        let span = tracing::error_span!("session", session_id = %session.id);
        self.start(session, template, settings, capabilities, startup_files).instrument(span).await
    }

    /// Stores the new session, brings its runtime up and runs its startup
    /// files; see [`SessionService::create`].
    async fn start(
        &self,
        mut session: Session,
        template: Template,
        settings: Settings,
        capabilities: Vec<Capability>,
        startup_files: Vec<StartupFile>,
    ) -> Result<Session, DomainError> {
        self.sessions().insert(&session).await?;

        let spec = RuntimeSpec {
            session_id: session.id,
            worktree: session.worktree_path.clone(),
            settings,
            modules: template.exposed_modules.clone(),
            libraries: template.libraries.clone(),
            capabilities,
        };
        if let Err(err) = self.runtime().start(spec).await {
            return Err(self.fail_start(session, err.to_string()).await);
        }
        session.status = SessionStatus::Ready;
        for file in startup_files {
            let resolved = match session.worktree_path.resolve(&file.path) {
                Ok(resolved) => resolved,
                Err(err) => return Err(self.fail_start(session, format!("startup file {}: {err}", file.path)).await),
            };
            let work = Work {
                kind: ExecutionKind::Startup,
                input: None,
                path: Some(file.path.as_str().to_owned()),
                args: Map::new(),
                env: BTreeMap::new(),
                job: Job::RunFile { path: resolved, args: Map::new(), env: BTreeMap::new() },
            };
            let failure = match self.recorder.run(&session, work).await {
                Ok(done) if done.execution.status == ExecutionStatus::Ok => None,
                Ok(done) => Some(
                    done.execution
                        .error
                        .as_ref()
                        .and_then(|e| e["message"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("ended {}", done.execution.status)),
                ),
                Err(err) => Some(err.to_string()),
            };
            if let Some(reason) = failure {
                let reason = format!("startup file {} failed: {reason}", file.path);
                return Err(self.fail_start(session, reason).await);
            }
        }
        self.sessions().update_state(&session).await?;
        tracing::info!(template_id = %session.template_id, "session started");
        Ok(session)
    }

    /// Marks the session crashed, discards its runtime and builds the error.
    async fn fail_start(&self, mut session: Session, reason: String) -> DomainError {
        tracing::warn!(reason = reason.as_str(), "session failed to start");
        self.runtime().close(session.id).await;
        session.status = SessionStatus::Crashed;
        session.last_error = Some(reason.clone());
        if let Err(err) = self.sessions().update_state(&session).await {
            return err;
        }
        DomainError::StartupFailed { session_id: session.id, template_id: session.template_id, reason }
    }

    /// The session, after noticing runtimes that died while idle and are
    /// still queued (see [`SessionService::notice_next_lost_runtime`]).
    pub async fn get(&self, id: SessionId) -> Result<Session, DomainError> {
        self.notice_lost_runtimes().await?;
        self.find(id).await
    }

    async fn find(&self, id: SessionId) -> Result<Session, DomainError> {
        self.sessions().get(id).await?.ok_or_else(|| DomainError::SessionNotFound { id: id.to_string() })
    }

    /// Newest first, optionally only those in `status`, after noticing
    /// runtimes that died while idle and are still queued.
    pub async fn list(&self, status: Option<SessionStatus>) -> Result<Vec<Session>, DomainError> {
        self.notice_lost_runtimes().await?;
        self.sessions().list(status).await
    }

    /// Waits until a runtime dies on its own while idle (killed from
    /// outside, crashed) and leaves its session `crashed`, with what
    /// happened as `last_error`. Returns the session when it changed; `None`
    /// when it no longer claimed to be live (closed meanwhile) or is unknown.
    /// The daemon calls this in a loop, so that a dead worker is noticed at
    /// once and the next execution is refused with `SESSION_NOT_READY`.
    pub async fn notice_next_lost_runtime(&self) -> Result<Option<Session>, DomainError> {
        let (id, reason) = self.runtime().next_lost().await;
        self.crash_lost(id, reason).await
    }

    /// The losses already queued, for a read that may come before
    /// [`SessionService::notice_next_lost_runtime`] took them: each loss is
    /// reported once, to whichever asks first.
    async fn notice_lost_runtimes(&self) -> Result<(), DomainError> {
        for (id, reason) in self.runtime().take_lost() {
            self.crash_lost(id, reason).await?;
        }
        Ok(())
    }

    /// A session whose runtime was lost becomes `crashed` with `reason`, if
    /// it still claims to be live.
    async fn crash_lost(&self, id: SessionId, reason: String) -> Result<Option<Session>, DomainError> {
        let Some(mut session) = self.sessions().get(id).await? else { return Ok(None) };
        if !session.status.claims_live() {
            return Ok(None);
        }
        session.status = SessionStatus::Crashed;
        session.last_error = Some(reason);
        self.sessions().update_state(&session).await?;
        Ok(Some(session))
    }

    /// Discards the runtime and keeps the row with `closed_at`. Closing a
    /// closed session changes nothing.
    pub async fn close(&self, id: SessionId) -> Result<Session, DomainError> {
        let mut session = self.find(id).await?;
        if session.status == SessionStatus::Closed {
            return Ok(session);
        }
        self.runtime().close(id).await;
        session.status = SessionStatus::Closed;
        session.closed_at = Some(self.recorder.clock.now());
        self.sessions().update_state(&session).await?;
        tracing::info!(session_id = %id, "session closed");
        Ok(session)
    }

    /// Forks a ready session: a new session whose runtime starts as a copy
    /// of the source's live heap (every variable, function and loaded
    /// module), with the source's template and worktree and `forked_from`
    /// naming the source. The source is busy meanwhile and unchanged after.
    /// A fork that cannot start leaves the new session `crashed` and is
    /// reported as `STARTUP_FAILED`. Refused with `SHUTTING_DOWN` once the
    /// daemon drains.
    pub async fn fork(&self, id: SessionId) -> Result<Session, DomainError> {
        self.recorder.refuse_when_draining()?;
        self.notice_lost_runtimes().await?;
        let source = self.find(id).await?;
        if source.status != SessionStatus::Ready {
            return Err(DomainError::SessionNotReady { session_id: id, status: source.status.to_string() });
        }
        self.ensure_room()?;
        let _busy = self.recorder.busy.claim(id, Activity::Fork)?;
        let mut session = Session {
            id: SessionId::new(),
            status: SessionStatus::Starting,
            created_at: self.recorder.clock.now(),
            closed_at: None,
            last_error: None,
            forked_from: Some(id),
            node_id: Some(self.node),
            ..source
        };
        self.sessions().insert(&session).await?;
        if let Err(err) = self.runtime().fork(id, session.id).await {
            return Err(self.fail_start(session, err.to_string()).await);
        }
        session.status = SessionStatus::Ready;
        if let Err(err) = self.sessions().update_state(&session).await {
            self.runtime().close(session.id).await;
            return Err(err);
        }
        tracing::info!(session_id = %session.id, forked_from = %id, "session forked");
        Ok(session)
    }

    /// Whether a session could start now (the readiness probe's runtime
    /// check); `RUNTIME_UNAVAILABLE` with the runtime's reason when not.
    pub async fn runtime_health(&self) -> Result<(), DomainError> {
        self.runtime().health().await.map_err(|err| DomainError::RuntimeUnavailable { reason: err.to_string() })
    }

    /// Sessions whose runtime is alive in memory.
    pub fn live_sessions(&self) -> Vec<SessionId> {
        let mut ids = self.runtime().live_sessions();
        ids.sort();
        ids
    }

    /// How many sessions are in each status, every status listed in the
    /// order of [`SessionStatus::ALL`], after noticing runtimes that died
    /// while idle and are still queued.
    pub async fn count_by_status(&self) -> Result<[(SessionStatus, u64); 4], DomainError> {
        self.notice_lost_runtimes().await?;
        let counted = self.sessions().count_by_status().await?;
        Ok(SessionStatus::ALL
            .map(|status| (status, counted.iter().filter(|(s, _)| *s == status).map(|(_, n)| n).sum())))
    }

    /// What the runtime's processes cost right now.
    pub fn process_stats(&self) -> ProcessStats {
        self.runtime().process_stats()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::executor::block_on;

    use super::*;
    use crate::event::EventPayload;
    use crate::ids::TemplateId;
    use crate::ports::runtime::{Ending, MockJsRuntime, Outcome, RuntimeError};
    use crate::ports::store::{MockExecutionStore, MockSessionStore, MockTemplateStore};
    use crate::services::fixtures::{a_session, a_startup_file, a_template, fixed_clock};
    use crate::session::Label;

    struct Parts {
        templates: MockTemplateStore,
        sessions: MockSessionStore,
        executions: MockExecutionStore,
        runtime: MockJsRuntime,
    }

    impl Parts {
        fn new() -> Self {
            let mut templates = MockTemplateStore::new();
            templates.expect_get().returning(|id| Ok(Some(a_template(id))));
            templates.expect_settings().returning(|_| Ok(Some(Settings::default())));
            templates.expect_capabilities().returning(|_| Ok(vec![]));
            let mut runtime = MockJsRuntime::new();
            runtime.expect_engine().return_const("boa");
            Self { templates, sessions: MockSessionStore::new(), executions: MockExecutionStore::new(), runtime }
        }

        fn build(self) -> SessionService {
            self.build_both().0
        }

        fn build_both(self) -> (SessionService, ExecutionService) {
            SessionService::new(
                Arc::new(self.templates),
                Arc::new(self.sessions),
                Arc::new(self.executions),
                Arc::new(self.runtime),
                fixed_clock(),
                WorktreePolicy::new(&[std::path::PathBuf::from("/")], &[]).unwrap(),
            )
        }
    }

    fn new_session(worktree: &std::path::Path) -> SessionSpec {
        SessionSpec {
            template_id: TemplateId::new(),
            workspace_id: Label::parse("workspace_id", "ws").unwrap(),
            base_commit_oid: Label::parse("base_commit_oid", "abc123").unwrap(),
            worktree_path: worktree.to_str().unwrap().into(),
        }
    }

    fn recorded_states(sessions: &mut MockSessionStore) -> Arc<Mutex<Vec<Session>>> {
        let states = Arc::new(Mutex::new(Vec::new()));
        let sink = states.clone();
        sessions.expect_insert().returning(|s| {
            assert_eq!(s.status, SessionStatus::Starting);
            Ok(())
        });
        sessions.expect_update_state().returning(move |s| {
            sink.lock().unwrap().push(s.clone());
            Ok(())
        });
        states
    }

    #[test]
    fn a_draining_daemon_refuses_new_sessions_and_forks_before_touching_anything() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Parts::new();
        parts.sessions.expect_insert().never();
        parts.sessions.expect_get().never();
        parts.runtime.expect_start().never();
        parts.runtime.expect_fork().never();
        let (sessions, executions) = parts.build_both();
        let report = block_on(executions.drain(std::time::Duration::from_secs(30)));
        assert_eq!(report, crate::services::DrainReport::default(), "nothing ran, nothing to wait for");
        assert!(executions.is_draining());
        assert_eq!(block_on(sessions.create(new_session(dir.path()))).unwrap_err().code(), "SHUTTING_DOWN");
        assert_eq!(block_on(sessions.fork(SessionId::new())).unwrap_err().code(), "SHUTTING_DOWN");
    }

    #[test]
    fn a_runtime_that_cannot_start_sessions_is_runtime_unavailable_with_its_reason() {
        let mut parts = Parts::new();
        parts.runtime.expect_health().returning(|| Err(RuntimeError::Unavailable("the zygote is gone".into())));
        let err = block_on(parts.build().runtime_health()).unwrap_err();
        assert_eq!(err.code(), "RUNTIME_UNAVAILABLE");
        assert!(err.to_string().contains("the zygote is gone"), "{err}");
    }

    #[test]
    fn a_session_without_startup_files_becomes_ready() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Parts::new();
        parts.templates.expect_startup_files().returning(|_| Ok(vec![]));
        parts.runtime.expect_start().times(1).returning(|_| Ok(()));
        let states = recorded_states(&mut parts.sessions);
        let session = block_on(parts.build().create(new_session(dir.path()))).unwrap();
        assert_eq!(session.status, SessionStatus::Ready);
        assert_eq!(states.lock().unwrap().last().unwrap().status, SessionStatus::Ready);
    }

    #[test]
    fn a_runtime_that_cannot_start_leaves_the_session_crashed_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Parts::new();
        parts.templates.expect_startup_files().returning(|_| Ok(vec![]));
        parts
            .runtime
            .expect_start()
            .returning(|_| Err(RuntimeError::StartFailed("library lodash-4.17.21 is not cached".into())));
        parts.runtime.expect_close().returning(|_| ());
        let states = recorded_states(&mut parts.sessions);
        let err = block_on(parts.build().create(new_session(dir.path()))).unwrap_err();
        assert_eq!(err.code(), "STARTUP_FAILED");
        let crashed = states.lock().unwrap().last().unwrap().clone();
        assert_eq!(crashed.status, SessionStatus::Crashed);
        assert_eq!(err.details()["session_id"], crashed.id.to_string());
        assert!(crashed.last_error.unwrap().contains("lodash"));
    }

    #[test]
    fn a_startup_file_that_throws_fails_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("init.js"), "throw new Error('boom')").unwrap();
        let mut parts = Parts::new();
        parts.templates.expect_startup_files().returning(|id| Ok(vec![a_startup_file(id, "init.js")]));
        parts.runtime.expect_start().returning(|_| Ok(()));
        parts.runtime.expect_run().returning(|_, _, _| {
            Ok(Outcome {
                events: vec![EventPayload::Exception { message: "Error: boom".into(), stack: String::new() }],
                ending: Ending::Threw,
            })
        });
        parts.runtime.expect_close().returning(|_| ());
        parts.executions.expect_insert().returning(|e| {
            assert_eq!(e.kind, ExecutionKind::Startup);
            Ok(())
        });
        parts.executions.expect_finish().returning(|_, _| Ok(()));
        let states = recorded_states(&mut parts.sessions);
        let err = block_on(parts.build().create(new_session(dir.path()))).unwrap_err();
        assert_eq!(err.code(), "STARTUP_FAILED");
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(states.lock().unwrap().last().unwrap().status, SessionStatus::Crashed);
    }

    #[test]
    fn a_relative_worktree_is_an_invalid_path() {
        let mut parts = Parts::new();
        parts.sessions.expect_insert().never();
        let mut spec = new_session(std::path::Path::new("/tmp"));
        spec.worktree_path = "relative/dir".into();
        assert_eq!(block_on(parts.build().create(spec)).unwrap_err().code(), "INVALID_PATH");
    }

    #[test]
    fn a_runtime_lost_while_idle_leaves_its_session_crashed_with_the_reason() {
        let mut parts = Parts::new();
        let lost = a_session(SessionId::new(), SessionStatus::Ready);
        let lost_id = lost.id;
        parts.runtime.expect_take_lost().times(1).returning(move || vec![(lost_id, "killed by SIGKILL".into())]);
        parts.sessions.expect_get().returning(move |id| Ok(Some(a_session(id, SessionStatus::Ready))));
        parts
            .sessions
            .expect_update_state()
            .withf(move |s| {
                s.id == lost_id
                    && s.status == SessionStatus::Crashed
                    && s.last_error.as_deref() == Some("killed by SIGKILL")
            })
            .times(1)
            .returning(|_| Ok(()));
        block_on(parts.build().get(lost_id)).unwrap();
    }

    #[test]
    fn a_runtime_lost_while_idle_crashes_its_session_without_waiting_for_a_read() {
        let mut parts = Parts::new();
        let lost_id = SessionId::new();
        parts.runtime.expect_next_lost().times(1).returning(move || (lost_id, "killed by SIGKILL".into()));
        parts.runtime.expect_take_lost().never();
        parts.sessions.expect_get().returning(move |id| Ok(Some(a_session(id, SessionStatus::Ready))));
        parts
            .sessions
            .expect_update_state()
            .withf(move |s| {
                s.id == lost_id
                    && s.status == SessionStatus::Crashed
                    && s.last_error.as_deref() == Some("killed by SIGKILL")
            })
            .times(1)
            .returning(|_| Ok(()));
        let crashed = block_on(parts.build().notice_next_lost_runtime()).unwrap().expect("the session changed");
        assert_eq!((crashed.id, crashed.status), (lost_id, SessionStatus::Crashed));
    }

    #[test]
    fn a_lost_runtime_leaves_a_session_that_is_no_longer_live_as_it_is() {
        for status in [SessionStatus::Closed, SessionStatus::Crashed] {
            let mut parts = Parts::new();
            parts.runtime.expect_next_lost().times(1).returning(|| (SessionId::new(), "killed by SIGKILL".into()));
            parts.sessions.expect_get().returning(move |id| Ok(Some(a_session(id, status))));
            parts.sessions.expect_update_state().never();
            assert_eq!(block_on(parts.build().notice_next_lost_runtime()).unwrap(), None, "{status}");
        }
    }

    #[test]
    fn a_lost_runtime_of_an_unknown_session_is_ignored() {
        let mut parts = Parts::new();
        parts.runtime.expect_next_lost().times(1).returning(|| (SessionId::new(), "killed by SIGKILL".into()));
        parts.sessions.expect_get().returning(|_| Ok(None));
        parts.sessions.expect_update_state().never();
        assert_eq!(block_on(parts.build().notice_next_lost_runtime()).unwrap(), None);
    }

    #[test]
    fn closing_a_closed_session_changes_nothing() {
        let mut parts = Parts::new();
        parts.sessions.expect_get().returning(|id| Ok(Some(a_session(id, SessionStatus::Closed))));
        parts.sessions.expect_update_state().never();
        parts.runtime.expect_close().never();
        let session = block_on(parts.build().close(SessionId::new())).expect("closing twice is harmless");
        assert_eq!(session.status, SessionStatus::Closed);
    }

    #[test]
    fn closing_a_ready_session_discards_its_runtime_and_keeps_the_row() {
        let mut parts = Parts::new();
        parts.sessions.expect_get().returning(|id| Ok(Some(a_session(id, SessionStatus::Ready))));
        parts
            .sessions
            .expect_update_state()
            .withf(|s| s.status == SessionStatus::Closed && s.closed_at.is_some())
            .times(1)
            .returning(|_| Ok(()));
        parts.runtime.expect_close().times(1).returning(|_| ());
        block_on(parts.build().close(SessionId::new())).unwrap();
    }

    #[test]
    fn a_fork_is_a_new_ready_session_on_the_same_worktree_that_names_its_source() {
        let mut parts = Parts::new();
        let source = a_session(SessionId::new(), SessionStatus::Ready);
        let source_id = source.id;
        let shown = source.clone();
        parts.sessions.expect_get().returning(move |_| Ok(Some(shown.clone())));
        parts.runtime.expect_take_lost().returning(Vec::new);
        parts
            .runtime
            .expect_fork()
            .withf(move |from, to| *from == source_id && *to != source_id)
            .times(1)
            .returning(|_, _| Ok(()));
        let states = recorded_states(&mut parts.sessions);
        let fork = block_on(parts.build().fork(source_id)).unwrap();
        assert_eq!(fork.status, SessionStatus::Ready);
        assert_eq!(fork.forked_from, Some(source_id));
        assert_ne!(fork.id, source_id);
        assert_eq!((fork.worktree_path, fork.template_id), (source.worktree_path, source.template_id));
        assert_eq!(states.lock().unwrap().last().unwrap().status, SessionStatus::Ready);
    }

    #[test]
    fn a_fork_that_cannot_start_is_a_crashed_session_and_a_startup_failure() {
        let mut parts = Parts::new();
        parts.sessions.expect_get().returning(|id| Ok(Some(a_session(id, SessionStatus::Ready))));
        parts.runtime.expect_take_lost().returning(Vec::new);
        parts.runtime.expect_fork().returning(|_, _| Err(RuntimeError::StartFailed("no memory".into())));
        parts.runtime.expect_close().returning(|_| ());
        let states = recorded_states(&mut parts.sessions);
        let err = block_on(parts.build().fork(SessionId::new())).unwrap_err();
        assert_eq!(err.code(), "STARTUP_FAILED");
        assert_eq!(states.lock().unwrap().last().unwrap().status, SessionStatus::Crashed);
    }

    #[test]
    fn a_node_at_its_max_sessions_starts_and_forks_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Parts::new();
        parts.runtime.expect_live_sessions().returning(|| vec![SessionId::new(), SessionId::new()]);
        parts.sessions.expect_get().returning(|id| Ok(Some(a_session(id, SessionStatus::Ready))));
        parts.runtime.expect_take_lost().returning(Vec::new);
        parts.runtime.expect_start().never();
        parts.runtime.expect_fork().never();
        parts.sessions.expect_insert().never();
        let sessions = parts.build().on_node(crate::ids::NodeId::new(), 2);
        let err = block_on(sessions.create(new_session(dir.path()))).unwrap_err();
        assert_eq!((err.code(), err.details()["max_sessions"].as_u64()), ("NO_CAPACITY", Some(2)));
        assert_eq!(block_on(sessions.fork(SessionId::new())).unwrap_err().code(), "NO_CAPACITY");
    }

    #[test]
    fn only_a_ready_session_can_be_forked() {
        let mut parts = Parts::new();
        parts.sessions.expect_get().returning(|id| Ok(Some(a_session(id, SessionStatus::Crashed))));
        parts.runtime.expect_take_lost().returning(Vec::new);
        parts.runtime.expect_fork().never();
        parts.sessions.expect_insert().never();
        let err = block_on(parts.build().fork(SessionId::new())).unwrap_err();
        assert_eq!(err.code(), "SESSION_NOT_READY");
    }

    #[test]
    fn session_counts_list_every_status_and_notice_lost_runtimes_first() {
        let mut parts = Parts::new();
        let lost = SessionId::new();
        parts.runtime.expect_take_lost().times(1).returning(move || vec![(lost, "killed".into())]);
        parts.sessions.expect_get().returning(|id| Ok(Some(a_session(id, SessionStatus::Ready))));
        let states = recorded_states(&mut parts.sessions);
        parts
            .sessions
            .expect_count_by_status()
            .returning(|| Ok(vec![(SessionStatus::Closed, 4), (SessionStatus::Ready, 2)]));
        let counts = block_on(parts.build().count_by_status()).unwrap();
        assert_eq!(
            counts,
            [
                (SessionStatus::Starting, 0),
                (SessionStatus::Ready, 2),
                (SessionStatus::Crashed, 0),
                (SessionStatus::Closed, 4)
            ]
        );
        assert_eq!(
            states.lock().unwrap()[0].status,
            SessionStatus::Crashed,
            "the lost runtime's session crashed first"
        );
    }
}
