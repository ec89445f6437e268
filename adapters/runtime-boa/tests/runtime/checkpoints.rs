//! Live executions (SPEC §10): events reach the caller while the job runs,
//! cancel stops any job at once, a killed or crashed worker's checkpoint
//! takes over with the state from before the job, and a session forks into
//! an independent copy. Each case runs with the sandbox on and off.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use vm_domain::event::EventPayload;
use vm_domain::ids::SessionId;
use vm_domain::ports::{Ending, Job, JsRuntime, LimitHit, LiveEvents, Outcome, RuntimeError, RuntimeSpec, StateAfter};

use crate::harness::{json_of, log, Harness};
use crate::process::{kill_9, no_checkpoints};

/// Both ways the daemon may run sessions.
fn harnesses() -> [(&'static str, Harness); 2] {
    [("sandbox on", Harness::new()), ("sandbox off", Harness::unsandboxed())]
}

/// Events as a live callback got them, each with when.
type Seen = Arc<Mutex<Vec<(Instant, EventPayload)>>>;

/// A live callback that notes when each event came.
fn timed() -> (LiveEvents, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (Arc::new(move |event| sink.lock().unwrap().push((Instant::now(), event))), seen)
}

/// Waits until `seen` holds an event, polling.
async fn first_event(seen: &Mutex<Vec<(Instant, EventPayload)>>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no event came");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn eval_live(h: &Harness, s: SessionId, source: &str, live: LiveEvents) -> Ending {
    let outcome = h.runtime.run(s, Job::Eval { source: source.into() }, live).await.expect("a live session");
    assert!(outcome.events.is_empty(), "every event went to the live callback: {:?}", outcome.events);
    outcome.ending
}

#[tokio::test]
async fn events_reach_the_live_callback_while_the_job_runs() {
    for (mode, h) in harnesses() {
        let s = h.session().await;
        let (live, seen) = timed();
        let source = "console.log('a'); { const t = Date.now(); while (Date.now() < t + 300) {} } console.log('b'); 1";
        let ending = eval_live(&h, s, source, live).await;
        let returned = Instant::now();
        assert_eq!(ending, Ending::Completed, "{mode}");
        let seen = seen.lock().unwrap();
        let events: Vec<&EventPayload> = seen.iter().map(|(_, e)| e).collect();
        assert_eq!(events[..2], [&log("a"), &log("b")], "{mode}");
        let ahead = returned - seen[0].0;
        assert!(ahead >= Duration::from_millis(200), "{mode}: 'a' came only {ahead:?} before the end");
    }
}

#[tokio::test]
async fn cancel_stops_an_endless_loop_at_once_and_rolls_the_session_back() {
    for (mode, h) in harnesses() {
        let s = h.session().await;
        h.eval(s, "var before = 1").await;
        assert!(!h.runtime.cancel(s).await, "{mode}: nothing runs yet");
        let (live, seen) = timed();
        let run = eval_live(&h, s, "console.log('go'); var during = 1; before = 2; while (true) {}", live);
        let cancel = async {
            first_event(&seen).await;
            let asked = Instant::now();
            assert!(h.runtime.cancel(s).await, "{mode}: a job was running");
            asked
        };
        let (ending, asked) = tokio::join!(run, cancel);
        let took = asked.elapsed();
        eprintln!("{mode}: cancel took {took:?} from the call to the end of the job");
        assert_eq!(ending, Ending::Cancelled { state: StateAfter::RolledBack }, "{mode}");
        assert!(took < Duration::from_secs(1), "{mode}: cancel took {took:?}");
        let state = json_of(&h.eval(s, "[before, typeof during]").await);
        assert_eq!(state, json!([1, "undefined"]), "{mode}: the state from before the job");
        assert!(h.runtime.take_lost().is_empty(), "{mode}");
    }
}

/// A hard stop of a job: what stops it, how to set it up, the code.
struct HardStop {
    label: &'static str,
    configure: fn(&mut RuntimeSpec),
    source: &'static str,
    expected: fn(&Ending) -> bool,
}

const HARD_STOPS: [HardStop; 3] = [
    HardStop {
        label: "wall_ms",
        configure: |spec| spec.settings.limits.wall_ms = 300,
        source: "while (true) {}",
        expected: |e| matches!(e, Ending::Limit { hit: LimitHit::WallTime { .. }, state: StateAfter::RolledBack }),
    },
    HardStop {
        label: "cpu_ms",
        configure: |spec| {
            spec.settings.limits.cpu_ms = 200;
            spec.settings.limits.wall_ms = 20_000;
        },
        source: "for (;;) {}",
        expected: |e| matches!(e, Ending::Limit { hit: LimitHit::CpuTime { .. }, state: StateAfter::RolledBack }),
    },
    HardStop {
        label: "mem_mb",
        configure: |spec| {
            spec.settings.limits.mem_mb = 64;
            spec.settings.limits.cpu_ms = 60_000;
        },
        source: "const keep = []; for (;;) keep.push(new Array(100000).fill(Math.random()))",
        expected: |e| matches!(e, Ending::Limit { hit: LimitHit::Memory { .. }, state: StateAfter::RolledBack }),
    },
];

#[tokio::test]
async fn a_hard_limit_rolls_the_session_back_to_before_the_job() {
    for (mode, h) in harnesses() {
        for stop in &HARD_STOPS {
            let s = h.session_with(stop.configure).await;
            h.eval(s, "var kept = 'before'").await;
            let outcome = h.eval(s, &format!("kept = 'during'; var added = 1; {}", stop.source)).await;
            assert!((stop.expected)(&outcome.ending), "{mode}, {}: {:?}", stop.label, outcome.ending);
            let state = json_of(&h.eval(s, "[kept, typeof added]").await);
            assert_eq!(state, json!(["before", "undefined"]), "{mode}, {}", stop.label);
            h.runtime.close(s).await;
        }
    }
}

#[tokio::test]
async fn a_worker_killed_mid_job_rolls_back_in_both_modes() {
    for (mode, h) in harnesses() {
        let s = h.session().await;
        h.eval(s, "var kept = 'before'").await;
        let pid = h.runtime.worker_pid(s).expect("a live worker");
        let (live, seen) = timed();
        let run = eval_live(&h, s, "console.log('go'); kept = 'during'; while (true) {}", live);
        let killer = async {
            first_event(&seen).await;
            kill_9(pid);
        };
        let (ending, ()) = tokio::join!(run, killer);
        match ending {
            Ending::Crashed { reason, state: StateAfter::RolledBack } => {
                assert!(reason.contains("SIGKILL"), "{reason}")
            }
            other => panic!("{mode}: expected a rolled-back crash, got {other:?}"),
        }
        assert_eq!(json_of(&h.eval(s, "kept").await), json!("before"), "{mode}");
    }
}

#[tokio::test]
async fn without_checkpoints_a_killed_worker_loses_the_session() {
    for (mode, h) in harnesses() {
        let s = h
            .session_with(|spec| {
                no_checkpoints(spec);
                spec.settings.limits.wall_ms = 200;
            })
            .await;
        let outcome = h.eval(s, "while (true) {}").await;
        let lost = Ending::Limit { hit: LimitHit::WallTime { limit_ms: 200 }, state: StateAfter::Lost };
        assert_eq!(outcome.ending, lost, "{mode}");
        assert!(!h.runtime.live_sessions().contains(&s), "{mode}");
        assert!(matches!(h.run(s, Job::Eval { source: "1".into() }).await, Err(RuntimeError::Unavailable(_))));

        let s = h.session_with(no_checkpoints).await;
        let (live, seen) = timed();
        let run = eval_live(&h, s, "console.log('go'); while (true) {}", live);
        let cancel = async {
            first_event(&seen).await;
            h.runtime.cancel(s).await
        };
        let (ending, cancelled) = tokio::join!(run, cancel);
        assert!(cancelled);
        assert_eq!(ending, Ending::Cancelled { state: StateAfter::Lost }, "{mode}");
        assert!(!h.runtime.live_sessions().contains(&s), "{mode}");
    }
}

#[tokio::test]
async fn an_idle_worker_killed_from_outside_is_replaced_by_its_checkpoint_silently() {
    for (mode, h) in harnesses() {
        let s = h.session().await;
        eval_then_checkpoint(&h, s, "var kept = 41").await;
        let pid = h.runtime.worker_pid(s).expect("a live worker");
        kill_9(pid);
        let lost = tokio::time::timeout(Duration::from_millis(300), h.runtime.next_lost()).await;
        assert!(lost.is_err(), "{mode}: no loss is reported: {lost:?}");
        assert_eq!(json_of(&eval_then_checkpoint(&h, s, "kept += 1").await), json!(42), "{mode}");
        let now = h.runtime.worker_pid(s).expect("a live worker again");
        assert_ne!(now, pid, "{mode}");
        kill_9(now);
        let deadline = Instant::now() + Duration::from_secs(5);
        while h.runtime.worker_pid(s).is_none_or(|p| p == now) {
            assert!(Instant::now() < deadline, "{mode}: the second checkpoint never took over");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(json_of(&h.eval(s, "kept").await), json!(42), "{mode}");
        assert!(h.runtime.take_lost().is_empty(), "{mode}");
    }
}

#[tokio::test]
async fn a_session_keeps_one_checkpoint_however_many_jobs_it_runs() {
    for (mode, h) in harnesses() {
        let s = h.session().await;
        for i in 0..5 {
            eval_then_checkpoint(&h, s, &format!("var n = {i}")).await;
        }
        let keeper = parent_of(h.runtime.worker_pid(s).expect("a live worker"));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // The live worker and its checkpoint; the replaced ones are gone.
            let children = children(keeper);
            if children.len() == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "{mode}: the keeper has {children:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test]
async fn a_forked_session_starts_with_the_heap_and_then_goes_its_own_way() {
    for (mode, h) in harnesses() {
        let a = h.session_with(|spec| spec.settings.limits.wall_ms = 500).await;
        h.eval(a, "var x = 1; function twice(n) { return 2 * n }").await;
        let b = SessionId::new();
        h.runtime.fork(a, b).await.expect("the session forks");
        assert_eq!(json_of(&h.eval(b, "[x, twice(21)]").await), json!([1, 42]), "{mode}");
        h.eval(a, "x = 2").await;
        h.eval(b, "x = 3").await;
        assert_eq!(json_of(&h.eval(a, "x").await), json!(2), "{mode}");
        assert_eq!(json_of(&h.eval(b, "x").await), json!(3), "{mode}");
        assert_ne!(h.runtime.worker_pid(a), h.runtime.worker_pid(b));
        let mut live = h.runtime.live_sessions();
        live.sort();
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(live, expected);

        let outcome = h.eval(b, "x = 4; while (true) {}").await;
        let rolled = Ending::Limit { hit: LimitHit::WallTime { limit_ms: 500 }, state: StateAfter::RolledBack };
        assert_eq!(outcome.ending, rolled, "{mode}: the fork keeps its settings");
        assert_eq!(json_of(&h.eval(b, "x").await), json!(3), "{mode}");
        assert_eq!(json_of(&h.eval(a, "x").await), json!(2), "{mode}: the source is undisturbed");

        h.runtime.close(a).await;
        assert_eq!(json_of(&h.eval(b, "x + 1").await), json!(4), "{mode}: the fork outlives its source");
        let c = SessionId::new();
        h.runtime.fork(b, c).await.expect("a fork forks");
        h.runtime.close(b).await;
        assert_eq!(json_of(&h.eval(c, "x").await), json!(3), "{mode}");
        assert!(h.runtime.take_lost().is_empty(), "{mode}");
    }
}

#[tokio::test]
async fn forking_a_session_that_is_not_live_is_unavailable() {
    let h = Harness::new();
    let result = h.runtime.fork(SessionId::new(), SessionId::new()).await;
    assert!(matches!(result, Err(RuntimeError::Unavailable(_))), "{result:?}");
}

/// Live processes (not zombies) as (pid, parent).
fn processes() -> Vec<(i32, i32)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let mut fields = stat[stat.rfind(')')? + 2..].split_whitespace();
            if fields.next()? == "Z" {
                return None;
            }
            Some((pid, fields.next()?.parse().ok()?))
        })
        .collect()
}

fn parent_of(pid: i32) -> i32 {
    processes().into_iter().find(|(p, _)| *p == pid).map(|(_, parent)| parent).expect("a live process")
}

fn children(parent: i32) -> HashSet<i32> {
    processes().into_iter().filter(|(_, p)| *p == parent).map(|(pid, _)| pid).collect()
}

/// Runs `source`, then waits for the checkpoint its worker takes after it
/// (a new child of the keeper). A worker killed before that has only the
/// checkpoint from before the job, which cannot stand in for the session.
async fn eval_then_checkpoint(h: &Harness, s: SessionId, source: &str) -> Outcome {
    let keeper = parent_of(h.runtime.worker_pid(s).expect("a live worker"));
    let before = children(keeper);
    let outcome = h.eval(s, source).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while children(keeper).is_subset(&before) {
        assert!(Instant::now() < deadline, "no checkpoint was taken");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    outcome
}

/// `root` and every live process descending from it.
fn tree(root: i32) -> HashSet<i32> {
    let all = processes();
    let mut found: HashSet<i32> = [root].into();
    loop {
        let more: Vec<i32> =
            all.iter().filter(|(p, parent)| found.contains(parent) && !found.contains(p)).map(|(p, _)| *p).collect();
        if more.is_empty() {
            return found.into_iter().filter(|p| all.iter().any(|(q, _)| q == p)).collect();
        }
        found.extend(more);
    }
}

#[tokio::test]
async fn no_process_of_a_family_is_left_once_its_sessions_are_closed() {
    for (mode, h) in harnesses() {
        let a = h.session().await;
        h.eval(a, "var x = 1").await;
        let keeper = parent_of(h.runtime.worker_pid(a).expect("a live worker"));
        let b = SessionId::new();
        h.runtime.fork(a, b).await.expect("the session forks");
        h.eval(b, "x").await;
        // The keeper, and a live worker and a checkpoint per session.
        let deadline = Instant::now() + Duration::from_secs(5);
        let family = loop {
            let family = tree(keeper);
            if family.len() >= 5 {
                break family;
            }
            assert!(Instant::now() < deadline, "{mode}: {family:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        h.runtime.close(a).await;
        assert_eq!(json_of(&h.eval(b, "x").await), json!(1), "{mode}");
        h.runtime.close(b).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let still: Vec<i32> = processes().iter().map(|(p, _)| *p).filter(|p| family.contains(p)).collect();
            if still.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "{mode}: {still:?} of the family {family:?} still run");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Not a check: prints what live executions cost on this machine. Run with
/// `cargo test -p vm-runtime-boa --release --test runtime -- --ignored --nocapture timing`.
#[tokio::test]
#[ignore]
async fn timing_of_repl_fork_and_cancel() {
    for (mode, h) in harnesses() {
        for checkpoints in [true, false] {
            let s = h.session_with(|spec| spec.settings.runtime.checkpoints = checkpoints).await;
            let mut samples = Vec::new();
            for _ in 0..200 {
                let started = Instant::now();
                h.eval(s, "1 + 1").await;
                samples.push(started.elapsed());
            }
            eprintln!("{mode}, checkpoints {checkpoints}: `1 + 1` back to back p50 {:?}", median(samples));
            let mut samples = Vec::new();
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let started = Instant::now();
                h.eval(s, "1 + 1").await;
                samples.push(started.elapsed());
            }
            eprintln!("{mode}, checkpoints {checkpoints}: `1 + 1` after 20 ms idle p50 {:?}", median(samples));
        }
        let s = h.session().await;
        h.eval(s, "var data = Array.from({ length: 10000 }, (_, i) => ({ i }))").await;
        let mut samples = Vec::new();
        for _ in 0..50 {
            let to = SessionId::new();
            let started = Instant::now();
            h.runtime.fork(s, to).await.expect("the session forks");
            samples.push(started.elapsed());
            h.runtime.close(to).await;
        }
        eprintln!("{mode}: fork p50 {:?}", median(samples));
        let mut samples = Vec::new();
        for _ in 0..20 {
            let (live, seen) = timed();
            let run = eval_live(&h, s, "console.log('go'); while (true) {}", live);
            let cancel = async {
                first_event(&seen).await;
                let asked = Instant::now();
                h.runtime.cancel(s).await;
                asked
            };
            let (_, asked) = tokio::join!(run, cancel);
            samples.push(asked.elapsed());
        }
        eprintln!("{mode}: cancel p50 {:?}", median(samples));
    }
}
