//! HTTP contract tests on the real stack: a real SQLite file, the real boa
//! runtime, the real router through `poem::test::TestClient`. No mocks.

mod errors;
mod executions;
mod harness;
mod openapi;
mod paths;
mod reconcile;
mod sessions;
mod templates;
