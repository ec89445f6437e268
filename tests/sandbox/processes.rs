//! Guarantees 2, 4 and 5: a session cannot signal anything outside it,
//! nothing it starts outlives it however it detaches, and its process cap
//! holds, with the daemon as root too.

use std::time::Duration;

use crate::harness::{eventually, Lab};

attack!(detached_processes_die_with_the_session, |lab| {
    let session = lab.session();
    let tag = format!("{}", 700_000 + (std::process::id() % 90_000) + lab.who as u32);
    let script = format!(
        "setsid sleep {tag}1 >/dev/null 2>&1 < /dev/null & nohup sleep {tag}2 >/dev/null 2>&1 & \
         (sh -c 'sleep {tag}3 >/dev/null 2>&1 &' &) ; sleep 0.2; echo started"
    );
    let out = lab.sh(&session, &script);
    assert!(out.stdout.contains("started"), "{out:?}");
    assert!(!Lab::host_process_with(&format!("sleep {tag}1")).is_empty(), "the detached sleep should run meanwhile");
    lab.close(&session);
    eventually(Duration::from_secs(5), "every process of the session to end", || {
        (1..=3).all(|i| Lab::host_process_with(&format!("sleep {tag}{i}")).is_empty())
    });
});

attack!(a_session_cannot_signal_the_daemon_or_other_sessions, |lab| {
    let other = lab.session_on(&lab.path("other-worktree").canonicalize().unwrap());
    let session = lab.session();
    let script = format!("kill -9 {} ; kill -9 -1 ; kill -STOP -1; echo survived", lab.daemon_pid());
    let out = lab.sh(&session, &script);
    assert!(out.stdout.contains("survived") || out.code != 0, "{out:?}");
    let (status, _) = lab.get("/health");
    assert_eq!(status, 200, "the daemon was killed from inside a session");
    assert_eq!(lab.value(&other, "1 + 1"), 2, "another session was killed from inside a session");
});

attack!(a_fork_bomb_stays_within_the_process_cap, |lab| {
    let session = lab.session();
    let other = lab.session_on(&lab.path("other-worktree").canonicalize().unwrap());
    let tag = 810_000 + (std::process::id() % 90_000) * 2 + lab.who as u32;
    let limits = lab.sh(&session, "grep 'Max processes' /proc/self/limits").stdout;
    let cap: u32 = limits.split_whitespace().nth(2).and_then(|c| c.parse().ok()).expect("a finite process cap");
    assert!(cap < 1000, "the session has a small process cap: {cap}");
    let bomb = format!("n=0; while [ $n -lt 400 ]; do sleep {tag} >/dev/null 2>&1 & n=$((n+1)); done; echo spawned");
    let out = lab.sh(&session, &bomb);
    assert!(!out.stdout.contains("spawned"), "400 processes started past a cap of {cap}: {out:?}");
    let running = Lab::host_process_with(&format!("sleep {tag}")).len() as u32;
    assert!(running > 0 && running <= cap, "{running} processes ran past the cap of {cap}");
    // The cap is the session's own: another session can still start programs.
    assert_eq!(lab.sh(&other, "echo still-works").stdout, "still-works\n");
    let (status, _) = lab.get("/health");
    assert_eq!(status, 200);
    lab.close(&session);
    eventually(Duration::from_secs(5), "the bomb's processes to end", || {
        Lab::host_process_with(&format!("sleep {tag}")).is_empty()
    });
});

attack!(open_files_and_file_size_are_capped, |lab| {
    let session = lab.session();
    let out = lab.sh(&session, "ulimit -n; ulimit -f");
    let caps: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(caps.len(), 2, "{out:?}");
    assert!(caps.iter().all(|c| *c != "unlimited"), "{out:?}");
});
