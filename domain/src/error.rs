//! [`DomainError`]: every failure a caller can see, one variant per row of
//! SPEC §5's error table. Each variant has a stable [`DomainError::code`] and
//! carries what `details` needs. Status codes are not known here: the HTTP
//! adapter maps them, in one place.

use serde_json::{json, Value};

use crate::ids::{ExecutionId, NodeId, SessionId, TemplateId};
use crate::ports::StateAfter;

/// Boxed source of an unexpected failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A field is missing or invalid (400).
    #[error("{message}")]
    Validation { field: String, message: String },

    /// A field has the right type and form but breaks a rule the API document cannot state,
    /// e.g. an expiry in the past (422, `INVALID_VALUE`).
    #[error("{message}")]
    InvalidValue { field: String, message: String },

    /// The request body could not be decoded at all (400): malformed JSON,
    /// an unknown field, a wrong content type.
    #[error("{message}")]
    InvalidRequest { message: String },

    #[error("template {id} not found")]
    TemplateNotFound { id: String },

    #[error("token {id} not found")]
    TokenNotFound { id: String },

    #[error("session {id} not found")]
    SessionNotFound { id: String },

    #[error("execution {id} not found")]
    ExecutionNotFound { id: String },

    /// A script path that is safe but names no file.
    #[error("file {path:?} not found in the session worktree")]
    FileNotFound { path: String },

    #[error("session {session_id} is {status}, not ready")]
    SessionNotReady { session_id: SessionId, status: String },

    #[error("session {session_id} is already running execution {running}; one execution at a time")]
    SessionBusy { session_id: SessionId, running: String },

    /// Absolute path, `..` escape, symlink escape, or a bad worktree.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// `state`: what became of the session (see [`StateAfter`]).
    #[error("execution stopped: {limit} limit of {value} reached{}", state_suffix(*state))]
    OutputLimitExceeded { execution_id: ExecutionId, limit: String, value: u64, state: StateAfter },

    #[error("execution stopped after the {limit} limit of {limit_ms} ms{}", state_suffix(*state))]
    ExecutionTimeout { execution_id: ExecutionId, limit: String, limit_ms: u64, state: StateAfter },

    #[error("execution stopped at the memory limit of {limit_mb} MB{}", state_suffix(*state))]
    MemoryLimitExceeded { execution_id: ExecutionId, limit_mb: u64, state: StateAfter },

    /// Only a running execution can be cancelled (409).
    #[error("execution {execution_id} is {status}, not running; only a running execution can be cancelled")]
    ExecutionNotRunning { execution_id: ExecutionId, status: String },

    #[error("startup mode {mode:?} is not supported; the only mode is \"eval\"")]
    StartupModeUnsupported { mode: String },

    #[error("module {name:?} cannot be configured: {reason}")]
    ModuleNotAllowed { name: String, reason: String, allowed: Vec<String> },

    #[error("library {name:?} is not in the catalog")]
    LibraryNotAvailable { name: String, available: Vec<String> },

    #[error("engine {engine:?} is not supported; supported engines: {}", supported.join(", "))]
    EngineUnsupported { engine: String, supported: Vec<String> },

    #[error("session {session_id} failed to start: {reason}")]
    StartupFailed { session_id: SessionId, template_id: TemplateId, reason: String },

    /// No token, or one that is unknown, revoked or expired (401).
    #[error("{message}")]
    Unauthenticated { message: String },

    /// The token lacks the scope, or the request's `Origin` is refused (403).
    #[error("{message}")]
    Forbidden { message: String, required_scope: Option<String> },

    /// The `Host` header names no address this daemon serves (421).
    #[error("host {host:?} is not served here; allowed hosts: {}", allowed.join(", "))]
    MisdirectedRequest { host: String, allowed: Vec<String> },

    /// The store cannot be reached or is overloaded: PostgreSQL down, no
    /// pooled connection within the acquire timeout, SQLite busy past its
    /// timeout (503, with `Retry-After`). Transient: the same call may
    /// succeed later. `execution_id` is set when the execution ran and its
    /// final write is being retried in the background.
    #[error("the store is unavailable: {reason}{}", pending_suffix(execution_id))]
    StoreUnavailable { reason: String, execution_id: Option<ExecutionId> },

    /// The daemon is draining before it stops: it takes no new execution,
    /// session or fork (503, with `Retry-After`); running executions finish.
    #[error("the daemon is shutting down and takes no new work; retry on another instance or after its restart")]
    ShuttingDown,

    /// The JavaScript runtime cannot start a session now: its prepared
    /// worker is gone and could not be started again in time (503, with
    /// `Retry-After`; `GET /ready` only).
    #[error("the JavaScript runtime cannot start sessions: {reason}")]
    RuntimeUnavailable { reason: String },

    /// The node that runs the session cannot be reached, and its lease has
    /// not expired yet (503, with `Retry-After`): either it comes back or
    /// another node fails its sessions over once the lease runs out.
    #[error("node {node_id} ({url}) cannot be reached: {reason}")]
    NodeUnavailable { node_id: NodeId, url: String, session_id: Option<SessionId>, reason: String },

    /// No live node has room for another session (with `placement=local`:
    /// this node has none) (503, with `Retry-After`).
    /// `scope` says where room was looked for, e.g. "on any live node".
    #[error("no room for another session {scope}; close sessions or add nodes")]
    NoCapacity { scope: String, max_sessions: u32 },

    /// The disk holding the store is full (507). `execution_id` as for
    /// `StoreUnavailable`.
    #[error("the store's disk is full: {reason}{}", pending_suffix(execution_id))]
    StorageFull { reason: String, execution_id: Option<ExecutionId> },

    /// Anything unexpected. Its chain is logged; clients get a fixed message.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// How an error says what a stopped execution left of the session.
