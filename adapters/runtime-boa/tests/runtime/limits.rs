//! Limits enforced while the code runs: wall time and CPU time kill the
//! worker, memory ends it at `mem_mb`, and the session's checkpoint takes
//! over with its state from before the job — while other sessions carry on.

use std::time::{Duration, Instant};

use serde_json::json;
use vm_domain::event::EventPayload;
use vm_domain::ports::{Ending, JsRuntime, LimitHit, RuntimeError, StateAfter};

use crate::harness::{completed, json_of, log, value, Harness};

#[tokio::test]
async fn an_endless_loop_is_killed_at_wall_ms_and_the_session_rolls_back() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.wall_ms = 300).await;
    h.eval(s, "var kept = 'before'").await;
    let started = Instant::now();
    let outcome = h.eval(s, "console.log('before'); kept = 'during'; while (true) {}").await;
    let took = started.elapsed();
    assert_eq!(
        outcome.ending,
        Ending::Limit { hit: LimitHit::WallTime { limit_ms: 300 }, state: StateAfter::RolledBack }
    );
    assert_eq!(outcome.events, vec![log("before")], "events sent before the kill are kept");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(550), "stopped after {took:?}");
    assert!(h.runtime.live_sessions().contains(&s));
    assert_eq!(json_of(&h.eval(s, "kept").await), json!("before"));
}

#[tokio::test]
async fn a_cpu_bound_job_is_killed_at_cpu_ms_before_its_wall_time() {
    let h = Harness::new();
    let s = h
        .session_with(|spec| {
            spec.settings.limits.cpu_ms = 200;
            spec.settings.limits.wall_ms = 20_000;
        })
        .await;
    let started = Instant::now();
    let outcome = h.eval(s, "var n = 0; for (;;) { n++ }").await;
    assert_eq!(
        outcome.ending,
        Ending::Limit { hit: LimitHit::CpuTime { limit_ms: 200 }, state: StateAfter::RolledBack }
    );
    assert!(started.elapsed() < Duration::from_secs(5), "stopped after {:?}", started.elapsed());
    assert_eq!(json_of(&h.eval(s, "typeof n").await), json!("undefined"), "the job's global is rolled back");
}

#[tokio::test]
async fn cpu_time_is_counted_per_job_so_many_short_jobs_never_add_up() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.cpu_ms = 150).await;
    for _ in 0..4 {
        let outcome = h.eval(s, "{ const t = Date.now(); while (Date.now() - t < 80) {} } 'ok'").await;
        assert_eq!(outcome, completed(vec![value("string", "'ok'", Some(json!("ok")))]));
    }
}

#[tokio::test]
async fn an_allocation_bomb_ends_at_mem_mb_as_a_memory_limit() {
    let h = Harness::new();
    // A generous CPU limit: the memory limit must be what stops it, even in a
    // debug build on a busy machine.
    let s = h
        .session_with(|spec| {
            spec.settings.limits.mem_mb = 64;
            spec.settings.limits.cpu_ms = 60_000;
        })
        .await;
    h.eval(s, "var kept = [1, 2, 3]").await;
    let bomb = "console.log('filling'); kept = []; for (;;) kept.push(new Array(100000).fill(Math.random()))";
    let outcome = h.eval(s, bomb).await;
    assert_eq!(outcome.ending, Ending::Limit { hit: LimitHit::Memory { limit_mb: 64 }, state: StateAfter::RolledBack });
    assert_eq!(outcome.events, vec![log("filling")]);
    assert!(h.runtime.live_sessions().contains(&s));
    assert_eq!(json_of(&h.eval(s, "kept").await), json!([1, 2, 3]));
}

#[tokio::test]
async fn one_giant_allocation_is_stopped_too() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.mem_mb = 64).await;
    let outcome = h.eval(s, "'x'.repeat(200 * 1024 * 1024).length").await;
    assert_eq!(outcome.ending, Ending::Limit { hit: LimitHit::Memory { limit_mb: 64 }, state: StateAfter::RolledBack });
}

#[tokio::test]
async fn a_session_whose_libraries_need_more_than_mem_mb_does_not_start() {
    let h = Harness::new();
    h.cache_library("lodash-4.17.21", "var _ = { ballast: 'x'.repeat(3 * 1024 * 1024) + '!' };");
    let mut spec = h.spec();
    spec.libraries = vec![vm_domain::catalog::LibraryRef::parse("lodash-4.17.21").expect("a catalog library")];
    spec.settings.limits.mem_mb = 2;
    match h.runtime.start(spec).await {
        Err(RuntimeError::StartFailed(message)) => assert!(message.contains("raise limits.mem_mb"), "{message}"),
        other => panic!("expected StartFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_spinning_session_does_not_hold_up_another_one() {
    let h = Harness::new();
    let busy = h.session_with(|spec| spec.settings.limits.wall_ms = 1_000).await;
    let other = h.session().await;
    let spin = h.eval(busy, "while (true) {}");
    let quick = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let outcome = h.eval(other, "1 + 1").await;
        (outcome, started.elapsed())
    };
    let (spun, (quick, took)) = tokio::join!(spin, quick);
    assert_eq!(quick, completed(vec![value("number", "2", Some(json!(2)))]));
    assert!(took < Duration::from_millis(500), "the other session answered after {took:?}, as if it waited");
    assert!(matches!(spun.ending, Ending::Limit { hit: LimitHit::WallTime { .. }, state: StateAfter::RolledBack }));
}

#[tokio::test]
async fn the_event_limit_holds_in_a_worker_and_the_session_survives() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.max_events = 5).await;
    let outcome = h.eval(s, "for (let i = 0; ; i++) console.log('line', i)").await;
    assert_eq!(outcome.ending, Ending::Limit { hit: LimitHit::Events { max_events: 5 }, state: StateAfter::Kept });
    let texts: Vec<_> = outcome
        .events
        .iter()
        .map(|e| match e {
            EventPayload::Console { text, .. } => text.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(texts, ["line 0", "line 1", "line 2", "line 3", "line 4"]);
    assert_eq!(h.eval(s, "'alive'").await, completed(vec![value("string", "'alive'", Some(json!("alive")))]));
}
