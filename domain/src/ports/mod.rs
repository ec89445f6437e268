//! Ports: what the services need from the outside world, in domain words.
//! Adapters implement them; `app` wires them in.

pub mod clock;
pub mod runtime;
pub mod store;

pub use clock::{Clock, SystemClock};
pub use runtime::{Ending, Job, JsRuntime, LibraryCache, LimitHit, Outcome, RuntimeError, RuntimeSpec};
pub use store::{ExecutionStore, SessionStore, StoreHealth, TemplateStore, TokenStore};
