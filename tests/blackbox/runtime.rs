//! The runtime through the real daemon: every limit enforced while code runs,
//! worker processes that die without taking the daemon along, one execution
//! at a time, and the native modules' allowed and refused paths.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{eventually, path_str, Daemon, Home};

/// Creates a template with `settings` (PUT, so the rest take defaults),
/// `modules` and `capabilities`; returns its id.
pub fn template(daemon: &Daemon, settings: Value, modules: &[&str], capabilities: &[Value]) -> String {
    let (status, template) = daemon.post("/templates", json!({ "name": "runtime" }));
    assert_eq!(status, 201, "{template}");
    let id = template["id"].as_str().expect("a template id").to_owned();
    let response = daemon
        .http()
        .put(format!("{}/api/v1/templates/{id}/settings", daemon.url))
        .json(&settings)
        .send()
        .expect("the daemon answers");
    assert_eq!(response.status().as_u16(), 200, "{}", response.text().unwrap_or_default());
    for module in modules {
        let (status, body) = daemon.post(&format!("/templates/{id}/modules"), json!({ "name": module }));
        assert_eq!(status, 201, "{body}");
    }
    for capability in capabilities {
        let (status, body) = daemon.post(&format!("/templates/{id}/capabilities"), capability.clone());
        assert_eq!(status, 201, "{body}");
    }
    id
}

/// A ready session of `template` on `home`'s worktree; returns its id.
pub fn session(daemon: &Daemon, home: &Home, template: &str) -> String {
    let (status, session) = daemon.post("/sessions", session_body(home, template));
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["status"], "ready");
    session["id"].as_str().expect("a session id").to_owned()
}

pub fn session_body(home: &Home, template: &str) -> Value {
    json!({
        "template_id": template,
        "workspace_id": "ws",
        "base_commit_oid": "c0ffee",
        "worktree_path": path_str(&home.worktree()),
    })
}

pub fn repl(daemon: &Daemon, session: &str, input: &str) -> (u16, Value) {
    daemon.post("/executions/repl", json!({ "session_id": session, "input": input }))
}

/// Asserts a limit error and returns its details.
#[track_caller]
fn limit_error(answer: &(u16, Value), code: &str) -> Value {
    let (status, body) = answer;
    assert_eq!((*status, body["error"]["code"].as_str()), (422, Some(code)), "{body}");
    let details = body["error"]["details"].clone();
    assert!(details["execution_id"].is_string(), "{body}");
    details
}

/// The stored execution and its events.
fn stored(daemon: &Daemon, execution_id: &str) -> (Value, Vec<Value>) {
    let (_, execution) = daemon.get(&format!("/executions/{execution_id}"));
    let (_, events) = daemon.get(&format!("/executions/{execution_id}/events"));
    (execution, events.as_array().expect("an event list").clone())
}

fn session_status(daemon: &Daemon, session: &str) -> (String, String) {
    let (_, body) = daemon.get(&format!("/sessions/{session}"));
    (body["status"].as_str().unwrap_or_default().to_owned(), body["last_error"].as_str().unwrap_or_default().to_owned())
}

