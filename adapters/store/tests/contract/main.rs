//! The store contract: every check is written once, against the ports, and
//! expanded by [`contract!`] into one test per backend, each on a fresh
//! database. Backend-specific checks live in `sqlite`.

use harness::Harness;

/// Runs `$check`, an `async |h: &Harness| { … }` closure, on every backend.
/// A PostgreSQL arm goes beside `sqlite` once that backend exists.
macro_rules! contract {
    ($name:ident, $check:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                crate::run($check, crate::harness::fresh_sqlite().await).await
            }
        }
    };
}

/// Lends the harness to the check, so the database outlives the check.
async fn run(check: impl AsyncFnOnce(&Harness), harness: Harness) {
    check(&harness).await
}

mod harness;
mod seed;

mod executions;
mod sessions;
mod sqlite;
mod templates;
