//! Operations through the real daemon (issue 14): JSON log lines that carry
//! the request, session and execution ids; `/ready` naming the runtime; and
//! the graceful drain on SIGTERM (new work refused, running executions
//! finished or cancelled at `--shutdown-timeout`, a second signal stops at
//! once).

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{eventually, Daemon, Home};
use crate::runtime::{session, template};

/// Starts an execution with `"wait": false` and returns its id.
fn submit(daemon: &Daemon, session: &str, input: &str, request_id: &str) -> String {
    let response = daemon
        .http()
        .post(format!("{}/api/v1/executions/repl", daemon.url))
        .header("x-request-id", request_id)
        .json(&json!({ "session_id": session, "input": input, "wait": false }))
        .send()
        .expect("the daemon answers");
    let status = response.status().as_u16();
    let running: Value = response.json().unwrap();
    assert_eq!((status, running["status"].as_str()), (202, Some("running")), "{running}");
    running["id"].as_str().unwrap().to_owned()
}

/// The stored events of an execution.
fn events(daemon: &Daemon, execution: &str) -> Vec<Value> {
    let (status, events) = daemon.get(&format!("/executions/{execution}/events"));
    assert_eq!(status, 200, "{events}");
    events.as_array().unwrap().clone()
}

/// Follows an execution's live event stream on a thread; the receiver gets
/// `Ok(())` once the stream is open, then the `end` event's data (or `None`
/// when the stream closed without one).
fn follow_to_the_end(daemon: &Daemon, execution: &str) -> (mpsc::Receiver<()>, std::thread::JoinHandle<Option<Value>>) {
    let request = daemon
        .http()
        .get(format!("{}/api/v1/executions/{execution}/events", daemon.url))
        .header("accept", "text/event-stream");
    let (open_tx, open_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let response = request.send().expect("the daemon answers");
        assert_eq!(response.status().as_u16(), 200);
        let _ = open_tx.send(());
        let mut lines = BufReader::new(response).lines().map_while(Result::ok);
        while let Some(line) = lines.next() {
            if line == "event: end" {
                let data = lines.find_map(|l| l.strip_prefix("data: ").map(str::to_owned))?;
                return Some(serde_json::from_str(&data).expect("SSE data is JSON"));
            }
        }
        None
    });
    (open_rx, reader)
}

/// The daemon's log once it has exited: every line, parsed as JSON.
fn json_log_lines(daemon: &Daemon) -> Vec<Value> {
    // The log pipe is read on a thread: wait for the last line.
    let logs = eventually(Duration::from_secs(5), "the daemon's last log line", || {
        let logs = daemon.logs();
        logs.contains("\"message\":\"stopped\"").then_some(logs)
    });
    logs.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
            for key in ["timestamp", "level", "target", "message"] {
                assert!(value[key].is_string(), "{key} in {line}");
            }
            value
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line_carrying_the_request_session_and_execution_ids() {
    let home = Home::new();
    let mut daemon = Daemon::start_with(&home, &["--listen", "127.0.0.1:0", "--log-format", "json"]);
    let t = template(&daemon, json!({ "limits": { "wall_ms": 300 } }), &[], &[]);
    let s = session(&daemon, &home, &t);

    let limited = daemon
        .http()
        .post(format!("{}/api/v1/executions/repl", daemon.url))
        .header("x-request-id", "ops-limit-1")
        .json(&json!({ "session_id": s, "input": "let i = 0; while (true) { i++ }" }))
        .send()
        .unwrap();
    assert_eq!(limited.headers()["x-request-id"], "ops-limit-1");
    let body: Value = limited.json().unwrap();
    assert_eq!(body["error"]["code"], "EXECUTION_TIMEOUT", "{body}");
    let limited_id = body["error"]["details"]["execution_id"].as_str().unwrap().to_owned();

    let cancelled_id = submit(&daemon, &s, "let n = 0; while (true) { n++ }", "ops-start-2");
    let cancel = daemon
        .http()
        .post(format!("{}/api/v1/executions/{cancelled_id}/cancel", daemon.url))
        .header("x-request-id", "ops-cancel-3")
        .send()
        .unwrap();
    assert_eq!(cancel.status().as_u16(), 200);

    daemon.signal("TERM");
    assert!(daemon.exited_within(Duration::from_secs(20)).success());
    let lines = json_log_lines(&daemon);
    let with = |key: &str, value: &str| -> Vec<&Value> { lines.iter().filter(|l| l[key] == value).collect() };

    let limit_request = with("request_id", "ops-limit-1");
    assert!(
        limit_request.iter().any(|l| l["message"] == "audit" && l["path"] == "/api/v1/executions/repl"),
        "the request's own lines carry its id: {limit_request:#?}"
    );
    let stopped = with("execution_id", &limited_id)
        .into_iter()
        .find(|l| l["message"] == "execution stopped by a limit")
        .unwrap_or_else(|| panic!("a line about the limit hit of {limited_id} in {lines:#?}"));
    assert_eq!((&stopped["limit"], &stopped["session_id"]), (&json!("wall"), &json!(s)), "{stopped}");
    assert_eq!(stopped["request_id"], "ops-limit-1", "the execution's lines name the request that ran it: {stopped}");
    assert_eq!(stopped["level"], "INFO");

    let cancel_line = with("request_id", "ops-cancel-3")
        .into_iter()
        .find(|l| l["message"] == "cancel requested")
        .unwrap_or_else(|| panic!("the cancel request's line in {lines:#?}"));
    assert_eq!(cancel_line["execution_id"], cancelled_id.as_str());
    let cancelled = with("execution_id", &cancelled_id)
        .into_iter()
        .find(|l| l["message"] == "execution cancelled")
        .unwrap_or_else(|| panic!("the end of {cancelled_id} in {lines:#?}"));
    assert_eq!(cancelled["request_id"], "ops-start-2", "logged after its request ended, it names it: {cancelled}");

    assert!(with("session_id", &s).iter().any(|l| l["message"] == "session started"), "{lines:#?}");
    for message in ["drain started", "drain finished", "stopped"] {
        assert!(
            lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.starts_with(message))),
            "{message} in {lines:#?}"
        );
    }
}

