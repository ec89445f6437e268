//! Black-box tests of the whole product: the real `vm-system` binary, a real
//! SQLite file, real HTTP over TCP. `VM_TEST_LOG=1` shows the daemon's logs.

mod daemon;
mod harness;
mod walkthrough;
