//! SQLite on a disk that fills up: a write that does not fit (a finish, an
//! append of events) fails with `STORAGE_FULL` (never `INTERNAL`) and
//! stores nothing of itself, reads go
//! on, everything acknowledged stays, and once there is room again the same
//! open store writes again: its one writer connection healed.

use std::time::{Duration, Instant};
use vm_testpg::SmallDisk;

use chrono::Duration as Span;
use vm_domain::event::{ConsoleLevel, Event, EventPayload};
use vm_domain::execution::{Execution, ExecutionStatus};
use vm_domain::ids::TemplateId;
use vm_domain::ports::{ExecutionStore, SessionStore, StoreHealth};
use vm_domain::DomainError;
use vm_store::SqliteStore;

use crate::seed::{at, finished, running, session};

/// `count` console events of `bytes` bytes each, `seq` 1, 2, 3 …
fn big_events(execution: &Execution, count: usize, bytes: usize) -> Vec<Event> {
    (1..=count as i64)
        .map(|seq| Event {
            execution_id: execution.id,
            seq,
            ts: execution.started_at + Span::microseconds(seq),
            payload: EventPayload::Console { level: ConsoleLevel::Log, text: format!("{seq:>8}").repeat(bytes / 8) },
        })
        .collect()
}

/// The tmpfs, and the ballast beside the database whose removal makes room
/// again. The WAL grows by whole pages per commit until a background
/// checkpoint lets it restart, so the disk is sized in megabytes.
const DISK: &str = "16m";
const BALLAST_BYTES: usize = 4 << 20;

/// Executions inserted (small rows) before the disk fills with big finishes
/// of `EVENTS` × `EVENT_BYTES` (256 KiB) each.
const STARTED: i64 = 100;
const EVENTS: usize = 64;
const EVENT_BYTES: usize = 4_096;

/// Checkpoints the WAL into the database file, as the store's background
/// task does every 200 ms. A disk fills over hours, between checkpoints;
/// this test fills it in a burst, so it lets the checkpoint catch up after
/// each write. (A burst that fills the disk leaves most data in the WAL,
/// and then the first room freed goes to the checkpoint copying it into the
/// database file, before any new write.) Failures are left to the writes.
async fn let_the_checkpoint_catch_up(store: &SqliteStore) {
    let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(store.pool()).await;
}

#[tokio::test]
async fn a_full_disk_fails_writes_with_storage_full_loses_nothing_stored_and_heals_once_there_is_room() {
    let Some(disk) = SmallDisk::mount(DISK) else { return };
    let store = SqliteStore::open(&disk.path().join("vm-system.db")).await.expect("the store opens on the tmpfs");
    let executions: &dyn ExecutionStore = &store;
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![0x5a_u8; BALLAST_BYTES]).expect("the ballast fits");
    let owner = session(TemplateId::new(), at(0));
    SessionStore::insert(&store, &owner).await.unwrap();
    // Small rows first, so that the write that meets the full disk is a
    // big `finish`, the one that must be all or nothing.
    let mut started = Vec::new();
    for i in 0..STARTED {
        let execution = running(owner.id, at(1 + i));
        executions.insert(&execution).await.expect("a small row fits");
        started.push(execution);
    }
    let_the_checkpoint_catch_up(&store).await;

    let mut acknowledged = Vec::new();
    let mut refused: Option<(Execution, Vec<Event>, DomainError)> = None;
    let mut left = started.into_iter();
    for execution in left.by_ref() {
        let done = finished(&execution, EVENTS);
        let events = big_events(&execution, EVENTS, EVENT_BYTES);
        match executions.finish(&done, &events).await {
            Ok(()) => {
                acknowledged.push((done, events));
                let_the_checkpoint_catch_up(&store).await;
            }
            Err(err) => {
                refused = Some((done, events, err));
                break;
            }
        }
    }
    let (done, events, err) = refused.expect("the disk filled up before every started execution finished");
    assert!(acknowledged.len() >= 3, "only {} executions fitted before the disk was full", acknowledged.len());

    assert_eq!(err.code(), "STORAGE_FULL", "{err}");
    let unfinished = executions.get(done.id).await.expect("reads work on a full disk").expect("the row stays");
    assert_eq!((unfinished.status, unfinished.ended_at), (ExecutionStatus::Running, None));
    assert!(executions.events_after(done.id, 0).await.unwrap().is_empty(), "a refused finish stored events");
    for (stored, stored_events) in &acknowledged {
        assert_eq!(executions.get(stored.id).await.unwrap().as_ref(), Some(stored));
        assert_eq!(&executions.events_after(stored.id, 0).await.unwrap(), stored_events);
    }
    let again = executions.finish(&done, &events).await.expect_err("the disk is still full");
    assert_eq!(again.code(), "STORAGE_FULL", "{again}");
    let streaming = left.next().expect("an execution left running");
    // Twice the refused finish's events: a batch of the same size can fit in
    // the room the refused transaction's WAL frames leave for reuse.
    let streamed = big_events(&streaming, 2 * EVENTS, EVENT_BYTES);
    let append = executions.append_events(streaming.id, &streamed).await.expect_err("the disk is still full");
    assert_eq!(append.code(), "STORAGE_FULL", "{append}");
    assert!(executions.events_after(streaming.id, 0).await.unwrap().is_empty(), "a refused append stored events");

    let readiness = store.check().await.expect_err("not ready while writes fail, although reads work");
    assert_eq!(readiness.code(), "STORAGE_FULL", "{readiness}");

    executions.finish_later(done.clone(), events.clone());
    assert_eq!(store.pending_writes(), 1);
    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.pending_writes() > 0 {
        assert!(Instant::now() < deadline, "the pending execution was not stored within 5 s of freeing the ballast");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(executions.get(done.id).await.unwrap(), Some(done.clone()));
    assert_eq!(executions.events_after(done.id, 0).await.unwrap(), events);
    store.check().await.expect("ready again once a write succeeded");
    executions.append_events(streaming.id, &streamed).await.expect("appends work again once there is room");
    executions.finish(&finished(&streaming, EVENTS), &[]).await.unwrap();
    assert_eq!(executions.events_after(streaming.id, 0).await.unwrap(), streamed);
    for execution in left.take(3) {
        let next = finished(&execution, EVENTS);
        let next_events = big_events(&execution, EVENTS, EVENT_BYTES);
        executions.finish(&next, &next_events).await.expect("the same store writes again once there is room");
        assert_eq!(executions.get(next.id).await.unwrap(), Some(next));
    }
    for (stored, stored_events) in &acknowledged {
        assert_eq!(executions.get(stored.id).await.unwrap().as_ref(), Some(stored));
        assert_eq!(executions.events_after(stored.id, 0).await.unwrap().len(), stored_events.len());
    }
    store.close().await;
}
