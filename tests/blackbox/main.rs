//! Black-box tests of the whole product: the real `vm-system` binary, a real
//! SQLite file, real HTTP over TCP. `VM_TEST_LOG=1` shows the daemon's logs.

mod auth;
mod cli;
mod connections;
mod daemon;
mod fetch;
mod getting_started;
mod harness;
mod javascript;
mod libraries;
mod live;
mod metrics;
mod nodes;
mod operations;
mod outages;
mod postgres;
mod repl;
mod runtime;
mod walkthrough;
