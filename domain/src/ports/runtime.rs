//! The JavaScript runtime port. It knows sessions and jobs, not engines: an
//! adapter may keep the engine on a thread or in a supervised worker process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::catalog::{LibraryRef, ModuleName};
use crate::event::EventPayload;
use crate::ids::SessionId;
use crate::paths::WorktreePath;
use crate::template::{Capability, Settings};

/// Everything a runtime needs to bring a session's engine up.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSpec {
    pub session_id: SessionId,
    pub worktree: WorktreePath,
    pub settings: Settings,
    pub modules: Vec<ModuleName>,
    /// Evaluated into the global scope in this order before anything else.
    pub libraries: Vec<LibraryRef>,
    pub capabilities: Vec<Capability>,
}

/// One unit of work in a session's global scope.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// A REPL snippet; its completion value is reported.
    Eval { source: String },
    /// A file already resolved inside the worktree. `args` and `env` become
    /// the globals `__ARGS__` and `__ENV__` while it runs.
    RunFile { path: PathBuf, args: Map<String, Value>, env: BTreeMap<String, String> },
}

/// A limit that stopped a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    WallTime { limit_ms: u64 },
    CpuTime { limit_ms: u64 },
    Memory { limit_mb: u64 },
    Events { max_events: u64 },
    Output { max_output_kb: u64 },
}

/// What became of the session's state when a job was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAfter {
    /// The engine was stopped from inside and lives on with what the job did.
    Kept,
    /// The engine was killed and the checkpoint taken before the job took
    /// over: the session lives on with its state from before the job.
    RolledBack,
    /// The engine was killed and nothing could take over: the session's
    /// runtime is gone.
    Lost,
}

impl StateAfter {
    pub fn is_lost(&self) -> bool {
        matches!(self, Self::Lost)
    }

    pub fn is_rolled_back(&self) -> bool {
        matches!(self, Self::RolledBack)
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// It completed; a `value` event is among the events.
    Completed,
    /// It threw; an `exception` event is among the events.
    Threw,
    /// A limit stopped it.
    Limit { hit: LimitHit, state: StateAfter },
    /// [`JsRuntime::cancel`] stopped it.
    Cancelled { state: StateAfter },
    /// The engine died under it (killed from outside, crashed).
    Crashed { reason: String, state: StateAfter },
}

/// A job's end. `events` are those the job produced that were not already
/// handed to its [`LiveEvents`], in order (never the input echo): a runtime
/// that streams everything leaves it empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub events: Vec<EventPayload>,
    pub ending: Ending,
}

/// Receives a running job's events as they happen, in order. Called on the
/// runtime's own tasks: it must return quickly and never block.
pub type LiveEvents = Arc<dyn Fn(EventPayload) + Send + Sync>;

/// What a runtime's processes cost right now, for metrics. A runtime that
/// keeps engines in the daemon's own process reports zeros.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// Live session engines running in processes of their own.
    pub workers: u64,
    /// Their resident memory, summed, in bytes.
    pub worker_rss_bytes: u64,
    /// The CPU time (user and system) they used so far, summed, in seconds.
    pub worker_cpu_seconds: f64,
    /// Processes kept ready ahead of sessions (e.g. engines with libraries
    /// already loaded, from which sessions start).
    pub zygotes: u64,
    /// Copies of sessions kept to take over if the live engine is killed.
    pub checkpoints: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No live runtime for this session (never started, closed or dead).
    #[error("no live runtime for this session: {0}")]
    Unavailable(String),
    /// The runtime could not be brought up; the reason is for the user.
    #[error("{0}")]
    StartFailed(String),
    #[error("runtime failure: {0}")]
    Internal(String),
}

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait JsRuntime: Send + Sync {
    /// The engine name templates use to choose this runtime (e.g. `boa`).
    fn engine(&self) -> &'static str;
    /// Brings up the session's engine: console capture, modules, libraries.
    async fn start(&self, spec: RuntimeSpec) -> Result<(), RuntimeError>;
    /// Runs one job, handing its events to `live` as they happen. Limits
    /// are enforced while it runs.
    async fn run(&self, session: SessionId, job: Job, live: LiveEvents) -> Result<Outcome, RuntimeError>;
    /// Stops the session's running job at once, whatever it is doing: its
    /// [`JsRuntime::run`] ends [`Ending::Cancelled`]. Returns whether a job
    /// was running.
    async fn cancel(&self, session: SessionId) -> bool;
    /// Starts session `to` as a copy of the live heap of idle session `from`
    /// (same template, same worktree); `to` is then a session of its own.
    async fn fork(&self, from: SessionId, to: SessionId) -> Result<(), RuntimeError>;
    /// Discards the session's engine; harmless when there is none.
    async fn close(&self, session: SessionId);
    /// Sessions whose engine is alive in memory.
    fn live_sessions(&self) -> Vec<SessionId>;
    /// Whether a session could start now, for the readiness probe: cheap,
    /// and answered within about a second (an adapter that prepares engines
    /// ahead checks, or restarts, what it prepared). The error says why not.
    ///
    /// The default is always ready: for runtimes with nothing to prepare.
    async fn health(&self) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// What the runtime's processes cost right now (read at each call).
    fn process_stats(&self) -> ProcessStats {
        ProcessStats::default()
    }
    /// Waits for the next session whose engine died on its own (killed from
    /// outside, crashed) while no job ran, and says what happened. The
    /// adapter notices such a death at once and queues it; the session is
    /// then forgotten, as if closed. Each loss is reported once, to this
    /// call or to [`JsRuntime::take_lost`], whichever asks first. A death
    /// while a job runs is that job's [`Ending::Crashed`], never a loss.
    ///
    /// The default never returns: for runtimes whose engines cannot die on
    /// their own.
    async fn next_lost(&self) -> (SessionId, String) {
        std::future::pending().await
    }
    /// The losses [`JsRuntime::next_lost`] would report that are already
    /// queued, without waiting; each is reported once.
    fn take_lost(&self) -> Vec<(SessionId, String)>;
}

/// Where third-party libraries are cached on this machine.
#[cfg_attr(test, mockall::automock)]
pub trait LibraryCache: Send + Sync {
    /// Whether the library's file is present in the cache.
    fn is_cached(&self, library: &LibraryRef) -> bool;
}
