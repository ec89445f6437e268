//! Execution rules: a session must be ready, one execution at a time per
//! session, every execution recorded with its ordered events, limits turned
//! into errors that name the execution.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::event::{Event, EventPayload, SystemLevel};
use crate::execution::{Execution, ExecutionKind, ExecutionStatus, ListLimit, Metrics};
use crate::ids::{ExecutionId, SessionId};
use crate::paths::ScriptPath;
use crate::ports::{Clock, Ending, ExecutionStore, Job, JsRuntime, LimitHit, RuntimeError, SessionStore};
use crate::session::{Session, SessionStatus};
use crate::DomainError;

/// A finished execution with the events it recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    pub execution: Execution,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFileRequest {
    pub path: String,
    pub args: Option<Map<String, Value>>,
    pub env: Option<BTreeMap<String, String>>,
}

/// What to run, as the recorder needs it.
pub(crate) struct Work {
    pub kind: ExecutionKind,
    pub input: Option<String>,
    pub path: Option<String>,
    pub args: Map<String, Value>,
    pub env: BTreeMap<String, String>,
    pub job: Job,
}

/// Sessions with an execution in flight, and which one. A std `Mutex`:
/// nothing awaits while it is held.
#[derive(Default)]
struct Busy(Mutex<HashMap<SessionId, ExecutionId>>);

struct BusyGuard<'a> {
    busy: &'a Busy,
    session: SessionId,
}

impl Busy {
    fn claim(&self, session: SessionId, execution: ExecutionId) -> Result<BusyGuard<'_>, DomainError> {
        let mut running = self.0.lock().expect("busy map is never poisoned: no panics while held");
        if let Some(current) = running.get(&session) {
            return Err(DomainError::SessionBusy { session_id: session, running: current.to_string() });
        }
        running.insert(session, execution);
        Ok(BusyGuard { busy: self, session })
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.busy.0.lock() {
            running.remove(&self.session);
        }
    }
}

/// Runs jobs in sessions and records them. Shared by the execution and
/// session services (startup files are executions too).
pub(crate) struct Recorder {
    pub sessions: Arc<dyn SessionStore>,
    pub executions: Arc<dyn ExecutionStore>,
    pub runtime: Arc<dyn JsRuntime>,
    pub clock: Arc<dyn Clock>,
    busy: Busy,
}

impl Recorder {
    pub fn new(
        sessions: Arc<dyn SessionStore>,
        executions: Arc<dyn ExecutionStore>,
        runtime: Arc<dyn JsRuntime>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { sessions, executions, runtime, clock, busy: Busy::default() }
    }

    /// Runs `work` in `session` and stores the execution with its events.
    /// Returns the execution also when the code threw; a limit is an error
    /// carrying the execution id. A runtime that died marks the session
    /// `crashed`. When the final write meets a store outage, the execution
    /// is handed to [`ExecutionStore::finish_later`] and the outage error
    /// names it (`details.execution_id`); a lost runtime is still closed.
    pub async fn run(&self, session: &Session, work: Work) -> Result<Executed, DomainError> {
        let execution_id = ExecutionId::new();
        let _guard = self.busy.claim(session.id, execution_id)?;
        let started_at = self.clock.now();
        let mut execution = Execution {
            id: execution_id,
            session_id: session.id,
            kind: work.kind,
            input: work.input,
            path: work.path,
            args: work.args,
            env: work.env,
            status: ExecutionStatus::Running,
            started_at,
            ended_at: None,
            result: None,
            error: None,
            metrics: Metrics::default(),
        };
        self.executions.insert(&execution).await?;

        let echo = execution.input.clone().or_else(|| execution.path.clone()).unwrap_or_default();
        let mut payloads = vec![EventPayload::InputEcho { text: echo }];
        let ending = match self.runtime.run(session.id, work.job).await {
            Ok(outcome) => {
                payloads.extend(outcome.events);
                outcome.ending
            }
            Err(RuntimeError::Unavailable(reason)) => Ending::Crashed { reason },
            Err(err @ (RuntimeError::StartFailed(_) | RuntimeError::Internal(_))) => {
                Ending::Crashed { reason: err.to_string() }
            }
        };

        let verdict = judge(&ending, &payloads, execution_id);
        if let Some(system) = verdict.system_event {
            payloads.push(system);
        }
        let ended_at = self.clock.now();
        let events: Vec<Event> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| Event { execution_id, seq: i as i64 + 1, ts: ended_at, payload })
            .collect();
        execution.status = verdict.status;
        execution.ended_at = Some(ended_at);
        execution.result = verdict.result;
        execution.error = verdict.error_json;
        execution.metrics = Metrics {
            duration_ms: (ended_at - started_at).num_milliseconds().max(0) as u64,
            event_count: events.len() as u64,
            output_bytes: events.iter().map(|e| e.payload.output_bytes() as u64).sum(),
        };
        if let Err(err) = self.executions.finish(&execution, &events).await {
            if !err.is_store_outage() {
                return Err(err);
            }
            // The execution ran: keep it until the store takes it, and say so.
            self.executions.finish_later(execution, events);
            if let Some(reason) = verdict.session_lost {
                // Best effort: the runtime is closed whatever the store does;
                // a session still marked live is found crashed by its next
                // execution, or closed by the next start's reconciliation.
                let _ = self.mark_lost(session, reason).await;
            }
            return Err(err.with_pending_execution(execution_id));
        }