fn live_sessions(daemon: &Daemon) -> Vec<String> {
    let (_, summary) = daemon.get("/runtime/summary");
    summary["active_session_ids"]
        .as_array()
        .expect("active_session_ids")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn an_endless_loop_times_out_at_wall_ms_while_another_session_answers_at_once() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let spinning = session(&daemon, &home, &template(&daemon, json!({ "limits": { "wall_ms": 1500 } }), &[], &[]));
    let other = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let (url, http) = (daemon.url.clone(), daemon.http());
    let spin = {
        let spinning = spinning.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let response = http
                .post(format!("{url}/api/v1/executions/repl"))
                .json(&json!({ "session_id": spinning, "input": "console.log('spinning'); while (true) {}" }))
                .send()
                .expect("the daemon answers");
            let status = response.status().as_u16();
            (status, response.json::<Value>().unwrap_or(Value::Null), started.elapsed())
        })
    };
    eventually(Duration::from_secs(5), "the loop to be running", || {
        let (_, list) = daemon.get(&format!("/executions?session_id={spinning}"));
        list.as_array()?.iter().any(|e| e["status"] == "running").then_some(())
    });
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (status, answer) = repl(&daemon, &other, "1 + 1");
        took.push(started.elapsed());
        assert_eq!((status, answer["result"]["json"].as_i64()), (201, Some(2)), "{answer}");
        assert_eq!(daemon.get("/health").0, 200);
    }
    took.sort();
    assert!(
        took[2] < Duration::from_millis(100),
        "the other session took {took:?} (median over 100 ms) while one spun"
    );
    assert!(took[4] < Duration::from_millis(1000), "the other session waited for the spinning one: {took:?}");
    let (status, body, took) = spin.join().expect("the spinning request returns");
    let details = limit_error(&(status, body), "EXECUTION_TIMEOUT");
    assert!(took < Duration::from_millis(1500 + 250), "answered after {took:?}");
    assert!(took >= Duration::from_millis(1500), "answered after only {took:?}");
    assert_eq!((details["limit"].as_str(), details["limit_ms"].as_u64()), (Some("wall_ms"), Some(1500)));
    assert_eq!((&details["runtime_lost"], &details["rolled_back"]), (&json!(false), &json!(true)));
    let (execution, events) = stored(&daemon, details["execution_id"].as_str().unwrap());
    assert_eq!(execution["status"], "timeout");
    let types: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["input_echo", "console", "system"]);
    let system = events[2]["payload"]["message"].as_str().unwrap();
    assert!(system.contains("wall_ms") && system.contains("1500 ms"), "{system}");
    assert!(system.contains("rolled back"), "{system}");
    assert_eq!(session_status(&daemon, &spinning).0, "ready", "rolled back to its checkpoint");
    let mut live = live_sessions(&daemon);
    live.sort();
    let mut both = vec![spinning, other];
    both.sort();
    assert_eq!(live, both);
}

#[test]
fn a_cpu_bound_loop_is_stopped_at_cpu_ms() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let settings = json!({ "limits": { "cpu_ms": 300, "wall_ms": 20000 } });
    let s = session(&daemon, &home, &template(&daemon, settings, &[], &[]));
    let started = Instant::now();
    let answer = repl(&daemon, &s, "let n = 0; for (;;) { n++ }");
    let details = limit_error(&answer, "EXECUTION_TIMEOUT");
    assert_eq!((details["limit"].as_str(), details["limit_ms"].as_u64()), (Some("cpu_ms"), Some(300)));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let (execution, events) = stored(&daemon, details["execution_id"].as_str().unwrap());
    assert_eq!(execution["status"], "timeout");
    let system = events.last().unwrap()["payload"]["message"].as_str().unwrap().to_owned();
    assert!(system.contains("cpu_ms") && system.contains("300 ms"), "{system}");
}

#[test]
fn a_memory_bomb_is_stopped_at_mem_mb_and_the_daemon_stays_healthy() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    // A generous CPU limit: the memory limit must be what stops it, even on a busy machine.
    let bomb =
        session(&daemon, &home, &template(&daemon, json!({ "limits": { "mem_mb": 64, "cpu_ms": 60000 } }), &[], &[]));
    let other = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let answer = repl(&daemon, &bomb, "const keep = []; for (;;) keep.push(new Array(100000).fill(Math.random()))");
    let details = limit_error(&answer, "MEMORY_LIMIT_EXCEEDED");
    assert_eq!((details["limit_mb"].as_u64(), details["rolled_back"].as_bool()), (Some(64), Some(true)));
    let (_, events) = stored(&daemon, details["execution_id"].as_str().unwrap());
    let system = events.last().unwrap()["payload"]["message"].as_str().unwrap().to_owned();
    assert!(system.contains("64 MB"), "{system}");
    assert_eq!(session_status(&daemon, &bomb).0, "ready", "rolled back to its checkpoint");
    assert_eq!(repl(&daemon, &bomb, "typeof keep").1["result"]["json"], "undefined");
    assert_eq!(daemon.get("/health"), (200, json!({ "status": "ok" })));
    assert_eq!(repl(&daemon, &other, "'still here'").1["result"]["json"], "still here");
}

