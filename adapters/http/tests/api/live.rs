//! Live executions over HTTP (SPEC §10), with real worker processes:
//! submitting without waiting, the Server-Sent Events stream and its exact
//! resume, cancel with rollback, forks, and the checkpoint switch.

use std::time::{Duration, Instant};

use futures::StreamExt;
use poem::http::Method;
use serde_json::{json, Value};

use crate::harness::{spawn_app, As, TestApp};

/// One parsed Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads an execution's event stream until its `end` (or `error`) event,
/// each event with the time it arrived.
async fn stream(app: &TestApp, execution: &str, last_event_id: Option<&str>) -> Vec<(Sse, Instant)> {
    let path = format!("/api/v1/executions/{execution}/events");
    let mut request = app.request(Method::GET, &path, As::Admin).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await;
    assert_eq!(response.0.status().as_u16(), 200);
    assert_eq!(response.0.headers()["content-type"], "text/event-stream");
    let mut body = response.0.into_body().into_bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut sse = Sse { event: "message".into(), id: None, data: Value::Null };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    sse.event = value.to_owned();
                } else if let Some(value) = line.strip_prefix("id: ") {
                    sse.id = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            if data.is_empty() {
                continue; // a heartbeat comment
            }
            sse.data = serde_json::from_str(&data).expect("SSE data is JSON");
            let last = sse.event == "end" || sse.event == "error";
            events.push((sse, Instant::now()));
            if last {
                return events;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("the stream ends within 30 s");
        match chunk {
            Some(Ok(bytes)) => buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
            other => panic!("the stream ended before its end event: {other:?} after {events:?}"),
        }
    }
}

async fn submit(app: &TestApp, session: &str, input: &str) -> Value {
    let body = json!({ "session_id": session, "input": input, "wait": false });
    let answer = app.post("/api/v1/executions/repl", body).await;
    answer.assert_status(202).clone()
}

