//! The services: every business rule of templates, sessions and executions.
//! They hold ports as `Arc<dyn …>`; `app` injects the adapters.

mod executions;
mod live;
mod nodes;
mod sessions;
mod templates;
mod tokens;

pub use executions::{Completion, DrainReport, Executed, ExecutionService, Following, RunFileRequest, Started};
pub use live::Followed;
pub use nodes::{Heartbeat, NodeService, Route};
pub use sessions::{ReconcileReport, SessionService};
pub use templates::{LibraryEntry, TemplateService};
pub use tokens::{TokenService, MIN_SUPPLIED_SECRET_LEN, TOUCH_INTERVAL};

#[cfg(test)]
pub(crate) mod fixtures;