#[test]
fn a_console_flood_stops_at_max_events_keeping_the_first_events() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({ "limits": { "max_events": 50 } }), &[], &[]));
    let answer = repl(&daemon, &s, "for (let i = 0; ; i++) console.log(i)");
    let details = limit_error(&answer, "OUTPUT_LIMIT_EXCEEDED");
    assert_eq!((details["limit"].as_str(), details["value"].as_u64()), (Some("max_events"), Some(50)));
    assert_eq!(details["runtime_lost"], false);
    let (execution, events) = stored(&daemon, details["execution_id"].as_str().unwrap());
    assert_eq!(execution["status"], "error");
    assert_eq!(events.len(), 52, "the echo, 50 console lines and the system event");
    let texts: Vec<_> = events[1..51].iter().map(|e| e["payload"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(events[51]["type"], "system");
    assert!(events[51]["payload"]["message"].as_str().unwrap().contains("max_events"));
    assert_eq!(session_status(&daemon, &s).0, "ready", "an output limit keeps the session");
    assert_eq!(repl(&daemon, &s, "21 * 2").1["result"]["json"], 42);
}

#[test]
fn one_huge_string_is_stopped_at_max_output_kb() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({ "limits": { "max_output_kb": 4 } }), &[], &[]));
    let answer = repl(&daemon, &s, "console.log('small'); console.log('x'.repeat(100000)); console.log('never')");
    let details = limit_error(&answer, "OUTPUT_LIMIT_EXCEEDED");
    assert_eq!((details["limit"].as_str(), details["value"].as_u64()), (Some("max_output_kb"), Some(4)));
    let (_, events) = stored(&daemon, details["execution_id"].as_str().unwrap());
    let types: Vec<_> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["input_echo", "console", "system"]);
    assert_eq!(events[1]["payload"]["text"], "small");
}

#[test]
fn deep_recursion_is_a_range_error_and_the_session_lives_on() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let (status, execution) = repl(&daemon, &s, "function down(n) { return down(n + 1) + 1 } down(0)");
    assert_eq!((status, execution["status"].as_str()), (201, Some("error")), "{execution}");
    assert_eq!(execution["error"]["message"], "RangeError: Maximum call stack size exceeded");
    assert_eq!(repl(&daemon, &s, "'alive'").1["result"]["json"], "alive");
}

/// Pids of the session keepers of the daemon serving `home` (PID 1 of each
/// session's namespace, whose death takes the session's live worker and
/// checkpoint along): children of its zygotes, which are its children
/// (reaped ones left out). A zygote's
/// short-lived helpers (user namespaces made ahead of sessions) may show up
/// too; [`the_worker`] waits for them to go.
fn worker_pids(home: &Home) -> Vec<i32> {
    let db = home.db().display().to_string();
    let processes: Vec<(i32, i32, String)> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let mut fields = stat[stat.rfind(')')? + 2..].split_whitespace();
            if fields.next()? == "Z" {
                return None;
            }
            let ppid: i32 = fields.next()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some((pid, ppid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect();
    let daemons: Vec<i32> =
        processes.iter().filter(|(_, _, cmd)| cmd.contains(" serve ") && cmd.contains(&db)).map(|p| p.0).collect();
    let zygotes: Vec<i32> = processes
        .iter()
        .filter(|(_, ppid, cmd)| daemons.contains(ppid) && cmd.contains("__vm-worker"))
        .map(|p| p.0)
        .collect();
    processes.iter().filter(|(_, ppid, _)| zygotes.contains(ppid)).map(|p| p.0).collect()
}

#[test]
fn a_worker_killed_from_outside_crashes_its_session_and_the_daemon_carries_on() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let t = template(&daemon, json!({}), &[], &[]);
    let victim = session(&daemon, &home, &t);
    repl(&daemon, &victim, "var state = 1");
    kill_9(the_worker(&home));
    let last_error = eventually(Duration::from_secs(5), "the session to be crashed", || {
        let (status, last_error) = session_status(&daemon, &victim);
        (status == "crashed").then_some(last_error)
    });
    assert!(last_error.contains("SIGKILL"), "{last_error}");
    assert!(live_sessions(&daemon).is_empty());
    let (status, refused) = repl(&daemon, &victim, "state");
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("SESSION_NOT_READY")));
    assert_eq!(daemon.get("/health").0, 200);
    let fresh = session(&daemon, &home, &t);
    assert_eq!(repl(&daemon, &fresh, "1 + 2").1["result"]["json"], 3);
}

/// The one session worker of the daemon serving `home`, once the zygote's
/// helpers are gone.
fn the_worker(home: &Home) -> i32 {
    eventually(Duration::from_secs(5), "one worker process", || match worker_pids(home)[..] {
        [pid] => Some(pid),
        _ => None,
    })
}

/// Executions recorded for `session`.
fn executions_of(daemon: &Daemon, session: &str) -> usize {
    let (status, list) = daemon.get(&format!("/executions?session_id={session}"));
    assert_eq!(status, 200, "{list}");
    list.as_array().expect("an execution list").len()
}

