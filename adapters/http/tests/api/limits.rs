//! Limit errors over HTTP, with real worker processes: each limit's status,
//! code and `details`, the stored execution and its closing `system` event,
//! and what happens to the session: a limit that kills the worker rolls the
//! session back to its checkpoint (or, with checkpoints off, loses it).

use poem::http::Method;
use serde_json::{json, Value};

use crate::harness::{spawn_app, TestApp};

/// A ready session of a template with these settings; returns its id.
async fn session_with(app: &TestApp, settings: Value) -> String {
    let template = app.template(json!({ "name": "limits" })).await;
    app.call(Method::PUT, &format!("/api/v1/templates/{template}/settings"), Some(settings)).await.assert_status(200);
    let answer = app.post("/api/v1/sessions", app.session_body(&template)).await;
    answer.assert_status(201)["id"].as_str().expect("a session id").to_owned()
}

/// One limit case: what runs, and what must come back.
struct Case {
    label: &'static str,
    settings: Value,
    input: &'static str,
    code: &'static str,
    details: Value,
    status: &'static str,
    /// Words the closing `system` event must contain: the limit and its figure.
    system: [&'static str; 2],
    session: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "wall time",
            settings: json!({ "limits": { "wall_ms": 400 } }),
            input: "while (true) {}",
            code: "EXECUTION_TIMEOUT",
            details: json!({ "limit": "wall_ms", "limit_ms": 400, "runtime_lost": false, "rolled_back": true }),
            status: "timeout",
            system: ["wall_ms", "400 ms"],
            session: "ready",
        },
        Case {
            label: "cpu time",
            settings: json!({ "limits": { "cpu_ms": 250, "wall_ms": 20000 } }),
            input: "for (;;) {}",
            code: "EXECUTION_TIMEOUT",
            details: json!({ "limit": "cpu_ms", "limit_ms": 250, "runtime_lost": false, "rolled_back": true }),
            status: "timeout",
            system: ["cpu_ms", "250 ms"],
            session: "ready",
        },
        Case {
            label: "memory",
            settings: json!({ "limits": { "mem_mb": 48 } }),
            input: "const keep = []; for (;;) keep.push('x'.repeat(65536) + keep.length)",
            code: "MEMORY_LIMIT_EXCEEDED",
            details: json!({ "limit": "mem_mb", "limit_mb": 48, "runtime_lost": false, "rolled_back": true }),
            status: "error",
            system: ["memory limit", "48 MB"],
            session: "ready",
        },
        Case {
            label: "events",
            settings: json!({ "limits": { "max_events": 3 } }),
            input: "for (;;) console.log('again')",
            code: "OUTPUT_LIMIT_EXCEEDED",
            details: json!({ "limit": "max_events", "value": 3, "runtime_lost": false, "rolled_back": false }),
            status: "error",
            system: ["max_events", "3"],
            session: "ready",
        },
        Case {
            label: "output",
            settings: json!({ "limits": { "max_output_kb": 2 } }),
            input: "console.log('x'.repeat(5000))",
            code: "OUTPUT_LIMIT_EXCEEDED",
            details: json!({ "limit": "max_output_kb", "value": 2, "runtime_lost": false, "rolled_back": false }),
            status: "error",
            system: ["max_output_kb", "2"],
            session: "ready",
        },
    ]
}

#[tokio::test]
async fn each_limit_answers_422_with_its_code_and_details_and_stores_the_execution() {
    let app = spawn_app().await;
    for case in cases() {
        let label = case.label;
        let session = session_with(&app, case.settings).await;
        app.repl(&session, "globalThis.before = 'kept'").await.assert_status(201);
        let answer = app.repl(&session, &format!("globalThis.during = 1; {}", case.input)).await;
        let details = answer.assert_error(422, case.code).clone();
        for (key, expected) in case.details.as_object().unwrap() {
            assert_eq!(&details[key], expected, "{label}: details.{key} of {details}");
        }
        let execution_id = details["execution_id"].as_str().unwrap_or_else(|| panic!("{label}: no execution_id"));
        let execution = app.get(&format!("/api/v1/executions/{execution_id}")).await;
        let execution = execution.assert_status(200);
        assert_eq!(execution["status"], case.status, "{label}: {execution}");
        assert_eq!(execution["error"]["code"], case.code, "{label}: {execution}");
        let events = app.get(&format!("/api/v1/executions/{execution_id}/events")).await;
        let events = events.assert_status(200).as_array().unwrap().clone();
        assert_eq!(events.first().unwrap()["type"], "input_echo", "{label}");
        let last = events.last().unwrap();
        assert_eq!(last["type"], "system", "{label}: {events:?}");
        let message = last["payload"]["message"].as_str().unwrap();
        for word in case.system {
            assert!(message.contains(word), "{label}: {word:?} in {message}");
        }
        let session_now = app.get(&format!("/api/v1/sessions/{session}")).await;
        let session_now = session_now.assert_status(200);
        assert_eq!(session_now["status"], case.session, "{label}: {session_now}");
        let state = app.repl(&session, "[before, typeof during]").await;
        let during = if details["rolled_back"] == true { "undefined" } else { "number" };
        assert_eq!(
            crate::harness::value_of(state.assert_status(201))["json"],
            json!(["kept", during]),
            "{label}: state after the limit"
        );
    }
    let summary = app.get("/api/v1/runtime/summary").await;
    assert_eq!(summary.assert_status(200)["active_sessions"], 5, "every session kept a runtime");
}

#[tokio::test]
async fn without_checkpoints_a_limit_that_kills_the_worker_crashes_the_session() {
    let app = spawn_app().await;
    let settings = json!({ "limits": { "wall_ms": 300 }, "runtime": { "checkpoints": false } });
    let session = session_with(&app, settings).await;
    let answer = app.repl(&session, "while (true) {}").await;
    let details = answer.assert_error(422, "EXECUTION_TIMEOUT");
    assert_eq!((&details["runtime_lost"], &details["rolled_back"]), (&json!(true), &json!(false)));
    let session_now = app.get(&format!("/api/v1/sessions/{session}")).await;
    let session_now = session_now.assert_status(200);
    assert_eq!(session_now["status"], "crashed");
    assert!(session_now["last_error"].as_str().unwrap().contains("wall_ms"), "{session_now}");
    app.repl(&session, "1").await.assert_error(409, "SESSION_NOT_READY");
}

#[tokio::test]
async fn events_before_a_limit_are_kept_in_order() {
    let app = spawn_app().await;
    let session = session_with(&app, json!({ "limits": { "wall_ms": 300 } })).await;
    let answer = app.repl(&session, "console.log('one'); console.warn('two'); while (true) {}").await;
    let execution_id = answer.assert_error(422, "EXECUTION_TIMEOUT")["execution_id"].as_str().unwrap().to_owned();
    let events = app.get(&format!("/api/v1/executions/{execution_id}/events")).await;
    let events = events.assert_status(200).as_array().unwrap().clone();
    let shape: Vec<_> =
        events.iter().map(|e| (e["seq"].as_i64().unwrap(), e["type"].as_str().unwrap().to_owned())).collect();
    assert_eq!(shape, [(1, "input_echo".into()), (2, "console".into()), (3, "console".into()), (4, "system".into())]);
    assert_eq!(events[1]["payload"], json!({ "level": "log", "text": "one" }));
    assert_eq!(events[2]["payload"], json!({ "level": "warn", "text": "two" }));
}