        if let Some(reason) = verdict.session_lost {
            self.mark_lost(session, reason).await?;
        }
        match verdict.failure {
            Some(err) => Err(err),
            None => Ok(Executed { execution, events }),
        }
    }

    /// Closes the runtime of a session whose runtime died or was killed, then
    /// marks the session `crashed` with `reason`.
    async fn mark_lost(&self, session: &Session, reason: String) -> Result<(), DomainError> {
        self.runtime.close(session.id).await;
        // A session closed while this ran stays closed: only a live one crashes.
        let current = self.sessions.get(session.id).await?.unwrap_or_else(|| session.clone());
        if current.status.claims_live() {
            let mut crashed = current;
            crashed.status = SessionStatus::Crashed;
            crashed.last_error = Some(reason);
            self.sessions.update_state(&crashed).await?;
        }
        Ok(())
    }
}

/// What an ending means for the execution, the session and the caller.
struct Verdict {
    status: ExecutionStatus,
    result: Option<Value>,
    error_json: Option<Value>,
    system_event: Option<EventPayload>,
    session_lost: Option<String>,
    failure: Option<DomainError>,
}

fn judge(ending: &Ending, payloads: &[EventPayload], execution_id: ExecutionId) -> Verdict {
    match ending {
        Ending::Completed => Verdict {
            status: ExecutionStatus::Ok,
            result: payloads.iter().rev().find_map(|p| match p {
                EventPayload::Value { .. } => Some(p.payload_json()),
                _ => None,
            }),
            error_json: None,
            system_event: None,
            session_lost: None,
            failure: None,
        },
        Ending::Threw => {
            let message = payloads
                .iter()
                .rev()
                .find_map(|p| match p {
                    EventPayload::Exception { message, .. } => Some(message.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "uncaught exception".to_owned());
            Verdict {
                status: ExecutionStatus::Error,
                result: None,
                error_json: Some(json!({ "code": "EXCEPTION", "message": message })),
                system_event: None,
                session_lost: None,
                failure: None,
            }
        }
        Ending::Limit { hit, runtime_lost } => {
            let failure = limit_error(*hit, execution_id, *runtime_lost);
            let message = failure.to_string();
            let status = match hit {
                LimitHit::WallTime { .. } | LimitHit::CpuTime { .. } => ExecutionStatus::Timeout,
                _ => ExecutionStatus::Error,
            };
            Verdict {
                status,
                result: None,
                error_json: Some(json!({ "code": failure.code(), "message": message })),
                system_event: Some(EventPayload::System { message: message.clone(), level: SystemLevel::Error }),
                session_lost: runtime_lost.then(|| message.clone()),
                failure: Some(failure),
            }
        }
        Ending::Crashed { reason } => {
            let message = format!("the runtime stopped unexpectedly: {reason}");
            Verdict {
                status: ExecutionStatus::Error,
                result: None,
                error_json: Some(json!({ "code": "RUNTIME_CRASHED", "message": message })),
                system_event: Some(EventPayload::System { message: message.clone(), level: SystemLevel::Error }),
                session_lost: Some(message),
                failure: None,
            }
        }
    }
}

fn limit_error(hit: LimitHit, execution_id: ExecutionId, runtime_lost: bool) -> DomainError {
    match hit {
        LimitHit::WallTime { limit_ms } => {
            DomainError::ExecutionTimeout { execution_id, limit: "wall_ms".into(), limit_ms, runtime_lost }
        }
        LimitHit::CpuTime { limit_ms } => {
            DomainError::ExecutionTimeout { execution_id, limit: "cpu_ms".into(), limit_ms, runtime_lost }
        }
        LimitHit::Memory { limit_mb } => DomainError::MemoryLimitExceeded { execution_id, limit_mb, runtime_lost },
        LimitHit::Events { max_events } => DomainError::OutputLimitExceeded {
            execution_id,
            limit: "max_events".into(),
            value: max_events,
            runtime_lost,
        },
        LimitHit::Output { max_output_kb } => DomainError::OutputLimitExceeded {
            execution_id,
            limit: "max_output_kb".into(),
            value: max_output_kb,
            runtime_lost,
        },
    }
}

pub struct ExecutionService {
    recorder: Arc<Recorder>,
}

impl ExecutionService {
    pub(crate) fn new(recorder: Arc<Recorder>) -> Self {
        Self { recorder }
    }

    /// Evaluates a snippet in the session's global scope.
    pub async fn repl(&self, session_id: SessionId, input: &str) -> Result<Executed, DomainError> {
        if input.trim().is_empty() {
            return Err(DomainError::validation("input", "input is required and must not be blank"));
        }
        let session = self.ready_session(session_id).await?;
        let work = Work {
            kind: ExecutionKind::Repl,
            input: Some(input.to_owned()),
            path: None,
            args: Map::new(),
            env: BTreeMap::new(),
            job: Job::Eval { source: input.to_owned() },
        };
        self.recorder.run(&session, work).await
    }

    /// Runs a file of the session's worktree in its global scope.
    pub async fn run_file(&self, session_id: SessionId, request: RunFileRequest) -> Result<Executed, DomainError> {
        let path = ScriptPath::parse(&request.path)?;
        let env = request.env.unwrap_or_default();
        if let Some(key) = env.keys().find(|k| k.is_empty() || k.contains(['=', '\0'])) {
            return Err(DomainError::validation("env", format!("env name {key:?} is not a valid variable name")));
        }
        let session = self.ready_session(session_id).await?;
        let resolved = session.worktree_path.resolve(&path)?;
        let args = request.args.unwrap_or_default();
        let work = Work {
            kind: ExecutionKind::RunFile,
            input: None,
            path: Some(path.as_str().to_owned()),
            args: args.clone(),
            env: env.clone(),
            job: Job::RunFile { path: resolved, args, env },
        };
        self.recorder.run(&session, work).await
    }

    pub async fn get(&self, id: ExecutionId) -> Result<Execution, DomainError> {
        self.recorder.executions.get(id).await?.ok_or_else(|| DomainError::ExecutionNotFound { id: id.to_string() })
    }

    /// Newest first. `limit` defaults to 50 and must be positive.
    pub async fn list(&self, session_id: Option<SessionId>, limit: Option<i64>) -> Result<Vec<Execution>, DomainError> {
        let limit = ListLimit::parse(limit)?;
        self.recorder.executions.list(session_id, limit.get()).await
    }

    /// Events with `seq > after_seq` (default 0), in order.
    pub async fn events(&self, id: ExecutionId, after_seq: Option<i64>) -> Result<Vec<Event>, DomainError> {
        let after_seq = after_seq.unwrap_or(0);
        if after_seq < 0 {
            return Err(DomainError::validation("after_seq", format!("after_seq must be 0 or more, got {after_seq}")));
        }
        self.get(id).await?;
        self.recorder.executions.events_after(id, after_seq).await
    }

    async fn ready_session(&self, id: SessionId) -> Result<Session, DomainError> {
        let session =
            self.recorder.sessions.get(id).await?.ok_or_else(|| DomainError::SessionNotFound { id: id.to_string() })?;
        if session.status != SessionStatus::Ready {
            return Err(DomainError::SessionNotReady { session_id: id, status: session.status.to_string() });
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::event::ConsoleLevel;
    use crate::ports::runtime::{MockJsRuntime, Outcome};
    use crate::ports::store::{MockExecutionStore, MockSessionStore};
    use crate::services::fixtures::{a_session, fixed_clock};

    fn service(sessions: MockSessionStore, executions: MockExecutionStore, runtime: MockJsRuntime) -> ExecutionService {
        ExecutionService::new(Arc::new(Recorder::new(
            Arc::new(sessions),
            Arc::new(executions),
            Arc::new(runtime),
            fixed_clock(),
        )))
    }

    fn sessions_with(status: SessionStatus) -> MockSessionStore {
        let mut sessions = MockSessionStore::new();
        sessions.expect_get().returning(move |id| Ok(Some(a_session(id, status))));
        sessions
    }

    type Finished = Arc<Mutex<Vec<(Execution, Vec<Event>)>>>;

    fn recording_executions() -> (MockExecutionStore, Finished) {
        let finished = Arc::new(Mutex::new(Vec::new()));
        let sink = finished.clone();
        let mut executions = MockExecutionStore::new();
        executions.expect_insert().returning(|e| {
            assert_eq!(e.status, ExecutionStatus::Running);
            Ok(())
        });
        executions.expect_finish().returning(move |e, events| {
            sink.lock().unwrap().push((e.clone(), events.to_vec()));
            Ok(())
        });
        (executions, finished)
    }

    fn runtime_returning(outcome: Outcome) -> MockJsRuntime {
        let mut runtime = MockJsRuntime::new();
        runtime.expect_run().returning(move |_, _| Ok(outcome.clone()));
        runtime
    }

    #[test]
    fn a_repl_call_records_the_echo_the_console_and_the_value_in_order() {
        let (executions, finished) = recording_executions();
        let runtime = runtime_returning(Outcome {
            events: vec![
                EventPayload::Console { level: ConsoleLevel::Log, text: "hi".into() },
                EventPayload::Value { kind: "number".into(), preview: "2".into(), json: Some(2.into()) },
            ],
            ending: Ending::Completed,
        });
        let svc = service(sessions_with(SessionStatus::Ready), executions, runtime);
        let done = block_on(svc.repl(SessionId::new(), "console.log('hi'); 1+1")).unwrap();
        let types: Vec<_> = done.events.iter().map(|e| e.payload.type_name()).collect();
        assert_eq!(types, ["input_echo", "console", "value"]);
        assert_eq!(done.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(done.execution.status, ExecutionStatus::Ok);
        assert_eq!(done.execution.result.as_ref().unwrap()["json"], 2);
        assert_eq!(done.execution.metrics.event_count, 3);
        assert_eq!(finished.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_session_that_is_not_ready_refuses_executions() {
        let mut executions = MockExecutionStore::new();
        executions.expect_insert().never();
        let svc = service(sessions_with(SessionStatus::Closed), executions, MockJsRuntime::new());
        let err = block_on(svc.repl(SessionId::new(), "1")).unwrap_err();
        assert_eq!(err.code(), "SESSION_NOT_READY");
    }

    #[test]
    fn a_limit_is_an_error_naming_the_execution_and_is_stored_with_a_system_event() {
        let (executions, finished) = recording_executions();
        let runtime = runtime_returning(Outcome {
            events: vec![EventPayload::Console { level: ConsoleLevel::Log, text: "x".into() }],
            ending: Ending::Limit { hit: LimitHit::Events { max_events: 1 }, runtime_lost: false },
        });
        let svc = service(sessions_with(SessionStatus::Ready), executions, runtime);
        let err = block_on(svc.repl(SessionId::new(), "for(;;) console.log('x')")).unwrap_err();
        assert_eq!(err.code(), "OUTPUT_LIMIT_EXCEEDED");
        let stored = finished.lock().unwrap();
        let (execution, events) = &stored[0];
        assert_eq!(err.details()["execution_id"], execution.id.to_string());
        assert_eq!(execution.status, ExecutionStatus::Error);
        match &events.last().unwrap().payload {
            EventPayload::System { message, .. } => assert!(message.contains("max_events"), "{message}"),
            other => panic!("expected a system event last, got {other:?}"),
        }
    }

    #[test]
    fn a_timeout_that_killed_the_runtime_crashes_the_session() {
        let (executions, finished) = recording_executions();
        let mut runtime = runtime_returning(Outcome {
            events: vec![],
            ending: Ending::Limit { hit: LimitHit::WallTime { limit_ms: 100 }, runtime_lost: true },
        });
        runtime.expect_close().times(1).returning(|_| ());
        let mut sessions = sessions_with(SessionStatus::Ready);
        sessions
            .expect_update_state()
            .withf(|s| s.status == SessionStatus::Crashed && s.last_error.as_deref().unwrap_or("").contains("wall_ms"))
            .times(1)
            .returning(|_| Ok(()));
        let svc = service(sessions, executions, runtime);
        let err = block_on(svc.repl(SessionId::new(), "while(true){}")).unwrap_err();
        assert_eq!(err.code(), "EXECUTION_TIMEOUT");
        assert_eq!(err.details()["runtime_lost"], true);
        assert!(err.to_string().contains("session is crashed"), "{err}");
        assert_eq!(finished.lock().unwrap()[0].0.status, ExecutionStatus::Timeout);
    }

    #[test]
    fn a_session_closed_while_its_execution_ran_stays_closed() {
        let (executions, _) = recording_executions();
        let mut runtime = runtime_returning(Outcome {
            events: vec![],
            ending: Ending::Crashed { reason: "the runtime was closed".into() },
        });
        runtime.expect_close().returning(|_| ());
        let reads = Arc::new(Mutex::new(0));
        let mut sessions = MockSessionStore::new();
        sessions.expect_get().returning(move |id| {
            let mut n = reads.lock().unwrap();
            *n += 1;
            let status = if *n == 1 { SessionStatus::Ready } else { SessionStatus::Closed };
            Ok(Some(a_session(id, status)))
        });
        sessions.expect_update_state().never();
        let svc = service(sessions, executions, runtime);
        let done = block_on(svc.repl(SessionId::new(), "1")).unwrap();
        assert_eq!(done.execution.status, ExecutionStatus::Error);
    }

    #[test]
    fn a_thrown_exception_is_a_stored_execution_with_status_error() {
        let (executions, _) = recording_executions();
        let runtime = runtime_returning(Outcome {
            events: vec![EventPayload::Exception { message: "ReferenceError: y".into(), stack: String::new() }],
            ending: Ending::Threw,
        });
        let svc = service(sessions_with(SessionStatus::Ready), executions, runtime);
        let done = block_on(svc.repl(SessionId::new(), "y")).unwrap();
        assert_eq!(done.execution.status, ExecutionStatus::Error);
        assert_eq!(done.execution.error.unwrap()["message"], "ReferenceError: y");
    }

    fn store_unavailable() -> DomainError {
        DomainError::StoreUnavailable { reason: "pool timed out".into(), execution_id: None }
    }

    fn storage_full() -> DomainError {
        DomainError::StorageFull { reason: "disk full".into(), execution_id: None }
    }

    /// An execution store whose final write fails with `error` and which
    /// records what is handed to `finish_later`.
    fn failing_executions(error: fn() -> DomainError) -> (MockExecutionStore, Finished) {
        let queued = Arc::new(Mutex::new(Vec::new()));
        let sink = queued.clone();
        let mut executions = MockExecutionStore::new();
        executions.expect_insert().returning(|_| Ok(()));
        executions.expect_finish().times(1).returning(move |_, _| Err(error()));
        executions.expect_finish_later().returning(move |e, events| sink.lock().unwrap().push((e, events)));
        (executions, queued)
    }

    #[test]
    fn an_execution_whose_final_write_meets_a_store_outage_is_queued_and_the_error_names_it() {
        for outage in [store_unavailable as fn() -> DomainError, storage_full] {
            let code = outage().code();
            let (executions, queued) = failing_executions(outage);
            let runtime = runtime_returning(Outcome {
                events: vec![EventPayload::Value { kind: "number".into(), preview: "2".into(), json: Some(2.into()) }],
                ending: Ending::Completed,
            });
            let svc = service(sessions_with(SessionStatus::Ready), executions, runtime);
            let err = block_on(svc.repl(SessionId::new(), "1+1")).unwrap_err();
            assert_eq!(err.code(), code);
            let queued = queued.lock().unwrap();
            assert_eq!(queued.len(), 1, "{code}: handed to finish_later once");
            let (execution, events) = &queued[0];
            assert_eq!(err.details()["execution_id"], execution.id.to_string(), "{code}");
            assert!(err.to_string().contains(&execution.id.to_string()), "{code}: {err}");
            assert_eq!(execution.status, ExecutionStatus::Ok, "{code}");
            assert!(execution.ended_at.is_some(), "{code}: queued finished, not running");
            let types: Vec<_> = events.iter().map(|e| e.payload.type_name()).collect();
            assert_eq!(types, ["input_echo", "value"], "{code}");
            assert!(events.iter().all(|e| e.execution_id == execution.id), "{code}");
        }
    }

    #[test]
    fn a_final_write_that_fails_for_another_reason_is_not_queued() {
        let mut executions = MockExecutionStore::new();
        executions.expect_insert().returning(|_| Ok(()));
        executions.expect_finish().returning(|_, _| Err(DomainError::internal("constraint violated")));
        executions.expect_finish_later().never();
        let runtime = runtime_returning(Outcome { events: vec![], ending: Ending::Completed });
        let svc = service(sessions_with(SessionStatus::Ready), executions, runtime);
        let err = block_on(svc.repl(SessionId::new(), "1")).unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
        assert!(err.details().get("execution_id").is_none());
    }

    #[test]
    fn a_store_outage_before_the_run_runs_nothing_and_names_no_execution() {
        let mut executions = MockExecutionStore::new();
        executions.expect_insert().returning(|_| Err(store_unavailable()));
        executions.expect_finish().never();
        executions.expect_finish_later().never();
        let mut runtime = MockJsRuntime::new();
        runtime.expect_run().never();
        let svc = service(sessions_with(SessionStatus::Ready), executions, runtime);
        let err = block_on(svc.repl(SessionId::new(), "1")).unwrap_err();
        assert_eq!(err.code(), "STORE_UNAVAILABLE");
        assert!(err.details().get("execution_id").is_none());
    }

    #[test]
    fn a_lost_runtime_is_closed_even_when_the_store_is_down() {
        let (executions, queued) = failing_executions(store_unavailable);
        let mut runtime = runtime_returning(Outcome {
            events: vec![],
            ending: Ending::Limit { hit: LimitHit::Memory { limit_mb: 64 }, runtime_lost: true },
        });
        runtime.expect_close().times(1).returning(|_| ());
        let mut sessions = sessions_with(SessionStatus::Ready);
        sessions.expect_update_state().times(1).returning(|_| Err(store_unavailable()));
        let svc = service(sessions, executions, runtime);
        let err = block_on(svc.repl(SessionId::new(), "[].fill()")).unwrap_err();
        assert_eq!(err.code(), "STORE_UNAVAILABLE", "the outage wins over the limit: the result is not stored yet");
        let queued = queued.lock().unwrap();
        assert_eq!(err.details()["execution_id"], queued[0].0.id.to_string());
        assert_eq!(queued[0].0.error.as_ref().unwrap()["code"], "MEMORY_LIMIT_EXCEEDED");
    }

    #[test]
    fn a_second_execution_in_a_busy_session_is_refused_at_once() {
        let session = a_session(SessionId::new(), SessionStatus::Ready);
        let busy = Busy::default();
        let _first = busy.claim(session.id, ExecutionId::new()).unwrap();
        let err = busy.claim(session.id, ExecutionId::new()).err().unwrap();
        assert_eq!(err.code(), "SESSION_BUSY");
        let other = busy.claim(SessionId::new(), ExecutionId::new());
        assert!(other.is_ok(), "other sessions are not affected");
    }

    #[test]
    fn a_session_is_free_again_after_its_execution() {
        let busy = Busy::default();
        let id = SessionId::new();
        drop(busy.claim(id, ExecutionId::new()).unwrap());
        assert!(busy.claim(id, ExecutionId::new()).is_ok());
    }

    #[test]
    fn blank_input_and_bad_limits_and_cursors_are_validation_errors() {
        let svc = service(MockSessionStore::new(), MockExecutionStore::new(), MockJsRuntime::new());
        assert_eq!(block_on(svc.repl(SessionId::new(), "  ")).unwrap_err().code(), "VALIDATION_ERROR");
        assert_eq!(block_on(svc.list(None, Some(0))).unwrap_err().code(), "VALIDATION_ERROR");
        assert_eq!(block_on(svc.events(ExecutionId::new(), Some(-1))).unwrap_err().code(), "VALIDATION_ERROR");
    }

    #[test]
    fn run_file_refuses_escaping_paths_before_looking_up_the_session() {
        let mut sessions = MockSessionStore::new();
        sessions.expect_get().never();
        let svc = service(sessions, MockExecutionStore::new(), MockJsRuntime::new());
        for path in ["../x.js", "/etc/passwd", "a/../../b.js"] {
            let request = RunFileRequest { path: path.into(), ..Default::default() };
            assert_eq!(block_on(svc.run_file(SessionId::new(), request)).unwrap_err().code(), "INVALID_PATH", "{path}");
        }
    }
}
