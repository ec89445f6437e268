//! The daemon as a process: start-up, shutdown, crashes and restarts.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::{eventually, path_str, serve_command, Daemon, Home, BIN};

#[test]
fn help_names_the_serve_command_and_its_defaults() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("serve"), "{text}");
    let serve = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&serve.stdout);
    for default in ["127.0.0.1:3210", "vm-system.db"] {
        assert!(text.contains(default), "{default} in {text}");
    }
}

#[test]
fn sigterm_stops_the_daemon_gracefully() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    assert_eq!(daemon.get("/health").0, 200);
    let status = daemon.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_port_in_use_is_a_clear_error_and_a_failed_exit() {
    let home = Home::new();
    let first = Daemon::start(&home);
    let address = first.url.trim_start_matches("http://").to_owned();
    let other = Home::new();
    let output = serve_command(&other, &["--listen", &address]).stderr(std::process::Stdio::piped()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[test]
fn a_daemon_killed_mid_execution_is_reconciled_on_restart() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let (_, template) = daemon.post("/templates", json!({ "name": "crash" }));
    let (_, session) = daemon.post(
        "/sessions",
        json!({
            "template_id": template["id"],
            "workspace_id": "ws",
            "base_commit_oid": "c0ffee",
            "worktree_path": path_str(&home.worktree()),
        }),
    );
    let session_id = session["id"].as_str().unwrap().to_owned();
    let (url, http) = (daemon.url.clone(), daemon.http());
    let spinning = session_id.clone();
    std::thread::spawn(move || {
        let _ = http
            .post(format!("{url}/api/v1/executions/repl"))
            .json(&json!({ "session_id": spinning, "input": "let n = 0; while (true) { n++ }" }))
            .send();
    });
    let running_id = eventually(Duration::from_secs(10), "the execution to be recorded as running", || {
        let (_, list) = daemon.get(&format!("/executions?session_id={session_id}"));
        list.as_array()?.iter().find(|e| e["status"] == "running").map(|e| e["id"].as_str().unwrap().to_owned())
    });
    daemon.kill();

    let restarted = Daemon::start(&home);
    let (_, session) = restarted.get(&format!("/sessions/{session_id}"));
    assert_eq!(session["status"], "closed", "{session}");
    assert!(session["last_error"].as_str().unwrap().contains("daemon"));
    let (_, execution) = restarted.get(&format!("/executions/{running_id}"));
    assert_eq!(execution["status"], "cancelled", "{execution}");
    let (_, events) = restarted.get(&format!("/executions/{running_id}/events"));
    let last = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "system", "{events}");
    let (_, summary) = restarted.get("/runtime/summary");
    assert_eq!(summary["active_sessions"], 0);
}
