//! Store ports. Every method is one atomic unit: an implementation that
//! writes several rows does so in one transaction.

use async_trait::async_trait;

use crate::catalog::{LibraryRef, ModuleName};
use crate::event::Event;
use crate::execution::Execution;
use crate::ids::{ExecutionId, NodeId, SessionId, TemplateId, TokenId};
use crate::node::Node;
use crate::session::{Session, SessionStatus};
use crate::template::{Capability, Settings, StartupFile, Template};
use crate::token::{SecretDigest, Token};
use crate::{DomainError, Timestamp};

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Stores a new template with its settings (its module and library
    /// lists are stored too, in order).
    async fn insert(&self, template: &Template, settings: &Settings) -> Result<(), DomainError>;
    /// The template with `exposed_modules` and `libraries` filled in.
    async fn get(&self, id: TemplateId) -> Result<Option<Template>, DomainError>;
    /// All templates, newest first.
    async fn list(&self) -> Result<Vec<Template>, DomainError>;
    /// Deletes the template and everything hanging off it. `false` if absent.
    async fn delete(&self, id: TemplateId) -> Result<bool, DomainError>;
    async fn settings(&self, id: TemplateId) -> Result<Option<Settings>, DomainError>;
    /// Replaces the settings and bumps `updated_at`. `false` if absent.
    async fn replace_settings(&self, id: TemplateId, settings: &Settings, at: Timestamp) -> Result<bool, DomainError>;
    async fn add_capability(&self, capability: &Capability) -> Result<(), DomainError>;
    /// Capabilities in the order they were added.
    async fn capabilities(&self, id: TemplateId) -> Result<Vec<Capability>, DomainError>;
    async fn add_startup_file(&self, file: &StartupFile) -> Result<(), DomainError>;
    /// Startup files by `order_index`, then by the order they were added.
    async fn startup_files(&self, id: TemplateId) -> Result<Vec<StartupFile>, DomainError>;
    /// Adds a module; adding one already present changes nothing.
    async fn add_module(&self, id: TemplateId, name: &ModuleName, at: Timestamp) -> Result<(), DomainError>;
    /// `false` when the module was not configured.
    async fn remove_module(&self, id: TemplateId, name: &ModuleName, at: Timestamp) -> Result<bool, DomainError>;
    /// Appends a library to the load order; one already present stays where it is.
    async fn add_library(&self, id: TemplateId, library: &LibraryRef, at: Timestamp) -> Result<(), DomainError>;
    /// `false` when the library was not configured.
    async fn remove_library(&self, id: TemplateId, library: &LibraryRef, at: Timestamp) -> Result<bool, DomainError>;
}

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert(&self, session: &Session) -> Result<(), DomainError>;
    async fn get(&self, id: SessionId) -> Result<Option<Session>, DomainError>;
    /// Sessions newest first, optionally only those in `status`.
    async fn list(&self, status: Option<SessionStatus>) -> Result<Vec<Session>, DomainError>;
    /// Writes `status`, `closed_at` and `last_error` of an existing session.
    async fn update_state(&self, session: &Session) -> Result<(), DomainError>;
    /// How many sessions there are in each status (statuses without one
    /// may be left out).
    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, u64)>, DomainError>;
    /// Sessions that claim to be live (`starting`, `ready`) on `node`, or,
    /// with `None`, on no node that is live: rows without a node, or whose
    /// node is lost or unknown.
    async fn live_on(&self, node: Option<NodeId>) -> Result<Vec<Session>, DomainError>;
}

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Records an execution as it starts (normally `running`, no events yet).
    async fn insert(&self, execution: &Execution) -> Result<(), DomainError>;
    /// Appends events of a running execution as they happen (a batch at a
    /// time, in `seq` order, after those already stored); the execution row
    /// is left as it is.
    async fn append_events(&self, id: ExecutionId, events: &[Event]) -> Result<(), DomainError>;
    /// Writes the execution's final state and appends its last events (those
    /// not appended yet), in one transaction: either both are stored or
    /// neither is.
    async fn finish(&self, execution: &Execution, events: &[Event]) -> Result<(), DomainError>;
    async fn get(&self, id: ExecutionId) -> Result<Option<Execution>, DomainError>;
    /// Newest first, at most `limit`, optionally of one session.
    async fn list(&self, session_id: Option<SessionId>, limit: u32) -> Result<Vec<Execution>, DomainError>;
    /// Events with `seq > after_seq`, in `seq` order.
    async fn events_after(&self, id: ExecutionId, after_seq: i64) -> Result<Vec<Event>, DomainError>;
    /// Executions still marked `running`, oldest first.
    async fn running(&self) -> Result<Vec<Execution>, DomainError>;
    /// Keeps a finished execution whose [`ExecutionStore::finish`] failed
    /// with a store outage in memory and writes it in the background,
    /// retrying until it is stored. Returns at once.
    fn finish_later(&self, execution: Execution, events: Vec<Event>);
}

