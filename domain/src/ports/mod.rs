//! Ports: what the services need from the outside world, in domain words.
//! Adapters implement them; `app` wires them in.

pub mod clock;
pub mod runtime;
pub mod store;

pub use clock::{now_in_microseconds, Clock, Sleep};
pub use runtime::{
    Ending, Job, JsRuntime, LibraryCache, LimitHit, LiveEvents, Outcome, ProcessStats, RuntimeError, RuntimeSpec,
    StateAfter,
};
pub use store::{Connections, ExecutionStore, NodeStore, SessionStore, StoreHealth, TemplateStore, TokenStore};
