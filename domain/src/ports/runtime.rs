//! The JavaScript runtime port. It knows sessions and jobs, not engines: an
//! adapter may keep the engine on a thread or in a supervised worker process.

use std::collections::BTreeMap;
use std::path::PathBuf;

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

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// It completed; a `value` event is among the events.
    Completed,
    /// It threw; an `exception` event is among the events.
    Threw,
    /// A limit stopped it. `runtime_lost` says whether the engine had to be
    /// killed, taking the session's state with it.
    Limit { hit: LimitHit, runtime_lost: bool },
    /// The engine died under it (killed from outside, crashed).
    Crashed { reason: String },
}

/// The events a job produced, in order (without the input echo), and its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub events: Vec<EventPayload>,
    pub ending: Ending,
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
    /// Runs one job. Limits are enforced while it runs.
    async fn run(&self, session: SessionId, job: Job) -> Result<Outcome, RuntimeError>;
    /// Discards the session's engine; harmless when there is none.
    async fn close(&self, session: SessionId);
    /// Sessions whose engine is alive in memory.
    fn live_sessions(&self) -> Vec<SessionId>;
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
