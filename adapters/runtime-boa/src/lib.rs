//! The `boa_engine` implementation of vm-system's `JsRuntime` port. It knows
//! boa and the port, nothing of stores, HTTP or other adapters.
//!
//! Layout:
//! - [`runtime`]: the host half. [`BoaRuntime`] keeps each session's engine on
//!   its own thread and talks to it over channels, so async callers never block.
//! - [`engine`]: the worker half. [`SessionEngine`] owns one `boa_engine::Context`:
//!   limits, console capture, libraries, `require`, and running jobs.
//! - [`console`]: the console `Logger` that turns output into events and
//!   enforces the event and output limits.
//! - [`preview`]: REPL-like previews, JSON forms and exception messages of values.
//! - [`library_cache`]: where library files live on disk; [`FsLibraryCache`].

pub mod console;
pub mod engine;
pub mod library_cache;
pub mod preview;
pub mod runtime;

pub use engine::SessionEngine;
pub use library_cache::{library_file, FsLibraryCache};
pub use runtime::BoaRuntime;
