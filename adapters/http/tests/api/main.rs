//! HTTP contract tests on the real stack: a real SQLite file (or, with
//! `VM_TEST_BACKEND=postgres`, a real PostgreSQL database), the real boa
//! runtime, the real router through `poem::test::TestClient`. No mocks.

mod auth;
mod errors;
mod executions;
mod harness;
mod limits;
mod live;
mod openapi;
mod ops;
mod paths;
mod reconcile;
mod sessions;
mod templates;
