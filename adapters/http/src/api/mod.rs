//! One `#[OpenApi]` struct per resource. Handlers parse, call a service,
//! convert; they hold no business rule.

pub mod catalog;
pub mod executions;
pub mod ops;
pub mod sessions;
pub mod system;
pub mod templates;
pub mod tokens;

use vm_domain::ids::{ExecutionId, SessionId, TemplateId};

use uuid::Uuid;

#[derive(poem_openapi::Tags)]
pub enum Tag {
    /// Runtime profiles and everything configured on them.
    Templates,
    /// Live runtimes bound to a worktree.
    Sessions,
    /// REPL snippets, file runs and their events.
    Executions,
    /// What templates can configure.
    Catalog,
    /// Health and what is alive in memory.
    Ops,
    /// API tokens and their scopes.
    Tokens,
}

pub(crate) fn template_id(id: &Uuid) -> TemplateId {
    TemplateId::from(*id)
}

pub(crate) fn session_id(id: &Uuid) -> SessionId {
    SessionId::from(*id)
}

pub(crate) fn execution_id(id: &Uuid) -> ExecutionId {
    ExecutionId::from(*id)
}
