//! The runtime adapter's errors, typed: [`WorkerError`] for what goes wrong
//! starting or reaching worker processes (the daemon's side), [`StartError`]
//! for what stops a worker from becoming a session's (the worker's side).
//! Their text is for the user; they become the port's `RuntimeError` at the
//! adapter's edge, and a worker's [`StartError`] crosses the protocol as its
//! message.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use vm_domain::ports::RuntimeError;

use crate::sandbox::SandboxError;

/// The daemon could not start, reach or fork a worker process.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot make a socket or pipe for a worker process: {0}")]
    Channel(#[source] io::Error),
    #[error("cannot start a worker process ({program}): {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot reach the worker process: {0}")]
    Unreachable(#[source] io::Error),
    #[error("the worker process ended while {0}")]
    Ended(String),
    #[error("the worker process did not {what} within {within:?}")]
    TimedOut { what: &'static str, within: Duration },
    #[error("the zygote process is gone")]
    ZygoteGone,
    #[error("the worker process broke the protocol ({0})")]
    Protocol(&'static str),
    /// What the worker or zygote itself said went wrong.
    #[error("{0}")]
    Refused(String),
}

impl From<WorkerError> for RuntimeError {
    fn from(err: WorkerError) -> Self {
        RuntimeError::StartFailed(err.to_string())
    }
}

/// Why a library set could not be prepared in a zygote.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{what}: {reason}")]
    Engine { what: &'static str, reason: String },
    #[error("library {name} is not in the cache at {}; run `vm-system libs download`", path.display())]
    LibraryMissing { name: String, path: PathBuf },
    #[error("cannot read library {name} at {}: {source}", path.display())]
    LibraryUnreadable {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("library {name} ({}) {why}; run `vm-system libs download` to fetch it again", path.display())]
    LibraryBroken { name: String, path: PathBuf, why: String },
}

/// Why a forked worker could not become a session's.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the session's sandbox could not be set up: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("cannot open the worktree {}: {source}", path.display())]
    Worktree {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {action} the {what} limit: {source}")]
    Limit {
        action: &'static str,
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("mem_mb is {mem_mb} but the engine and its libraries already use {used_mb} MB; raise limits.mem_mb")]
    MemoryTooSmall { mem_mb: u64, used_mb: usize },
    #[error("cannot share the worker's channel: {0}")]
    Channel(#[source] io::Error),
    /// `fetch` or its classes could not be defined: a library took their
    /// names for good (a non-writable, non-configurable global).
    #[error(
        "fetch could not be installed in the session: {0} (a library of the template may have defined `fetch`, \
         `Request`, `Response` or `Headers` so that they cannot be replaced)"
    )]
    Fetch(String),
}
