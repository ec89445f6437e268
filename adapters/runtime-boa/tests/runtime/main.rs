//! The boa runtime through its port, with real worker processes: this test
//! binary is itself the worker program (see `vm_runtime_boa::worker`).
//! JavaScript cases are tables of (source, expected).

mod checkpoints;
mod confinement;
mod engine;
mod esm;
mod event_loop;
mod exec_policy;
mod fetch;
mod harness;
mod imports;
mod limits;
mod modules;
mod process;
