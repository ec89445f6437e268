//! Execution rules: a session must be ready, one execution at a time per
//! session, every execution recorded with its ordered events as they happen,
//! limits turned into errors that name the execution, and a running
//! execution can be followed live or cancelled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{FutureExt, Stream, StreamExt};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::live::{Followed, LiveExecutions};
use crate::error::{state_suffix, with_state};
use crate::event::{Event, EventPayload, SystemLevel};
use crate::execution::{Execution, ExecutionKind, ExecutionStatus, ListLimit, Metrics};
use crate::ids::{ExecutionId, SessionId};
use crate::paths::ScriptPath;
use crate::ports::{
    Clock, Ending, ExecutionStore, Job, JsRuntime, LimitHit, LiveEvents, RuntimeError, SessionStore, StateAfter,
};
use crate::session::{Session, SessionStatus};
use crate::telemetry::{ExecutionStats, Limit, RunningExecution};
use crate::DomainError;

/// A finished execution with the events it recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    pub execution: Execution,
    pub events: Vec<Event>,
}

/// The rest of a started execution: resolves when it has ended and is
/// stored. It runs only while polled, so the caller must drive it to the end
/// (an adapter spawns it) even when nobody waits for the answer.
pub type Completion = Pin<Box<dyn Future<Output = Result<Executed, DomainError>> + Send>>;

/// An execution that started: stored as `running`, its job under way.
pub struct Started {
    pub execution: Execution,
    pub completion: Completion,
}

/// How a drain went; see [`ExecutionService::drain`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Executions that ran here during the drain.
    pub running: usize,
    /// Of those, the ones that ended on their own.
    pub finished: usize,
    /// The ones cancelled at the shutdown timeout.
    pub cancelled: usize,
    /// The ones whose end could not be waited for (a cancel that failed or
    /// did not end them in time): stored `running`, they are finalised as
    /// interrupted at the next start.
    pub left: usize,
}

/// What a reader of an execution receives: its events after a cursor, then
/// its end.
pub type Following = Pin<Box<dyn Stream<Item = Result<Followed, DomainError>> + Send>>;

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

/// How often a running execution's new events are stored, at most.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// How often a reader polls the store for an execution that runs elsewhere.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// How often a cancel asks the runtime again while the job has not started.
const CANCEL_RETRY: Duration = Duration::from_millis(5);
/// How long a cancel waits for the execution to end and be stored.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// What keeps a session from a second execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activity {
    Execution(ExecutionId),
    Fork,
}

/// Sessions with an execution (or a fork) in flight. A std `Mutex`: nothing
/// awaits while it is held.
#[derive(Default, Clone)]
pub(crate) struct Busy(Arc<Mutex<HashMap<SessionId, Activity>>>);

/// The claim on a session; dropping it frees the session.
pub(crate) struct BusyGuard {
    busy: Busy,
    session: SessionId,
}

impl Busy {
    pub fn claim(&self, session: SessionId, activity: Activity) -> Result<BusyGuard, DomainError> {
        let mut running = self.0.lock().expect("busy map is never poisoned: no panics while held");
        if let Some(current) = running.get(&session) {
            let running = match current {
                Activity::Execution(id) => id.to_string(),
                Activity::Fork => "a fork of this session".to_owned(),
            };
            return Err(DomainError::SessionBusy { session_id: session, running });
        }
        running.insert(session, activity);
        Ok(BusyGuard { busy: self.clone(), session })
    }
}

impl Drop for BusyGuard {
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
    pub busy: Busy,
    pub live: Arc<LiveExecutions>,
    /// What the executions of this process did, for metrics.
    pub stats: Arc<ExecutionStats>,
    /// Set once by [`ExecutionService::drain`]: no execution starts after.
    pub draining: AtomicBool,
}

impl Recorder {
    pub fn new(
        sessions: Arc<dyn SessionStore>,
        executions: Arc<dyn ExecutionStore>,
        runtime: Arc<dyn JsRuntime>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let stats = Arc::new(ExecutionStats::new());
        let draining = AtomicBool::new(false);
        Self { sessions, executions, runtime, clock, busy: Busy::default(), live: Arc::default(), stats, draining }
    }

