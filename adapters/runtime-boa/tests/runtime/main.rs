//! The boa runtime through its port, with real worker processes: this test
//! binary is itself the worker program (see `vm_runtime_boa::worker`).
//! JavaScript cases are tables of (source, expected).

mod engine;
mod harness;
mod limits;
mod modules;
mod process;
