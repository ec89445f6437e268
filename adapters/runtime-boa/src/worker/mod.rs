//! The worker half: code that runs in worker processes, never in the daemon.
//! Any binary linking this crate becomes a worker when started as
//! `<exe> __vm-worker zygote`, before its own `main` runs.
//!
//! Layout:
//! - [`zygote`]: single-threaded process that prepares an engine with a
//!   library set once, then forks one keeper per session family.
//! - [`session`]: a session's boot (in its keeper) and its live worker's
//!   job loop; [`keeper`]: the process that boots a session, forks its
//!   live worker and reaps every process of the family; [`checkpoint`]:
//!   the forked copies that take over when a live worker is killed.
//! - [`engine`]: the `boa_engine::Context` of a session; [`console`] and
//!   [`preview`] turn its output and values into events; [`modules`] are the
//!   native modules behind `require`.
//! - [`limits`]: OS limits and signals; [`alloc`]: the memory limit.

pub mod alloc;
pub mod checkpoint;
pub mod console;
pub mod engine;
pub mod event_loop;
pub mod fetch;
pub mod keeper;
pub mod limits;
pub mod loader;
pub mod modules;
pub mod positions;
pub mod preview;
pub mod repl_await;
pub mod session;
pub mod web;
pub mod zygote;

use std::ffi::{c_char, c_int, CStr};
use std::panic::{self, AssertUnwindSafe};

use crate::protocol::WORKER_ARG;

/// Runs before `main` in every binary that links this crate (glibc calls
/// `.init_array` entries with `argc`, `argv`, `envp`). When the process was
/// started as a worker it never returns: the worker runs and the process
/// exits. Before `main` no thread exists yet, which a forking zygote needs,
/// and test binaries of any crate can serve as workers of `current_exe()`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[link_section = ".init_array"]
pub static ENTRY: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = entry;

extern "C" fn entry(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    if argc < 3 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes the process's own argv: `argc` valid C strings.
    let arg = |i: usize| unsafe { CStr::from_ptr(*argv.add(i)) };
    if arg(1).to_bytes() != WORKER_ARG.as_bytes() {
        return;
    }
    let role = arg(2).to_bytes().to_vec();
    let code = panic::catch_unwind(AssertUnwindSafe(|| match role.as_slice() {
        b"zygote" => zygote::main(),
        other => {
            eprintln!("vm-system worker: unknown role {:?}", String::from_utf8_lossy(other));
            2
        }
    }))
    .unwrap_or(70);
    std::process::exit(code);
}

/// Makes sure the entry is linked into the binary: called wherever the host
/// half is built, since only referenced objects of a library are linked.
#[inline(never)]
pub fn keep_entry() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    std::hint::black_box(&ENTRY);
}