fn kill_9(pid: i32) -> Instant {
    let killed_at = Instant::now();
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -9 {pid}");
    killed_at
}

/// Issue 11, item 4: workers that die idle.
#[test]
fn an_idle_worker_killed_leaves_its_session_crashed_within_100_ms() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    assert_eq!(repl(&daemon, &s, "var state = 1; state").1["result"]["json"], 1);
    let killed_at = kill_9(the_worker(&home));
    let (took, last_error) = loop {
        let (status, last_error) = session_status(&daemon, &s);
        let took = killed_at.elapsed();
        if status == "crashed" {
            break (took, last_error);
        }
        assert!(took < Duration::from_secs(5), "still {status} {took:?} after the kill");
        std::thread::sleep(Duration::from_millis(2));
    };
    eprintln!("the session was crashed {took:?} after its idle worker was killed");
    assert!(took < Duration::from_millis(100), "crashed only {took:?} after the kill");
    assert!(last_error.contains("SIGKILL") && last_error.contains("while idle"), "{last_error}");
    let (status, refused) = repl(&daemon, &s, "state");
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("SESSION_NOT_READY")), "{refused}");
    assert_eq!(refused["error"]["details"]["status"], "crashed", "{refused}");
    assert_eq!(executions_of(&daemon, &s), 1, "the refused call left no execution");
}

/// Issue 11, item 4: workers that die idle.
#[test]
fn an_idle_worker_killed_is_noticed_without_a_read_and_its_next_call_is_refused() {
    let home = Home::new();
    home.write("main.js", "'ran'");
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let killed_at = kill_9(the_worker(&home));
    // Nothing reads the session meanwhile: the call itself must find it
    // crashed once the 100 ms the daemon has to notice are over.
    std::thread::sleep((killed_at + Duration::from_millis(100)).saturating_duration_since(Instant::now()));
    for file_run in [false, true] {
        let (status, refused) = if file_run {
            daemon.post("/executions/run-file", json!({ "session_id": s, "path": "main.js" }))
        } else {
            repl(&daemon, &s, "1 + 1")
        };
        assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("SESSION_NOT_READY")), "{refused}");
    }
    assert_eq!(executions_of(&daemon, &s), 0, "no execution that never ran");
    let (status, last_error) = session_status(&daemon, &s);
    assert_eq!(status, "crashed");
    assert!(last_error.contains("SIGKILL"), "{last_error}");
    let logs = daemon.logs();
    assert!(logs.lines().any(|l| l.contains("its runtime died while idle") && l.contains(&s)), "{logs}");
}

#[test]
fn a_worker_killed_mid_execution_ends_it_and_crashes_the_session() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let (url, http) = (daemon.url.clone(), daemon.http());
    let spinning = s.clone();
    let request = std::thread::spawn(move || {
        http.post(format!("{url}/api/v1/executions/repl"))
            .json(&json!({ "session_id": spinning, "input": "while (true) {}" }))
            .send()
            .expect("the daemon answers")
            .json::<Value>()
            .expect("a JSON answer")
    });
    eventually(Duration::from_secs(5), "the loop to be running", || {
        let (_, list) = daemon.get(&format!("/executions?session_id={s}"));
        list.as_array()?.iter().any(|e| e["status"] == "running").then_some(())
    });
    for pid in worker_pids(&home) {
        std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    }
    let execution = request.join().expect("the request returns");
    assert_eq!(execution["status"], "error", "{execution}");
    assert_eq!(execution["error"]["code"], "RUNTIME_CRASHED");
    assert!(execution["error"]["message"].as_str().unwrap().contains("SIGKILL"), "{execution}");
    let (status, last_error) = session_status(&daemon, &s);
    assert_eq!(status, "crashed");
    assert!(last_error.contains("SIGKILL"), "{last_error}");
}

