//! The worker as a process: its environment and OS limits, and what its
//! death from outside does to its session.

use std::time::Duration;

use vm_domain::ports::{Ending, Job, JsRuntime, RuntimeError, RuntimeSpec, StateAfter};

use crate::harness::Harness;

pub fn no_checkpoints(spec: &mut RuntimeSpec) {
    spec.settings.runtime.checkpoints = false;
}

pub fn kill_9(pid: i32) {
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn a_worker_starts_with_a_cleared_environment() {
    let h = Harness::new();
    let s = h.session().await;
    let pid = h.runtime.worker_pid(s).expect("a live worker");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the worker's environment");
    let mut names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).split('=').next().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["LANG", "PATH"]);
}

#[tokio::test]
async fn a_worker_runs_under_os_limits() {
    let h = Harness::new();
    let s = h.session_with(|spec| spec.settings.limits.mem_mb = 100).await;
    let pid = h.runtime.worker_pid(s).expect("a live worker");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("the worker's limits");
    let soft = |name: &str| {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {limits}"));
        line[name.len()..].split_whitespace().next().expect("a soft limit").to_owned()
    };
    assert_eq!(soft("Max core file size"), "0");
    assert_eq!(soft("Max file size"), (1024u64 * 1024 * 1024).to_string());
    assert_ne!(soft("Max processes"), "unlimited");
    assert_ne!(soft("Max cpu time"), "unlimited");
    let address_space: u64 = soft("Max address space").parse().expect("a finite address space");
    assert!(address_space > 200 * 1024 * 1024, "{address_space}");
    assert_eq!(soft("Max stack size"), (64u64 * 1024 * 1024).to_string());
}

#[tokio::test]
async fn without_checkpoints_a_worker_killed_while_idle_is_reported_lost_at_once_and_only_once_with_the_signal() {
    let h = Harness::new();
    let s = h.session_with(no_checkpoints).await;
    let other = h.session().await;
    let pid = h.runtime.worker_pid(s).expect("a live worker");
    let killed_at = std::time::Instant::now();
    kill_9(pid);
    let (lost, reason) = tokio::time::timeout(Duration::from_secs(5), h.runtime.next_lost())
        .await
        .expect("the death is reported without anyone polling");
    let took = killed_at.elapsed();
    eprintln!("an idle worker's death was reported {took:?} after the kill");
    assert!(took < Duration::from_millis(100), "reported {took:?} after the kill");
    assert_eq!(lost, s);
    assert!(reason.contains("SIGKILL") && reason.contains("while idle"), "{reason}");
    assert!(h.runtime.take_lost().is_empty(), "reported once");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), h.runtime.next_lost()).await.is_err(),
        "reported once, to one caller"
    );
    assert!(matches!(h.run(s, Job::Eval { source: "1".into() }).await, Err(RuntimeError::Unavailable(_))));
    assert_eq!(h.runtime.live_sessions(), vec![other]);
}