async fn session_with(app: &TestApp, settings: Value) -> String {
    let template = app.template(json!({ "name": "live" })).await;
    app.call(Method::PUT, &format!("/api/v1/templates/{template}/settings"), Some(settings)).await.assert_status(200);
    let answer = app.post("/api/v1/sessions", app.session_body(&template)).await;
    answer.assert_status(201)["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_execution_streams_its_events_as_they_happen_then_its_end() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let started = Instant::now();
    let running = submit(
        &app,
        &session,
        "console.log('first'); const t = Date.now(); while (Date.now() - t < 1500) {} console.log('second'); 42",
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(1000), "202 comes at once, not after the run");
    assert_eq!(running["status"], "running");
    let id = running["id"].as_str().unwrap();
    let events = stream(&app, id, None).await;
    let kinds: Vec<_> = events.iter().map(|(e, _)| e.event.as_str()).collect();
    assert_eq!(kinds, ["event", "event", "event", "event", "end"], "{events:?}");
    let (first, first_at) = &events[1];
    let (second, second_at) = &events[2];
    assert_eq!(first.data["payload"]["text"], "first");
    assert_eq!(second.data["payload"]["text"], "second");
    assert!(*second_at - *first_at >= Duration::from_millis(1000), "'first' arrived live, not with the end");
    let ts = |e: &Sse| chrono::DateTime::parse_from_rfc3339(e.data["ts"].as_str().unwrap()).unwrap();
    assert!(ts(second) - ts(first) >= chrono::TimeDelta::milliseconds(1000), "each event has its own time");
    assert_eq!(events.iter().filter_map(|(e, _)| e.id.clone()).collect::<Vec<_>>(), ["1", "2", "3", "4"]);
    let end = &events[4].0.data;
    assert_eq!((end["status"].as_str(), end["result"]["json"].as_i64()), (Some("ok"), Some(42)));
}

#[tokio::test]
async fn a_stream_resumes_exactly_after_last_event_id_and_matches_the_stored_list() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let done = app.repl(&session, "for (let i = 0; i < 5; i++) console.log('line ' + i); 'done'").await;
    let id = done.assert_status(201)["id"].as_str().unwrap().to_owned();
    let stored = app.get(&format!("/api/v1/executions/{id}/events")).await.assert_status(200).clone();
    let stored = stored.as_array().unwrap();
    let whole = stream(&app, &id, None).await;
    let streamed: Vec<Value> = whole.iter().filter(|(e, _)| e.event == "event").map(|(e, _)| e.data.clone()).collect();
    assert_eq!(&streamed, stored, "the stream is the stored list");
    let resumed = stream(&app, &id, Some("3")).await;
    let seqs: Vec<i64> =
        resumed.iter().filter(|(e, _)| e.event == "event").map(|(e, _)| e.data["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (4..=stored.len() as i64).collect::<Vec<_>>(), "no gap, no duplicate");
    assert_eq!(resumed.last().unwrap().0.event, "end");
    let path = format!("/api/v1/executions/{id}/events");
    let bad =
        app.request(Method::GET, &path, As::Admin).header("accept", "text/event-stream").header("last-event-id", "x");
    crate::harness::answer(bad.send().await).await.assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_tight_loop_at_once_and_rolls_the_session_back() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    app.repl(&session, "globalThis.kept = 41").await.assert_status(201);
    let running = submit(&app, &session, "globalThis.kept = 0; globalThis.lost = 1; while (true) {}").await;
    let id = running["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let cancelled = app.post(&format!("/api/v1/executions/{id}/cancel"), json!(null)).await;
    let took = asked.elapsed();
    let cancelled = cancelled.assert_status(200);
    eprintln!("cancel answered in {took:?}");
    assert!(took < Duration::from_secs(2), "cancel took {took:?}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["error"]["code"], "CANCELLED");
    assert_eq!(cancelled["error"]["details"]["rolled_back"], true, "{cancelled}");
    let session_now = app.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(session_now.assert_status(200)["status"], "ready");
    let state = app.repl(&session, "[kept, typeof lost]").await;
    assert_eq!(crate::harness::value_of(state.assert_status(201))["json"], json!([41, "undefined"]));
    let again = app.post(&format!("/api/v1/executions/{id}/cancel"), json!(null)).await;
    assert_eq!(again.assert_error(409, "EXECUTION_NOT_RUNNING")["status"], "cancelled");
    let unknown = app.post("/api/v1/executions/00000000-0000-4000-8000-000000000000/cancel", json!(null)).await;
    unknown.assert_error(404, "EXECUTION_NOT_FOUND");
    app.post("/api/v1/executions/nope/cancel", json!(null)).await.assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_checkpoints_a_cancel_loses_the_session() {
    let app = spawn_app().await;
    let session = session_with(&app, json!({ "runtime": { "checkpoints": false } })).await;
    let running = submit(&app, &session, "while (true) {}").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled =
        app.post(&format!("/api/v1/executions/{}/cancel", running["id"].as_str().unwrap()), json!(null)).await;
    let cancelled = cancelled.assert_status(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["error"]["details"], json!({ "rolled_back": false, "runtime_lost": true }));
    let session_now = app.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(session_now.assert_status(200)["status"], "crashed");
    let settings = app.get(&format!("/api/v1/sessions/{session}")).await;
    let template = settings.body["template_id"].as_str().unwrap().to_owned();
    let settings = app.get(&format!("/api/v1/templates/{template}/settings")).await;
    assert_eq!(settings.assert_status(200)["runtime"]["checkpoints"], false);
}

#[tokio::test]
async fn a_fork_copies_the_heap_then_each_session_goes_its_own_way() {
    let app = spawn_app().await;
    let source = app.ready_session().await;
    app.repl(&source, "globalThis.x = 1; function twice(n) { return 2 * n }").await.assert_status(201);
    let forked = app.post(&format!("/api/v1/sessions/{source}/fork"), json!(null)).await;
    let fork = forked.assert_status(201).clone();
    let fork_id = fork["id"].as_str().unwrap().to_owned();
    assert_eq!(fork["forked_from"], source.as_str());
    assert_eq!(fork["status"], "ready");
    let source_row = app.get(&format!("/api/v1/sessions/{source}")).await.body;
    assert_eq!(fork["worktree_path"], source_row["worktree_path"]);
    assert_eq!(source_row["forked_from"], Value::Null);
    let seen = app.repl(&fork_id, "twice(x)").await;
    assert_eq!(crate::harness::value_of(seen.assert_status(201))["json"], 2, "the fork has the source's heap");
    app.repl(&source, "x = 10").await.assert_status(201);
    app.repl(&fork_id, "x = 20").await.assert_status(201);
    let in_source = app.repl(&source, "x").await;
    assert_eq!(crate::harness::value_of(in_source.assert_status(201))["json"], 10);
    let in_fork = app.repl(&fork_id, "x").await;
    assert_eq!(crate::harness::value_of(in_fork.assert_status(201))["json"], 20);
    app.post(&format!("/api/v1/sessions/{source}/close"), json!(null)).await.assert_status(200);
    let after = app.repl(&fork_id, "x + 1").await;
    assert_eq!(crate::harness::value_of(after.assert_status(201))["json"], 21, "closing the source leaves the fork");
    let refused = app.post(&format!("/api/v1/sessions/{source}/fork"), json!(null)).await;
    refused.assert_error(409, "SESSION_NOT_READY");
    let unknown = app.post("/api/v1/sessions/00000000-0000-4000-8000-000000000000/fork", json!(null)).await;
    unknown.assert_error(404, "SESSION_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_session_cannot_be_forked_and_the_fork_waits_for_nothing() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let running = submit(&app, &session, "const t = Date.now(); while (Date.now() - t < 1000) {}").await;
    let refused = app.post(&format!("/api/v1/sessions/{session}/fork"), json!(null)).await;
    assert_eq!(refused.assert_error(409, "SESSION_BUSY")["running_execution_id"], running["id"]);
    let events = stream(&app, running["id"].as_str().unwrap(), None).await;
    assert_eq!(events.last().unwrap().0.data["status"], "ok");
    app.post(&format!("/api/v1/sessions/{session}/fork"), json!(null)).await.assert_status(201);
}