#[test]
fn a_second_request_while_one_runs_is_refused_with_session_busy() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({ "limits": { "wall_ms": 60000 } }), &[], &[]));
    let (url, http) = (daemon.url.clone(), daemon.http());
    let busy = s.clone();
    let first = std::thread::spawn(move || {
        http
            .post(format!("{url}/api/v1/executions/repl"))
            .json(&json!({ "session_id": busy, "input": "const end = Date.now() + 1500; while (Date.now() < end) {} 'done'" }))
            .send()
            .expect("the daemon answers")
            .json::<Value>()
            .expect("a JSON answer")
    });
    let running = eventually(Duration::from_secs(5), "the first execution to be running", || {
        let (_, list) = daemon.get(&format!("/executions?session_id={s}"));
        list.as_array()?.iter().find(|e| e["status"] == "running").map(|e| e["id"].clone())
    });
    let started = Instant::now();
    let (status, refused) = repl(&daemon, &s, "1");
    assert!(started.elapsed() < Duration::from_millis(500), "refused at once, not queued");
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("SESSION_BUSY")), "{refused}");
    assert_eq!(refused["error"]["details"]["running_execution_id"], running);
    assert_eq!(first.join().expect("the first returns")["result"]["json"], "done");
}

fn exec_capability(programs: &[&str]) -> Value {
    json!({ "kind": "module", "name": "exec", "enabled": true, "config": { "allow": programs } })
}

/// The error message of an execution that threw, or its value's JSON.
fn outcome(daemon: &Daemon, session: &str, input: &str) -> Result<Value, String> {
    let (status, execution) = repl(daemon, session, input);
    assert_eq!(status, 201, "{input}: {execution}");
    match execution["status"].as_str() {
        Some("ok") => Ok(execution["result"]["json"].clone()),
        _ => Err(execution["error"]["message"].as_str().unwrap_or_default().to_owned()),
    }
}

#[test]
fn the_fs_module_works_inside_the_worktree_and_refuses_escapes() {
    let home = Home::new();
    home.write("data/in.txt", "from disk");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), home.worktree().join("link")).unwrap();
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &["fs"], &[]));
    assert_eq!(outcome(&daemon, &s, "require('fs').readFileSync('data/in.txt')"), Ok(json!("from disk")));
    let write =
        "const fs = require('fs'); fs.mkdirSync('out'); fs.writeFileSync('out/x.txt', 'hi'); fs.readdirSync('out')";
    assert_eq!(outcome(&daemon, &s, write), Ok(json!(["x.txt"])));
    assert_eq!(std::fs::read_to_string(home.worktree().join("out/x.txt")).unwrap(), "hi");
    for escape in [
        "require('fs').readFileSync('../vm.db')",
        "require('fs').readFileSync('/etc/hostname')",
        "require('fs').readFileSync('link/secret')",
        "require('fs').writeFileSync('link/planted', 'x')",
    ] {
        let message = outcome(&daemon, &s, escape).expect_err(escape);
        assert!(message.starts_with("Error: fs.") && message.contains("denied"), "{escape}: {message}");
    }
    assert!(!outside.path().join("planted").exists());
}

#[test]
fn the_exec_module_runs_allowed_programs_only() {
    let home = Home::new();
    home.write("file.txt", "x");
    let daemon = Daemon::start(&home);
    let t = template(&daemon, json!({}), &["exec"], &[exec_capability(&["ls", "echo"])]);
    let s = session(&daemon, &home, &t);
    let (status, execution) = repl(&daemon, &s, "require('exec').run('ls', ['-1'])");
    assert_eq!(status, 201, "{execution}");
    assert_eq!(execution["result"]["json"], json!({ "code": 0, "signal": null, "stdout": "file.txt\n", "stderr": "" }));
    let types: Vec<_> = execution["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["input_echo", "stdout", "value"]);
    let refused = outcome(&daemon, &s, "require('exec').run('cat', ['file.txt'])").expect_err("cat is not allowed");
    assert!(refused.contains("program 'cat' is not allowed; allowed programs: echo, ls"), "{refused}");
    let untouched = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let message = outcome(&daemon, &untouched, "require('exec')").expect_err("exec is not enabled");
    assert!(message.contains("module \"exec\" is not enabled for this template"), "{message}");
}

#[test]
fn the_database_module_keeps_a_sqlite_file_in_the_worktree() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let s = session(&daemon, &home, &template(&daemon, json!({}), &["database"], &[]));
    let script = "const db = require('database'); db.configure('notes.db'); \
                  db.exec('CREATE TABLE n (t TEXT)'); db.exec('INSERT INTO n VALUES (?)', ['hello']); \
                  db.query('SELECT t FROM n')";
    assert_eq!(outcome(&daemon, &s, script), Ok(json!([{ "t": "hello" }])));
    assert!(home.worktree().join("notes.db").is_file());
    let refused = outcome(&daemon, &s, "db.configure('../elsewhere.db')").expect_err("outside the worktree");
    assert!(refused.contains("denied"), "{refused}");
}