    /// `SHUTTING_DOWN` once the daemon drains.
    pub fn refuse_when_draining(&self) -> Result<(), DomainError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(DomainError::ShuttingDown);
        }
        Ok(())
    }

    /// Runs `work` in `session` to its end; see [`Recorder::start`].
    pub async fn run(self: &Arc<Self>, session: &Session, work: Work) -> Result<Executed, DomainError> {
        self.start(session, work).await?.completion.await
    }

    /// Claims the session, stores the execution as `running` with its input
    /// echo, and returns it with the rest of the run: the job, its events
    /// stored as they happen, and the final state. The completion returns
    /// the execution also when the code threw or was cancelled; a limit is
    /// an error carrying the execution id. A runtime that died and could
    /// not be rolled back marks the session `crashed`. When the final write
    /// meets a store outage, the execution is handed to
    /// [`ExecutionStore::finish_later`] and the outage error names it
    /// (`details.execution_id`); a lost runtime is still closed. Refused
    /// with `SHUTTING_DOWN` once the daemon drains. The completion runs in
    /// an `execution` span (`execution_id`, `session_id`), a child of the
    /// caller's span (the request's), wherever it is driven.
    pub async fn start(self: &Arc<Self>, session: &Session, work: Work) -> Result<Started, DomainError> {
        let execution_id = ExecutionId::new();
        let guard = self.busy.claim(session.id, Activity::Execution(execution_id))?;
        let execution = Execution {
            id: execution_id,
            session_id: session.id,
            kind: work.kind,
            input: work.input,
            path: work.path,
            args: work.args,
            env: work.env,
            status: ExecutionStatus::Running,
            started_at: self.clock.now(),
            ended_at: None,
            result: None,
            error: None,
            metrics: Metrics::default(),
        };
        let flush_now = self.live.open(execution_id, session.id);
        // Checked with the journal open, so that a drain that began before
        // this check sees this execution among those it waits for.
        if let Err(err) = self.refuse_when_draining() {
            self.live.discard(execution_id);
            return Err(err);
        }
        // At error level, as the request span: its ids reach every line.
        let span = tracing::error_span!("execution", execution_id = %execution_id, session_id = %session.id);
        if let Err(err) = self.executions.insert(&execution).instrument(span.clone()).await {
            self.live.discard(execution_id);
            return Err(err);
        }
        let counted = self.stats.start(execution.kind);
        let echo = execution.input.clone().or_else(|| execution.path.clone()).unwrap_or_default();
        self.live.record(execution_id, EventPayload::InputEcho { text: echo }, self.clock.now());
        let recorder = self.clone();
        let session = session.clone();
        let running = execution.clone();
        span.in_scope(|| tracing::debug!(kind = execution.kind.as_str(), "execution started"));
        let completion = async move { recorder.complete(&session, running, work.job, flush_now, guard, counted).await };
        Ok(Started { execution, completion: completion.instrument(span).boxed() })
    }

    /// Runs the job while storing its events every [`FLUSH_EVERY`] (or at
    /// once when many wait), then stores the end.
    async fn complete(
        self: &Arc<Self>,
        session: &Session,
        mut execution: Execution,
        job: Job,
        flush_now: UnboundedReceiver<()>,
        busy: BusyGuard,
        counted: RunningExecution,
    ) -> Result<Executed, DomainError> {
        let id = execution.id;
        let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
        let flusher = self.flush_while_running(id, flush_now, stop_rx);
        let run = async {
            let ending = self.run_job(session.id, id, job).await;
            let _ = stop_tx.send(());
            ending
        };
        let (ending, ()) = futures::join!(run, flusher);
        let mut events = self.live.events(id);
        let verdict = judge(&ending, &events, id);
        if let Some(system) = verdict.system_event {
            events.extend(self.live.record(id, system, self.clock.now()));
        }
        let ended_at = self.clock.now();
        execution.status = verdict.status;
        execution.ended_at = Some(ended_at);
        execution.result = verdict.result;
        execution.error = verdict.error_json;
        execution.metrics = Metrics {
            duration_ms: (ended_at - execution.started_at).num_milliseconds().max(0) as u64,
            event_count: events.len() as u64,
            output_bytes: events.iter().map(|e| e.payload.output_bytes() as u64).sum(),
        };
        let limit = match &ending {
            Ending::Limit { hit, .. } => Some(Limit::from(*hit)),
            _ => None,
        };
        counted.end(execution.status, &execution.metrics, limit);
        log_end(&ending, &execution);
        let tail = self.live.unstored(id);
        let finished = self.executions.finish(&execution, &tail).await;
        // The session's fate is settled before anyone hears the end: a reader
        // of the end (a cancel, a stream) finds the session crashed or free.
        // When the store is out, a session still marked live is found crashed
        // by its next execution, or closed by the next start's reconciliation.
        let lost = match verdict.session_lost {
            Some(reason) => self.mark_lost(session, reason).await,
            None => Ok(()),
        };
        drop(busy);
        self.live.close(&execution);
        if let Err(err) = finished {
            if !err.is_store_outage() {
                return Err(err);
            }
            // The execution ran: keep it until the store takes it, and say so.
            self.executions.finish_later(execution, tail);
            return Err(err.with_pending_execution(id));
        }
        lost?;
        match verdict.failure {
            Some(err) => Err(err),
            None => Ok(Executed { execution, events }),
        }
    }

    /// The job's ending; its events go to the execution's journal as they
    /// come. A cancel that came before the job started ends it at once.
    async fn run_job(&self, session: SessionId, id: ExecutionId, job: Job) -> Ending {
        if self.live.cancel_requested(id) {
            return Ending::Cancelled { state: StateAfter::Kept };
        }
        let live: LiveEvents = {
            let journal = self.live.clone();
            let clock = self.clock.clone();
            Arc::new(move |payload| {
                journal.record(id, payload, clock.now());
            })
        };
        let outcome = self.runtime.run(session, job, live).await;
        match outcome {
            Ok(outcome) => {
                for payload in outcome.events {
                    self.live.record(id, payload, self.clock.now());
                }
                outcome.ending
            }
            Err(RuntimeError::Unavailable(reason)) => Ending::Crashed { reason, state: StateAfter::Lost },
            Err(err @ (RuntimeError::StartFailed(_) | RuntimeError::Internal(_))) => {
                Ending::Crashed { reason: err.to_string(), state: StateAfter::Lost }
            }
        }
    }

    /// Stores the execution's new events every [`FLUSH_EVERY`], or at once
    /// when many wait, until `stop`; a write in progress is finished, never
    /// dropped. A failed write leaves the events in the journal for the next
    /// write or the final one.
    async fn flush_while_running(
        &self,
        id: ExecutionId,
        mut flush_now: UnboundedReceiver<()>,
        stop: futures::channel::oneshot::Receiver<()>,
    ) {
        let mut stop = stop.fuse();
        let mut warned = false;
        loop {
            let tick = self.clock.sleep(FLUSH_EVERY).fuse();
            futures::pin_mut!(tick);
            futures::select! {
                _ = stop => return,
                _ = tick => {},
                _ = flush_now.next() => {},
            }
            let batch = self.live.unstored(id);
            if batch.is_empty() {
                continue;
            }
            match self.executions.append_events(id, &batch).await {
                Ok(()) => self.live.mark_stored(id, batch.len()),
                // Once per execution: the flusher retries every tick.
                Err(err) if !warned => {
                    warned = true;
                    tracing::warn!(error = %err, waiting = batch.len(), "cannot store the execution's new events yet; retrying");
                }
                Err(_) => {}
            }
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

/// One line per ended execution, in its span: debug when it completed or
/// threw, info when a cancel or a limit stopped it, warn when its runtime
/// crashed under it.
fn log_end(ending: &Ending, execution: &Execution) {
    let status = execution.status.as_str();
    let (duration_ms, events) = (execution.metrics.duration_ms, execution.metrics.event_count);
    let state = |state: &StateAfter| match state {
        StateAfter::Kept => "kept",
        StateAfter::RolledBack => "rolled_back",
        StateAfter::Lost => "lost",
    };
    match ending {
        Ending::Completed | Ending::Threw => tracing::debug!(status, duration_ms, events, "execution ended"),
        Ending::Limit { hit, state: after } => tracing::info!(
            status,
            duration_ms,
            events,
            limit = Limit::from(*hit).as_str(),
            session_state = state(after),
            "execution stopped by a limit"
        ),
        Ending::Cancelled { state: after } => {
            tracing::info!(status, duration_ms, events, session_state = state(after), "execution cancelled")
        }
        Ending::Crashed { reason, state: after } => tracing::warn!(
            status,
            duration_ms,
            events,
            reason = reason.as_str(),
            session_state = state(after),
            "execution ended: its runtime stopped under it"
        ),
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

impl Verdict {
    /// The execution was stopped: `code` and `message` are its error, with
    /// `details` saying what became of the session, and a `system` event.
    fn stopped(
        status: ExecutionStatus,
        code: &str,
        message: String,
        mut details: Value,
        state: StateAfter,
        failure: Option<DomainError>,
    ) -> Self {
        with_state(&mut details, state);
        let level = if status == ExecutionStatus::Cancelled { SystemLevel::Warn } else { SystemLevel::Error };
        Self {
            status,
            result: None,
            error_json: Some(json!({ "code": code, "message": message, "details": details })),
            system_event: Some(EventPayload::System { message: message.clone(), level }),
            session_lost: state.is_lost().then_some(message),
            failure,
        }
    }
}

fn judge(ending: &Ending, events: &[Event], execution_id: ExecutionId) -> Verdict {
    match ending {
        Ending::Completed => Verdict {
            status: ExecutionStatus::Ok,
            result: events.iter().rev().find_map(|e| match &e.payload {
                EventPayload::Value { .. } => Some(e.payload.payload_json()),
                _ => None,
            }),
            error_json: None,
            system_event: None,
            session_lost: None,
            failure: None,
        },
        Ending::Threw => {
            let message = events
                .iter()
                .rev()
                .find_map(|e| match &e.payload {
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
        Ending::Limit { hit, state } => {
            let failure = limit_error(*hit, execution_id, *state);
            let status = match hit {
                LimitHit::WallTime { .. } | LimitHit::CpuTime { .. } => ExecutionStatus::Timeout,
                _ => ExecutionStatus::Error,
            };
            let mut details = failure.details();
            if let Value::Object(map) = &mut details {
                map.remove("execution_id");
            }
            Verdict::stopped(status, failure.code(), failure.to_string(), details, *state, Some(failure))
        }
        Ending::Cancelled { state } => {
            let message = format!("execution cancelled{}", state_suffix(*state));
            Verdict::stopped(ExecutionStatus::Cancelled, "CANCELLED", message, json!({}), *state, None)
        }
        Ending::Crashed { reason, state } => {
            let message = format!("the runtime stopped unexpectedly: {reason}{}", state_suffix(*state));
            Verdict::stopped(ExecutionStatus::Error, "RUNTIME_CRASHED", message, json!({}), *state, None)
        }
    }
}

fn limit_error(hit: LimitHit, execution_id: ExecutionId, state: StateAfter) -> DomainError {
    match hit {
        LimitHit::WallTime { limit_ms } => {
            DomainError::ExecutionTimeout { execution_id, limit: "wall_ms".into(), limit_ms, state }
        }
        LimitHit::CpuTime { limit_ms } => {
            DomainError::ExecutionTimeout { execution_id, limit: "cpu_ms".into(), limit_ms, state }
        }
        LimitHit::Memory { limit_mb } => DomainError::MemoryLimitExceeded { execution_id, limit_mb, state },
        LimitHit::Events { max_events } => {
            DomainError::OutputLimitExceeded { execution_id, limit: "max_events".into(), value: max_events, state }
        }
        LimitHit::Output { max_output_kb } => DomainError::OutputLimitExceeded {
            execution_id,
            limit: "max_output_kb".into(),
            value: max_output_kb,
            state,
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

    /// What the executions of this process did so far (startup files
    /// included), as the metrics count it.
    pub fn stats(&self) -> &ExecutionStats {
        &self.recorder.stats
    }

    /// Evaluates a snippet in the session's global scope and waits for its end.
    pub async fn repl(&self, session_id: SessionId, input: &str) -> Result<Executed, DomainError> {
        self.start_repl(session_id, input).await?.completion.await
    }

    /// Starts evaluating a snippet: the execution is stored as `running`
    /// and returned with the rest of its run.
    pub async fn start_repl(&self, session_id: SessionId, input: &str) -> Result<Started, DomainError> {
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
        self.recorder.start(&session, work).await
    }

    /// Runs a file of the session's worktree in its global scope and waits
    /// for its end.
    pub async fn run_file(&self, session_id: SessionId, request: RunFileRequest) -> Result<Executed, DomainError> {
        self.start_run_file(session_id, request).await?.completion.await
    }

    /// Starts running a file of the session's worktree, like [`ExecutionService::start_repl`].
    pub async fn start_run_file(&self, session_id: SessionId, request: RunFileRequest) -> Result<Started, DomainError> {
        let path = ScriptPath::parse(&request.path)?;
        let env = request.env.unwrap_or_default();
        if let Some(key) = env.keys().find(|k| k.is_empty() || k.contains(['=', '\0'])) {
            return Err(DomainError::InvalidValue {
                field: "env".into(),
                message: format!("env name {key:?} is not a valid variable name (empty, or holds `=` or NUL)"),
            });
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
        self.recorder.start(&session, work).await
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
        let after_seq = cursor(after_seq)?;
        self.get(id).await?;
        self.recorder.executions.events_after(id, after_seq).await
    }

    /// The execution's events with `seq > after_seq` (default 0) — those
    /// recorded so far, then each new one as it happens — and then its end.
    /// For an execution that runs in this process the events come from its
    /// journal; otherwise from the store, polled while it is `running`.
    pub async fn follow(&self, id: ExecutionId, after_seq: Option<i64>) -> Result<Following, DomainError> {
        let after_seq = cursor(after_seq)?;
        if let Some((backlog, rest)) = self.recorder.live.follow(id, after_seq) {
            let backlog = futures::stream::iter(backlog.into_iter().map(|e| Ok(Followed::Event(e))));
            return Ok(backlog.chain(rest.map(Ok)).boxed());
        }
        self.get(id).await?;
        let recorder = self.recorder.clone();
        let polled = futures::stream::unfold(Some((after_seq, true)), move |state| {
            let recorder = recorder.clone();
            async move {
                let (last_seq, first) = state?;
                if !first {
                    recorder.clock.sleep(FOLLOW_POLL).await;
                }
                // The execution first: once it has ended, all its events are stored.
                let fail = |err| Some((futures::stream::iter(vec![Err(err)]), None));
                let execution = match recorder.executions.get(id).await {
                    Ok(Some(execution)) => execution,
                    Ok(None) => return fail(DomainError::ExecutionNotFound { id: id.to_string() }),
                    Err(err) => return fail(err),
                };
                let events = match recorder.executions.events_after(id, last_seq).await {
                    Ok(events) => events,
                    Err(err) => return fail(err),
                };
                let next_seq = events.last().map_or(last_seq, |e| e.seq);
                let mut items: Vec<Result<Followed, DomainError>> =
                    events.into_iter().map(|e| Ok(Followed::Event(e))).collect();
                let next = if execution.status == ExecutionStatus::Running {
                    Some((next_seq, false))
                } else {
                    items.push(Ok(Followed::End(execution)));
                    None
                };
                Some((futures::stream::iter(items), next))
            }
        });
        Ok(polled.flatten().boxed())
    }

    /// Cancels a running execution: whatever its code does, it ends
    /// `cancelled` (with the session rolled back to its state before it,
    /// when the template keeps checkpoints). Returns it as stored.
    pub async fn cancel(&self, id: ExecutionId) -> Result<Execution, DomainError> {
        let execution = self.get(id).await?;
        let not_running = |status: &str| DomainError::ExecutionNotRunning { execution_id: id, status: status.into() };
        if execution.status != ExecutionStatus::Running {
            return Err(not_running(execution.status.as_str()));
        }
        let Some(session) = self.recorder.live.request_cancel(id) else {
            // Stored as running but not running here: it ended meanwhile,
            // or another daemon process runs it.
            let current = self.get(id).await?;
            return match current.status {
                ExecutionStatus::Running => Err(not_running("running in another daemon process")),
                status => Err(not_running(status.as_str())),
            };
        };
        tracing::info!(execution_id = %id, session_id = %session, "cancel requested");
        let Some((_, mut rest)) = self.recorder.live.follow(id, i64::MAX) else { return self.get(id).await };
        let clock = &self.recorder.clock;
        // The job may not have reached the runtime yet: ask until it has.
        let mut asked = false;
        let ended = loop {
            if !asked {
                asked = self.recorder.runtime.cancel(session).await;
            }
            let pause = clock.sleep(if asked { CANCEL_WAIT } else { CANCEL_RETRY }).fuse();
            futures::pin_mut!(pause);
            futures::select! {
                item = rest.next() => match item {
                    Some(Followed::End(execution)) => break Some(execution),
                    Some(Followed::Event(_)) => {},
                    None => break None,
                },
                _ = pause => if asked { break None },
            }
        };
        let execution = match ended {
            Some(execution) => execution,
            None => self.get(id).await?,
        };
        match execution.status {
            // It ended on its own before the cancel could reach it.
            status if !asked && status != ExecutionStatus::Cancelled => Err(not_running(status.as_str())),
            _ => Ok(execution),
        }
    }

    /// How many executions run in this process now.
    pub fn running_here(&self) -> usize {
        self.recorder.live.running().len()
    }

    /// Whether the daemon drains (see [`ExecutionService::drain`]).
    pub fn is_draining(&self) -> bool {
        self.recorder.draining.load(Ordering::SeqCst)
    }

    /// Drains this process before it stops: from now on every new
    /// execution (and session, and fork) is refused with `SHUTTING_DOWN`;
    /// the executions running here may end on their own for `timeout`, and
    /// those still running then are cancelled through [`ExecutionService::cancel`]
    /// (stored `cancelled` with their events and a `system` event saying
    /// why). Returns once each has ended and is stored (or queued for the
    /// store). Nothing else is touched: sessions stay as they are.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        let recorder = &self.recorder;
        recorder.draining.store(true, Ordering::SeqCst);
        let mut seen: HashSet<ExecutionId> = recorder.live.running().into_iter().collect();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            running = seen.len(),
            timeout_ms,
            "drain started: new work is refused, running executions may end"
        );
        let deadline = recorder.clock.sleep(timeout).fuse();
        futures::pin_mut!(deadline);
        // Executions that passed the draining check just before it was set
        // show up in a later look; none can start after it.
        let rest = loop {
            let running = recorder.live.running();
            seen.extend(running.iter().copied());
            if running.is_empty() {
                break running;
            }
            let ended = self.all_ended(&running).fuse();
            futures::pin_mut!(ended);
            futures::select! {
                () = ended => {}
                () = deadline => break recorder.live.running(),
            }
        };
        seen.extend(rest.iter().copied());
        let mut report = DrainReport { running: seen.len(), ..DrainReport::default() };
        if !rest.is_empty() {
            tracing::warn!(
                cancelling = rest.len(),
                timeout_ms,
                "drain: cancelling the executions still running at the shutdown timeout"
            );
        }
        let message = format!(
            "the daemon is shutting down: this execution is cancelled, still running after the shutdown timeout of {timeout_ms} ms"
        );
        for id in &rest {
            let event = EventPayload::System { message: message.clone(), level: SystemLevel::Warn };
            recorder.live.record(*id, event, recorder.clock.now());
        }
        let cancels = futures::future::join_all(rest.iter().map(|id| self.cancel(*id))).await;
        for (id, cancelled) in rest.iter().zip(cancels) {
            match cancelled {
                Ok(execution) if execution.status == ExecutionStatus::Cancelled => report.cancelled += 1,
                Ok(execution) if execution.status == ExecutionStatus::Running => report.left += 1,
                Ok(_) | Err(DomainError::ExecutionNotRunning { .. }) => {}
                Err(err) => {
                    tracing::warn!(execution_id = %id, error = %err, "drain: cannot cancel an execution");
                    report.left += 1;
                }
            }
        }
        report.left = report.left.max(recorder.live.running().len());
        report.finished = report.running.saturating_sub(report.cancelled + report.left);
        tracing::info!(
            running = report.running,
            finished = report.finished,
            cancelled = report.cancelled,
            left = report.left,
            "drain finished"
        );
        report
    }

    /// Resolves once each of `ids` has ended here (or never ran here).
    fn all_ended(&self, ids: &[ExecutionId]) -> impl Future<Output = ()> + use<> {
        let followers: Vec<_> =
            ids.iter().filter_map(|id| self.recorder.live.follow(*id, i64::MAX)).map(|(_, rest)| rest).collect();
        // Each follower ends with the execution's end, when its journal goes.
        futures::future::join_all(followers.into_iter().map(|rest| rest.for_each(|_| async {}))).map(|_| ())
    }

    async fn ready_session(&self, id: SessionId) -> Result<Session, DomainError> {
        self.recorder.refuse_when_draining()?;
        let session =
            self.recorder.sessions.get(id).await?.ok_or_else(|| DomainError::SessionNotFound { id: id.to_string() })?;
        if session.status != SessionStatus::Ready {
            return Err(DomainError::SessionNotReady { session_id: id, status: session.status.to_string() });
        }
        Ok(session)
    }
}

/// A read cursor: `seq > after_seq`, 0 by default, never negative.
fn cursor(after_seq: Option<i64>) -> Result<i64, DomainError> {
    let after_seq = after_seq.unwrap_or(0);
    if after_seq < 0 {
        return Err(DomainError::validation("after_seq", format!("after_seq must be 0 or more, got {after_seq}")));
    }
    Ok(after_seq)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

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
        runtime.expect_run().returning(move |_, _, _| Ok(outcome.clone()));
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
    fn a_drain_waits_for_the_running_execution_and_refuses_new_ones() {
        let (executions, finished) = recording_executions();
        let runtime = runtime_returning(Outcome { events: vec![], ending: Ending::Completed });
        let svc = service(sessions_with(SessionStatus::Ready), executions, runtime);
        let running = block_on(svc.start_repl(SessionId::new(), "1")).unwrap();
        assert_eq!(svc.running_here(), 1);
        let (report, done) = block_on(async { futures::join!(svc.drain(Duration::from_secs(30)), running.completion) });
        assert_eq!(report, DrainReport { running: 1, finished: 1, cancelled: 0, left: 0 });
        assert_eq!(done.unwrap().execution.status, ExecutionStatus::Ok);
        let refused = block_on(svc.repl(SessionId::new(), "2")).unwrap_err();
        assert_eq!(refused.code(), "SHUTTING_DOWN");
        assert_eq!(finished.lock().unwrap().len(), 1, "the refused execution was never stored");
        assert_eq!(svc.running_here(), 0);
    }

    #[test]
    fn a_drain_cancels_what_still_runs_at_the_timeout_and_says_why_in_its_events() {
        const TIMEOUT: Duration = Duration::from_millis(200);
        let (mut executions, finished) = recording_executions();
        let stored = finished.clone();
        executions.expect_get().returning(move |id| {
            let done = stored.lock().unwrap().iter().find(|(e, _)| e.id == id).map(|(e, _)| e.clone());
            let mut running = crate::services::fixtures::an_execution(id, SessionId::new());
            running.status = ExecutionStatus::Running;
            Ok(Some(done.unwrap_or(running)))
        });
        let mut runtime = MockJsRuntime::new();
        runtime.expect_cancel().times(1).returning(|_| true);
        let mut clock = crate::ports::clock::MockClock::new();
        clock.expect_now().returning(|| fixed_clock().now());
        // Only the drain's timeout passes; every other pause lasts forever.
        clock.expect_sleep().returning(|pause| match pause {
            TIMEOUT => Box::pin(std::future::ready(())),
            _ => Box::pin(std::future::pending()),
        });
        let recorder = Recorder::new(
            Arc::new(sessions_with(SessionStatus::Ready)),
            Arc::new(executions),
            Arc::new(runtime),
            Arc::new(clock),
        );
        let svc = ExecutionService::new(Arc::new(recorder));
        let running = block_on(svc.start_repl(SessionId::new(), "while (true) {}")).unwrap();
        let (report, done) = block_on(async { futures::join!(svc.drain(TIMEOUT), running.completion) });
        assert_eq!(report, DrainReport { running: 1, finished: 0, cancelled: 1, left: 0 });
        assert_eq!(done.unwrap().execution.status, ExecutionStatus::Cancelled);
        let stored = finished.lock().unwrap();
        let (execution, events) = &stored[0];
        assert_eq!(execution.status, ExecutionStatus::Cancelled);
        let messages: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.payload {
                EventPayload::System { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect();
        assert!(messages[0].contains("shutting down") && messages[0].contains("200 ms"), "{messages:?}");
        assert!(messages[1].contains("cancelled"), "{messages:?}");
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
            ending: Ending::Limit { hit: LimitHit::Events { max_events: 1 }, state: StateAfter::Kept },
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
    fn ended_executions_are_counted_by_status_with_the_limit_that_stopped_them() {
        let (executions, _finished) = recording_executions();
        let mut runtime = MockJsRuntime::new();
        let mut endings = vec![
            Ending::Completed,
            Ending::Threw,
            Ending::Limit { hit: LimitHit::CpuTime { limit_ms: 10 }, state: StateAfter::Kept },
        ]
        .into_iter();
        runtime.expect_run().times(3).returning(move |_, _, _| {
            let line = EventPayload::Console { level: ConsoleLevel::Log, text: "abc".into() };
            Ok(Outcome { events: vec![line], ending: endings.next().unwrap() })
        });
        let svc = service(sessions_with(SessionStatus::Ready), executions, runtime);
        block_on(svc.repl(SessionId::new(), "1")).unwrap();
        block_on(svc.repl(SessionId::new(), "throw 1")).unwrap();
        block_on(svc.repl(SessionId::new(), "for(;;){}")).unwrap_err();
        let stats = svc.stats();
        let by_status =
            [ExecutionStatus::Ok, ExecutionStatus::Error, ExecutionStatus::Timeout, ExecutionStatus::Cancelled];
        assert_eq!(by_status.map(|s| stats.ended(s)), [1, 1, 1, 0]);
        assert_eq!(stats.ended_of(ExecutionKind::Repl, ExecutionStatus::Timeout), 1);
        assert_eq!(stats.limit_hits(Limit::Cpu), 1);
        assert_eq!(stats.running(), 0);
        // Each: the input echo and the console line; the limit adds its system event.
        assert_eq!(stats.events(), 7);
        assert_eq!(stats.output_bytes(), 9);
        assert_eq!(stats.durations().count, 3);
    }

    #[test]
    fn a_timeout_that_killed_the_runtime_crashes_the_session() {
        let (executions, finished) = recording_executions();
        let mut runtime = runtime_returning(Outcome {
            events: vec![],
            ending: Ending::Limit { hit: LimitHit::WallTime { limit_ms: 100 }, state: StateAfter::Lost },
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
    fn a_lost_session_is_marked_crashed_before_its_end_is_published() {
        let (mut executions, _) = recording_executions();
        let running = Arc::new(OnceLock::new());
        let seen = running.clone();
        executions.checkpoint();
        executions.expect_insert().returning(move |e| {
            let _ = seen.set(e.id);
            Ok(())
        });
        executions.expect_finish().returning(|_, _| Ok(()));
        let mut runtime =
            runtime_returning(Outcome { events: vec![], ending: Ending::Cancelled { state: StateAfter::Lost } });
        runtime.expect_close().returning(|_| ());
        let recorder_cell: Arc<OnceLock<Arc<Recorder>>> = Arc::new(OnceLock::new());
        let (cell, id) = (recorder_cell.clone(), running.clone());
        let mut sessions = sessions_with(SessionStatus::Ready);
        sessions.expect_update_state().times(1).returning(move |s| {
            assert_eq!(s.status, SessionStatus::Crashed);
            let open = cell.get().unwrap().live.follow(*id.get().unwrap(), 0).is_some();
            assert!(open, "the end was published before the session was marked crashed");
            Ok(())
        });
        let recorder =
            Arc::new(Recorder::new(Arc::new(sessions), Arc::new(executions), Arc::new(runtime), fixed_clock()));
        let _ = recorder_cell.set(recorder.clone());
        let svc = ExecutionService::new(recorder);
        let done = block_on(svc.repl(SessionId::new(), "while(true){}")).unwrap();
        assert_eq!(done.execution.status, ExecutionStatus::Cancelled);
    }

    #[test]
    fn a_session_closed_while_its_execution_ran_stays_closed() {
        let (executions, _) = recording_executions();
        let mut runtime = runtime_returning(Outcome {
            events: vec![],
            ending: Ending::Crashed { reason: "the runtime was closed".into(), state: StateAfter::Lost },
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
            ending: Ending::Limit { hit: LimitHit::Memory { limit_mb: 64 }, state: StateAfter::Lost },
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
        let _first = busy.claim(session.id, Activity::Execution(ExecutionId::new())).unwrap();
        let err = busy.claim(session.id, Activity::Execution(ExecutionId::new())).err().unwrap();
        assert_eq!(err.code(), "SESSION_BUSY");
        let other = busy.claim(SessionId::new(), Activity::Execution(ExecutionId::new()));
        assert!(other.is_ok(), "other sessions are not affected");
    }

    #[test]
    fn a_session_is_free_again_after_its_execution() {
        let busy = Busy::default();
        let id = SessionId::new();
        drop(busy.claim(id, Activity::Execution(ExecutionId::new())).unwrap());
        assert!(busy.claim(id, Activity::Execution(ExecutionId::new())).is_ok());
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

    #[test]
    fn a_stop_that_rolled_back_keeps_the_session_ready_and_says_so() {
        let cases = [
            Ending::Cancelled { state: StateAfter::RolledBack },
            Ending::Limit { hit: LimitHit::WallTime { limit_ms: 50 }, state: StateAfter::RolledBack },
            Ending::Crashed { reason: "SIGSEGV".into(), state: StateAfter::RolledBack },
        ];
        for ending in cases {
            let (executions, finished) = recording_executions();
            let mut runtime = runtime_returning(Outcome { events: vec![], ending: ending.clone() });
            runtime.expect_close().never();
            let mut sessions = sessions_with(SessionStatus::Ready);
            sessions.expect_update_state().never();
            let svc = service(sessions, executions, runtime);
            let result = block_on(svc.repl(SessionId::new(), "x = 2"));
            let stored = finished.lock().unwrap();
            let (execution, events) = &stored[0];
            let error = execution.error.as_ref().unwrap();
            assert_eq!(error["details"]["rolled_back"], true, "{ending:?}");
            assert_eq!(error["details"]["runtime_lost"], false, "{ending:?}");
            assert!(error["message"].as_str().unwrap().contains("rolled back"), "{ending:?}");
            assert!(matches!(events.last().unwrap().payload, EventPayload::System { .. }), "{ending:?}");
            match ending {
                Ending::Cancelled { .. } => {
                    assert_eq!(execution.status, ExecutionStatus::Cancelled);
                    assert_eq!(error["code"], "CANCELLED");
                    assert!(result.is_ok(), "a cancelled execution is an answer, not an error");
                }
                Ending::Limit { .. } => {
                    let err = result.unwrap_err();
                    assert_eq!(err.details()["rolled_back"], true);
                    assert_eq!(err.code(), "EXECUTION_TIMEOUT");
                }
                _ => assert_eq!(error["code"], "RUNTIME_CRASHED"),
            }
        }
    }

    #[test]
    fn a_cancel_of_an_execution_that_ended_is_a_conflict() {
        let mut executions = MockExecutionStore::new();
        executions.expect_get().returning(|id| Ok(Some(crate::services::fixtures::an_execution(id, SessionId::new()))));
        let mut runtime = MockJsRuntime::new();
        runtime.expect_cancel().never();
        let svc = service(MockSessionStore::new(), executions, runtime);
        let err = block_on(svc.cancel(ExecutionId::new())).unwrap_err();
        assert_eq!(err.code(), "EXECUTION_NOT_RUNNING");
        assert_eq!(err.details()["status"], "ok");
    }

    #[test]
    fn a_follower_of_a_finished_execution_gets_its_stored_events_then_its_end() {
        let mut executions = MockExecutionStore::new();
        let id = ExecutionId::new();
        let execution = crate::services::fixtures::an_execution(id, SessionId::new());
        let stored = execution.clone();
        executions.expect_get().returning(move |_| Ok(Some(stored.clone())));
        executions.expect_events_after().withf(|_, after| *after == 1).returning(move |id, _| {
            let at = fixed_clock().now();
            Ok(vec![Event { execution_id: id, seq: 2, ts: at, payload: EventPayload::Stdout { text: "x".into() } }])
        });
        let svc = service(MockSessionStore::new(), executions, MockJsRuntime::new());
        let items: Vec<_> = block_on(async { svc.follow(id, Some(1)).await.unwrap().collect::<Vec<_>>().await });
        assert!(matches!(&items[0], Ok(Followed::Event(e)) if e.seq == 2));
        assert_eq!(items[1].as_ref().unwrap(), &Followed::End(execution));
        assert_eq!(items.len(), 2);
    }
}