/// The nodes serving this database: their rows, leases and shared secret.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Stores a node as it joins (`active_sessions` is not stored: it is
    /// counted from the sessions when read).
    async fn insert(&self, node: &Node) -> Result<(), DomainError>;
    /// Moves a live node's heartbeat to `at` and its lease to `expires`;
    /// `false` when the node is no longer live (another node found it lost).
    async fn renew(&self, id: NodeId, at: Timestamp, expires: Timestamp) -> Result<bool, DomainError>;
    /// The node with its live sessions counted.
    async fn get(&self, id: NodeId) -> Result<Option<Node>, DomainError>;
    /// Every node with its live sessions counted: live ones first, then
    /// newest first.
    async fn list(&self) -> Result<Vec<Node>, DomainError>;
    /// Marks lost, at `now`, one live node other than `except` whose lease
    /// expired before `now` (any live node but `except` when `all_others`)
    /// and returns it, lost; `None` when there is none. Each node is
    /// returned to one caller only, however many ask at once.
    async fn claim_lost(&self, except: NodeId, now: Timestamp, all_others: bool) -> Result<Option<Node>, DomainError>;
    /// Marks a live node lost at `at` (as it stops).
    async fn mark_lost(&self, id: NodeId, at: Timestamp) -> Result<(), DomainError>;
    /// The secret the nodes show each other: the one stored, or `candidate`
    /// stored now when there is none yet.
    async fn shared_secret(&self, candidate: &str) -> Result<String, DomainError>;
}

/// Whether the store answers, for the readiness probe.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// Runs one bounded query; a store outage when it does not answer in time.
    async fn check(&self) -> Result<(), DomainError>;
    /// Finished executions kept in memory until the store takes them.
    fn pending_writes(&self) -> usize;
    /// The store's connections right now, for metrics.
    fn connections(&self) -> Connections;
}

/// A store's connections: those running a statement, those open and idle,
/// and how many it may open at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    pub in_use: u64,
    pub idle: u64,
    pub max: u64,
}

#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token under the digest of its secret (digests are unique).
    async fn insert(&self, token: &Token, digest: &SecretDigest) -> Result<(), DomainError>;
    /// The token whose secret has this digest, revoked and expired ones included.
    async fn by_digest(&self, digest: &SecretDigest) -> Result<Option<Token>, DomainError>;
    async fn get(&self, id: TokenId) -> Result<Option<Token>, DomainError>;
    /// All tokens, revoked ones included, newest first.
    async fn list(&self) -> Result<Vec<Token>, DomainError>;
    /// Sets `revoked_at` unless it is set already. `false` if absent.
    async fn revoke(&self, id: TokenId, at: Timestamp) -> Result<bool, DomainError>;
    /// Sets `last_used_at`.
    async fn touch(&self, id: TokenId, at: Timestamp) -> Result<(), DomainError>;
}