#[tokio::test]
async fn a_loss_nobody_waited_for_is_still_there_for_a_later_look() {
    let h = Harness::new();
    let s = h.session_with(no_checkpoints).await;
    kill_9(h.runtime.worker_pid(s).expect("a live worker"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let lost = loop {
        let lost = h.runtime.take_lost();
        if !lost.is_empty() {
            break lost;
        }
        assert!(std::time::Instant::now() < deadline, "the death was never noticed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].0, s);
    assert!(lost[0].1.contains("SIGKILL"), "{}", lost[0].1);
    assert!(!h.runtime.live_sessions().contains(&s));
}

#[tokio::test]
async fn a_closed_or_limit_killed_worker_is_not_a_loss() {
    let h = Harness::new();
    let closed = h.session().await;
    let timed_out = h.session_with(|spec| spec.settings.limits.wall_ms = 200).await;
    h.runtime.close(closed).await;
    let outcome = h.eval(timed_out, "while (true) {}").await;
    assert!(matches!(outcome.ending, Ending::Limit { state: StateAfter::RolledBack, .. }), "{:?}", outcome.ending);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), h.runtime.next_lost()).await.is_err(),
        "the daemon's own kills are reported where they happen"
    );
}

#[tokio::test]
async fn a_worker_killed_while_running_crashes_the_job_with_the_signal_and_rolls_back() {
    let h = Harness::new();
    let s = h.session().await;
    h.eval(s, "var kept = 1").await;
    let pid = h.runtime.worker_pid(s).expect("a live worker");
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        kill_9(pid);
    });
    let outcome = h.eval(s, "console.log('spinning'); kept = 2; while (true) {}").await;
    killer.await.expect("the killer ran");
    match outcome.ending {
        Ending::Crashed { reason, state } => {
            assert!(reason.contains("SIGKILL"), "{reason}");
            assert_eq!(state, StateAfter::RolledBack);
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    assert_eq!(outcome.events.len(), 1, "the line printed before the kill is kept");
    assert!(h.runtime.take_lost().is_empty(), "a death during a job is the job's outcome, not a loss");
    assert_eq!(crate::harness::json_of(&h.eval(s, "kept").await), serde_json::json!(1));
    assert_ne!(h.runtime.worker_pid(s), Some(pid), "the checkpoint is the live worker now");
}

#[tokio::test]
async fn closing_a_session_ends_its_worker_process() {
    let h = Harness::new();
    let s = h.session().await;
    let pid = h.runtime.worker_pid(s).expect("a live worker");
    h.runtime.close(s).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = state.is_empty() || state.split(") ").nth(1).is_some_and(|rest| rest.starts_with('Z'));
        if gone {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "worker {pid} still runs: {state}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn resident_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the worker's status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|k| k.parse().ok()).expect("a number of kB")
}

#[tokio::test]
async fn an_idle_worker_trims_its_resident_memory_and_keeps_its_state() {
    let h = Harness::new();
    h.cache_library("lodash-4.17.21", "var _ = { twice: x => x * 2 };");
    let s = h
        .session_with(|spec| {
            spec.libraries = vec![vm_domain::catalog::LibraryRef::parse("lodash-4.17.21").expect("a catalog library")]
        })
        .await;
    let pid = h.runtime.worker_pid(s).expect("a live worker");
    h.eval(s, "var kept = _.twice(20); JSON.stringify({ kept })").await;
    let busy = resident_kib(pid);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle = resident_kib(pid);
    assert!(idle < busy, "idle {idle} kB is not below busy {busy} kB");
    let outcome = h.eval(s, "kept + _.twice(1)").await;
    assert_eq!(crate::harness::json_of(&outcome), serde_json::json!(42));
}

#[tokio::test]
async fn a_program_cannot_signal_its_sessions_worker_but_can_signal_its_own_children() {
    let h = Harness::new();
    let s = h
        .session_with(|spec| {
            crate::harness::with_modules(spec, &["exec"]);
            spec.capabilities = vec![crate::harness::exec_capability(&["sh"])];
        })
        .await;
    h.eval(s, "var kept = 'alive'").await;
    let script = "kill -9 $PPID; echo \"worker:$?\"; kill -9 -1; sleep 5 & kill $!; wait $!; echo \"own:$?\"";
    let source = format!("require('exec').run('sh', ['-c', {}]).stdout", serde_json::to_string(script).unwrap());
    let outcome = h.eval(s, &source).await;
    let stdout = crate::harness::json_of(&outcome);
    assert_eq!(stdout, serde_json::json!("worker:1\nown:143\n"), "the worker survives, the program's child does not");
    assert_eq!(crate::harness::json_of(&h.eval(s, "kept").await), serde_json::json!("alive"));
}

#[tokio::test]
async fn process_stats_count_each_live_worker_with_its_memory_and_forget_a_closed_one() {
    let h = Harness::new();
    let a = h.session().await;
    let b = h.session().await;
    // A fixed amount of work, not of time: on a busy machine a timed loop may get no CPU.
    h.eval(a, "let n = 0; for (let i = 0; i < 500000; i++) { n += i }").await;
    let stats = h.runtime.process_stats();
    assert_eq!(stats.workers, 2, "{stats:?}");
    assert!(stats.worker_rss_bytes > 2 << 20, "two engines hold more than 2 MiB: {stats:?}");
    assert!(stats.worker_cpu_seconds > 0.0, "{stats:?}");
    assert!(stats.zygotes >= 1, "the zygote the sessions came from is kept: {stats:?}");
    assert!(stats.checkpoints >= 1, "the session that ran a job has a checkpoint: {stats:?}");
    h.runtime.close(a).await;
    assert_eq!(h.runtime.process_stats().workers, 1);
    h.runtime.close(b).await;
    let after = h.runtime.process_stats();
    assert_eq!((after.workers, after.checkpoints, after.worker_rss_bytes), (0, 0, 0), "{after:?}");
}