#[test]
fn ready_reports_the_store_and_the_runtime() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let (status, ready) = daemon.get("/ready");
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready, json!({ "status": "ready", "store": "ok", "runtime": "ok", "pending_writes": 0 }));
}

#[test]
fn sigterm_lets_a_running_execution_end_while_new_work_is_refused_then_exits_0() {
    let home = Home::new();
    let mut daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let id = submit(&daemon, &s, "await new Promise(r => setTimeout(r, 2500)); 'slept'", "ops-drain-1");
    let (open, stream) = follow_to_the_end(&daemon, &id);
    open.recv_timeout(Duration::from_secs(10)).expect("the event stream opens");

    daemon.signal("TERM");
    let ready = eventually(Duration::from_secs(5), "/ready to answer 503", || {
        let (status, body) = daemon.get("/ready");
        (status == 503).then_some(body)
    });
    assert_eq!(ready["error"]["code"], "SHUTTING_DOWN", "{ready}");
    assert_eq!(ready["error"]["details"]["checks"]["drain"], "draining", "{ready}");
    assert_eq!(daemon.get("/health"), (200, json!({ "status": "ok" })), "alive while draining");
    let refused = daemon
        .http()
        .post(format!("{}/api/v1/executions/repl", daemon.url))
        .json(&json!({ "session_id": s, "input": "1" }))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"), "{:?}", refused.headers());
    let refused: Value = refused.json().unwrap();
    assert_eq!(refused["error"]["code"], "SHUTTING_DOWN", "{refused}");
    let (_, running) = daemon.get(&format!("/executions/{id}"));
    assert_eq!(running["status"], "running", "all of this happened during the drain: {running}");

    let status = daemon.exited_within(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
    let end = stream.join().unwrap().expect("the live stream got its end event");
    assert_eq!(end["status"], "ok", "{end}");
    let logs = daemon.logs();
    assert!(logs.contains("drain started") && logs.contains("drain finished"), "{logs}");
    drop(daemon);

    let restarted = Daemon::start(&home);
    let (_, stored) = restarted.get(&format!("/executions/{id}"));
    assert_eq!(stored["status"], "ok", "{stored}");
    assert_eq!(stored["result"]["json"], "slept", "{stored}");
}

#[test]
fn a_drain_past_its_timeout_cancels_the_execution_keeps_its_events_and_exits_promptly() {
    let home = Home::new();
    let mut daemon = Daemon::start_with(&home, &["--listen", "127.0.0.1:0", "--shutdown-timeout", "200ms"]);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let id = submit(&daemon, &s, "console.log('spinning'); while (true) {}", "ops-endless-1");
    eventually(Duration::from_secs(10), "the console line to be stored", || {
        events(&daemon, &id).iter().any(|e| e["payload"]["text"] == "spinning").then_some(())
    });

    daemon.signal("TERM");
    let signalled = Instant::now();
    let status = daemon.exited_within(Duration::from_secs(20));
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "a 200 ms drain took {took:?}");
    drop(daemon);

    let restarted = Daemon::start(&home);
    let (_, stored) = restarted.get(&format!("/executions/{id}"));
    assert_eq!(stored["status"], "cancelled", "{stored}");
    assert_eq!(stored["error"]["code"], "CANCELLED", "cancelled by the drain, not found running at restart: {stored}");
    let events = events(&restarted, &id);
    assert!(events.iter().any(|e| e["payload"]["text"] == "spinning"), "{events:#?}");
    let system: Vec<&str> =
        events.iter().filter(|e| e["type"] == "system").filter_map(|e| e["payload"]["message"].as_str()).collect();
    assert!(system.iter().any(|m| m.contains("shutting down") && m.contains("200 ms")), "{system:?}");
    assert!(system.last().is_some_and(|m| m.contains("cancelled")), "{system:?}");
}

#[test]
fn a_second_signal_stops_at_once_and_the_restart_finalises_what_ran() {
    let home = Home::new();
    let mut daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let id = submit(&daemon, &s, "while (true) {}", "ops-endless-2");
    daemon.signal("TERM");
    eventually(Duration::from_secs(5), "/ready to answer 503", || (daemon.get("/ready").0 == 503).then_some(()));
    daemon.signal("INT");
    let signalled = Instant::now();
    daemon.exited_within(Duration::from_secs(20));
    assert!(signalled.elapsed() < Duration::from_secs(3), "stopped after {:?}", signalled.elapsed());
    drop(daemon);

    let restarted = Daemon::start(&home);
    let (_, stored) = restarted.get(&format!("/executions/{id}"));
    assert_eq!(
        (stored["status"].as_str(), stored["error"]["code"].as_str()),
        (Some("cancelled"), Some("INTERRUPTED")),
        "{stored}"
    );
}