pub fn state_suffix(state: StateAfter) -> &'static str {
    match state {
        StateAfter::Kept => "",
        StateAfter::RolledBack => "; the session was rolled back to its state before this execution",
        StateAfter::Lost => "; the runtime was stopped and the session's state is gone (the session is crashed)",
    }
}

/// Adds `runtime_lost` and `rolled_back` to a stopped execution's details.
pub fn with_state(details: &mut Value, state: StateAfter) {
    if let Value::Object(map) = details {
        map.insert("runtime_lost".into(), state.is_lost().into());
        map.insert("rolled_back".into(), state.is_rolled_back().into());
    }
}

/// How a store error says that the execution ran and is still being stored.
fn pending_suffix(execution_id: &Option<ExecutionId>) -> String {
    match execution_id {
        Some(id) => format!("; execution {id} ran and its result is kept in memory and stored once the store is back"),
        None => String::new(),
    }
}

impl DomainError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation { field: field.into(), message: message.into() }
    }

    pub fn invalid_path(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidPath { path: path.into(), reason: reason.into() }
    }

    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::Internal(source.into())
    }

    /// Whether the store failed in a way that may pass: unavailable or full.
    pub fn is_store_outage(&self) -> bool {
        matches!(self, Self::StoreUnavailable { .. } | Self::StorageFull { .. })
    }

    /// A store outage that happened after `execution` ran: its final write
    /// is pending. Other errors are returned unchanged.
    pub fn with_pending_execution(self, execution: ExecutionId) -> Self {
        match self {
            Self::StoreUnavailable { reason, .. } => Self::StoreUnavailable { reason, execution_id: Some(execution) },
            Self::StorageFull { reason, .. } => Self::StorageFull { reason, execution_id: Some(execution) },
            other => other,
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "VALIDATION_ERROR",
            Self::InvalidValue { .. } => "INVALID_VALUE",
            Self::InvalidRequest { .. } => "INVALID_REQUEST",
            Self::TemplateNotFound { .. } => "TEMPLATE_NOT_FOUND",
            Self::TokenNotFound { .. } => "TOKEN_NOT_FOUND",
            Self::SessionNotFound { .. } => "SESSION_NOT_FOUND",
            Self::ExecutionNotFound { .. } => "EXECUTION_NOT_FOUND",
            Self::FileNotFound { .. } => "FILE_NOT_FOUND",
            Self::SessionNotReady { .. } => "SESSION_NOT_READY",
            Self::SessionBusy { .. } => "SESSION_BUSY",
            Self::InvalidPath { .. } => "INVALID_PATH",
            Self::OutputLimitExceeded { .. } => "OUTPUT_LIMIT_EXCEEDED",
            Self::ExecutionTimeout { .. } => "EXECUTION_TIMEOUT",
            Self::MemoryLimitExceeded { .. } => "MEMORY_LIMIT_EXCEEDED",
            Self::ExecutionNotRunning { .. } => "EXECUTION_NOT_RUNNING",
            Self::StartupModeUnsupported { .. } => "STARTUP_MODE_UNSUPPORTED",
            Self::ModuleNotAllowed { .. } => "MODULE_NOT_ALLOWED",
            Self::LibraryNotAvailable { .. } => "LIBRARY_NOT_AVAILABLE",
            Self::EngineUnsupported { .. } => "ENGINE_UNSUPPORTED",
            Self::StartupFailed { .. } => "STARTUP_FAILED",
            Self::Unauthenticated { .. } => "UNAUTHENTICATED",
            Self::Forbidden { .. } => "FORBIDDEN",
            Self::MisdirectedRequest { .. } => "MISDIRECTED_REQUEST",
            Self::StoreUnavailable { .. } => "STORE_UNAVAILABLE",
            Self::StorageFull { .. } => "STORAGE_FULL",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::RuntimeUnavailable { .. } => "RUNTIME_UNAVAILABLE",
            Self::NodeUnavailable { .. } => "NODE_UNAVAILABLE",
            Self::NoCapacity { .. } => "NO_CAPACITY",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Machine-readable context for the error envelope's `details`.
    pub fn details(&self) -> Value {
        match self {
            Self::Validation { field, .. } | Self::InvalidValue { field, .. } => json!({ "field": field }),
            Self::InvalidRequest { .. } | Self::Unauthenticated { .. } | Self::ShuttingDown | Self::Internal(_) => {
                json!({})
            }
            Self::RuntimeUnavailable { reason } => json!({ "reason": reason }),
            Self::NodeUnavailable { node_id, url, session_id, reason } => match session_id {
                Some(session_id) => {
                    json!({ "node_id": node_id, "url": url, "session_id": session_id, "reason": reason })
                }
                None => json!({ "node_id": node_id, "url": url, "reason": reason }),
            },
            Self::NoCapacity { max_sessions, .. } => json!({ "max_sessions": max_sessions }),
            Self::TokenNotFound { id } => json!({ "token_id": id }),
            Self::StoreUnavailable { reason, execution_id } | Self::StorageFull { reason, execution_id } => {
                match execution_id {
                    Some(id) => json!({ "reason": reason, "execution_id": id }),
                    None => json!({ "reason": reason }),
                }
            }
            Self::Forbidden { required_scope, .. } => match required_scope {
                Some(scope) => json!({ "required_scope": scope }),
                None => json!({}),
            },
            Self::MisdirectedRequest { host, allowed } => json!({ "host": host, "allowed_hosts": allowed }),
            Self::TemplateNotFound { id } => json!({ "template_id": id }),
            Self::SessionNotFound { id } => json!({ "session_id": id }),
            Self::ExecutionNotFound { id } => json!({ "execution_id": id }),
            Self::FileNotFound { path } => json!({ "path": path }),
            Self::SessionNotReady { session_id, status } => {
                json!({ "session_id": session_id, "status": status })
            }
            Self::SessionBusy { session_id, running } => {
                json!({ "session_id": session_id, "running_execution_id": running })
            }
            Self::InvalidPath { path, reason } => json!({ "path": path, "reason": reason }),
            Self::OutputLimitExceeded { execution_id, limit, value, state } => {
                let mut details = json!({ "execution_id": execution_id, "limit": limit, "value": value });
                with_state(&mut details, *state);
                details
            }
            Self::ExecutionTimeout { execution_id, limit, limit_ms, state } => {
                let mut details = json!({ "execution_id": execution_id, "limit": limit, "limit_ms": limit_ms });
                with_state(&mut details, *state);
                details
            }
            Self::MemoryLimitExceeded { execution_id, limit_mb, state } => {
                let mut details = json!({ "execution_id": execution_id, "limit": "mem_mb", "limit_mb": limit_mb });
                with_state(&mut details, *state);
                details
            }
            Self::ExecutionNotRunning { execution_id, status } => {
                json!({ "execution_id": execution_id, "status": status })
            }
            Self::StartupModeUnsupported { mode } => json!({ "mode": mode, "supported": ["eval"] }),
            Self::ModuleNotAllowed { name, allowed, .. } => {
                json!({ "name": name, "allowed": allowed })
            }
            Self::LibraryNotAvailable { name, available } => {
                json!({ "name": name, "available": available })
            }
            Self::EngineUnsupported { engine, supported } => {
                json!({ "engine": engine, "supported": supported })
            }
            Self::StartupFailed { session_id, template_id, reason } => {
                json!({ "session_id": session_id, "template_id": template_id, "reason": reason })
            }
        }
    }
}
