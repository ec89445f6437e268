//! The `boa_engine` implementation of vm-system's `JsRuntime` port. It knows
//! boa, processes and the port, nothing of stores, HTTP or other adapters.
//!
//! Layout:
//! - [`runtime`]: the host half's entry. [`BoaRuntime`] runs each session in
//!   its own worker process, forked from a [`zygotes`] process that has
//!   already evaluated the session's libraries.
//! - [`supervisor`]: one session seen from the daemon: deadlines, CPU
//!   sampling, cancel, the kill, what a worker's death means, and the
//!   checkpoint that takes over after it.
//! - [`family`]: a session and the sessions forked from it, seen from the
//!   daemon: their keeper process and the ends it reports.
//! - [`protocol`]: the only thing both halves share: framed messages.
//! - [`net`]: `fetch` as the daemon performs it for sessions: the policy
//!   (allow-list, address classes, sizes) and the HTTP client.
//! - [`worker`]: the worker half: the engine, console capture, previews,
//!   native modules, OS limits and the counting allocator (the process's
//!   `#[global_allocator]`).
//! - [`sandbox`]: the kernel's confinement of a session's processes.
//! - [`error`]: the adapter's typed errors.
//! - [`proc_stat`]: CPU time and resident memory of a process, from `/proc`.
//! - [`library_cache`]: where library files live on disk; [`FsLibraryCache`].

pub mod error;
pub mod family;
pub mod library_cache;
pub mod net;
pub mod proc_stat;
pub mod protocol;
pub mod runtime;
pub mod sandbox;
pub mod supervisor;
pub mod worker;
pub mod zygotes;

pub use library_cache::{library_file, FsLibraryCache};
pub use runtime::BoaRuntime;
