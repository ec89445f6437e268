//! One `#[OpenApi]` struct per resource. Handlers parse, call a service,
//! convert; they hold no business rule.

pub mod catalog;
pub mod executions;
pub mod ops;
pub mod sessions;
pub mod templates;
pub mod tokens;

use vm_domain::ids::{ExecutionId, SessionId, TemplateId};

use crate::error::ApiResult;

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

pub(crate) fn template_id(raw: &str) -> ApiResult<TemplateId> {
    Ok(TemplateId::parse(raw, "id")?)
}

pub(crate) fn session_id(raw: &str) -> ApiResult<SessionId> {
    Ok(SessionId::parse(raw, "session_id")?)
}

pub(crate) fn execution_id(raw: &str) -> ApiResult<ExecutionId> {
    Ok(ExecutionId::parse(raw, "id")?)
}
