//! A PostgreSQL server that stops and comes back: every call fails with
//! `STORE_UNAVAILABLE` within the pool's 2 s acquire timeout while it is
//! down, and the same open store works again once it is up, writing what
//! it kept in memory meanwhile.

use std::time::{Duration, Instant};

use vm_domain::execution::ExecutionStatus;
use vm_domain::ids::TemplateId;
use vm_domain::ports::{ExecutionStore, SessionStore, StoreHealth};
use vm_domain::DomainError;
use vm_store::{PostgresStore, PostgresUrl};

use crate::seed::{at, events, finished, running, session};

/// The acquire timeout (2 s by default) plus a margin for a loaded machine.
const FAILURE_LATENCY: Duration = Duration::from_millis(2_500);

/// Runs `call`, which must fail with `STORE_UNAVAILABLE` within
/// [`FAILURE_LATENCY`]; returns how long it took.
async fn unavailable<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, DomainError>>,
) -> Duration {
    let clock = Instant::now();
    let answer = call.await;
    let took = clock.elapsed();
    let err = answer.expect_err(&format!("{what} succeeded with the server down"));
    assert_eq!(err.code(), "STORE_UNAVAILABLE", "{what}: {err}");
    assert!(took <= FAILURE_LATENCY, "{what} took {took:?} to fail");
    took
}

#[tokio::test]
async fn a_stopped_server_is_store_unavailable_within_2_s_and_the_same_store_recovers_with_its_pending_write() {
    let Some(cluster) = vm_testpg::dedicated(vm_testpg::Options::default()) else { return };
    let url = cluster.create_database().expect("a database");
    let store = PostgresStore::connect(&PostgresUrl::new(url)).await.expect("the store connects");
    let executions: &dyn ExecutionStore = &store;
    let owner = session(TemplateId::new(), at(0));
    SessionStore::insert(&store, &owner).await.unwrap();
    let before = running(owner.id, at(1));
    executions.insert(&before).await.unwrap();
    let interrupted = running(owner.id, at(2));
    executions.insert(&interrupted).await.unwrap();

    cluster.stop().expect("the server stops");
    let done = finished(&interrupted, 5);
    let trail = events(&interrupted, 5);
    let mut took = vec![
        unavailable("finish", executions.finish(&done, &trail)).await,
        unavailable("append_events", executions.append_events(before.id, &events(&before, 2))).await,
        unavailable("insert", executions.insert(&running(owner.id, at(3)))).await,
        unavailable("get", executions.get(before.id)).await,
        unavailable("list", executions.list(Some(owner.id), 10)).await,
        unavailable("check", store.check()).await,
    ];
    let clock = Instant::now();
    executions.append_events(before.id, &[]).await.expect("an empty batch needs no server");
    assert!(clock.elapsed() < Duration::from_millis(100), "an empty append waited {:?}", clock.elapsed());
    executions.finish_later(done.clone(), trail.clone());
    took.push(unavailable("get, again", executions.get(before.id)).await);
    assert_eq!(store.pending_writes(), 1);
    cluster.restart().expect("the server starts again");
    let up = Instant::now();
    while store.pending_writes() > 0 {
        assert!(up.elapsed() < Duration::from_secs(5), "the pending execution was not stored within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored_after = up.elapsed();

    assert_eq!(executions.get(interrupted.id).await.unwrap(), Some(done));
    assert_eq!(executions.events_after(interrupted.id, 0).await.unwrap(), trail);
    store.check().await.expect("the store answers again");
    let after = running(owner.id, at(4));
    executions.insert(&after).await.expect("the same store writes again");
    executions.finish(&finished(&after, 1), &events(&after, 1)).await.unwrap();
    assert_eq!(executions.get(after.id).await.unwrap().map(|e| e.status), Some(ExecutionStatus::Ok));
    let streamed = events(&before, 2);
    executions.append_events(before.id, &streamed).await.expect("the same store appends again");
    assert_eq!(executions.events_after(before.id, 0).await.unwrap(), streamed);
    assert_eq!(executions.get(before.id).await.unwrap(), Some(before));
    eprintln!("postgres down: calls failed in {took:?}; pending write stored {stored_after:?} after the restart");
    store.close().await;
}
