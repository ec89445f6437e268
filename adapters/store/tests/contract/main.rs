//! The store contract: every check is written once, against the ports, and
//! expanded by [`contract!`] into one test per backend, each on a fresh
//! database. Backend-specific checks live in `sqlite` and `postgres`.

use harness::Harness;

/// Runs `$check`, an `async |h: &Harness| { … }` closure, on every backend:
/// a `sqlite` test and a `postgres` test. The latter returns early, after
/// `vm_testpg`'s loud warning, only where PostgreSQL is not installed and
/// `CI` is not `true`.
macro_rules! contract {
    ($name:ident, $check:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                crate::run($check, crate::harness::fresh_sqlite().await).await
            }

            #[tokio::test]
            async fn postgres() {
                let Some(harness) = crate::harness::fresh_postgres().await else { return };
                crate::run($check, harness).await
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
mod full_disk;
mod nodes;
mod pg_outage;
mod postgres;
mod reconcile;
mod sessions;
mod sqlite;
mod templates;
mod tokens;
