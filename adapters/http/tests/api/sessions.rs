//! Session lifecycle and the runtime summary.

use poem::http::Method;
use serde_json::json;

use crate::harness::spawn_app;

#[tokio::test]
async fn a_session_is_created_ready_listed_and_closed() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "t" })).await;
    let created = app.post("/api/v1/sessions", app.session_body(&template)).await;
    let session = created.assert_status(201).clone();
    let id = session["id"].as_str().unwrap();
    assert_eq!(session["status"], "ready");
    assert_eq!(session["template_id"], template.as_str());
    assert_eq!(session["workspace_id"], "ws-1");
    assert_eq!(session["base_commit_oid"], "0123abcd");
    assert_eq!(session["worktree_path"], app.worktree.to_str().unwrap());
    assert!(session["closed_at"].is_null());

    let summary = app.get("/api/v1/runtime/summary").await;
    assert_eq!(summary.body, json!({ "active_sessions": 1, "active_session_ids": [id] }));

    let closed = app.post(&format!("/api/v1/sessions/{id}/close"), json!({})).await;
    let closed = closed.assert_status(200);
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string());
    let summary = app.get("/api/v1/runtime/summary").await;
    assert_eq!(summary.body, json!({ "active_sessions": 0, "active_session_ids": [] }));

    let again = app.post(&format!("/api/v1/sessions/{id}/close"), json!({})).await;
    assert_eq!(again.assert_status(200)["closed_at"], closed["closed_at"], "closing twice is harmless");
    let fetched = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(fetched.body["status"], "closed");
}

#[tokio::test]
async fn delete_closes_a_session_and_keeps_its_record() {
    let app = spawn_app().await;
    let id = app.ready_session().await;
    let deleted = app.call(Method::DELETE, &format!("/api/v1/sessions/{id}"), None).await;
    assert_eq!(deleted.assert_status(200)["status"], "closed");
    assert_eq!(app.get(&format!("/api/v1/sessions/{id}")).await.body["status"], "closed");
    app.repl(&id, "1").await.assert_error(409, "SESSION_NOT_READY");
}

#[tokio::test]
async fn sessions_are_filtered_by_status_and_listed_newest_first() {
    let app = spawn_app().await;
    let first = app.ready_session().await;
    let second = app.ready_session().await;
    app.post(&format!("/api/v1/sessions/{first}/close"), json!({})).await;
    let all = app.get("/api/v1/sessions").await;
    let ids: Vec<_> = all.body.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [second.clone(), first.clone()]);
    let ready = app.get("/api/v1/sessions?status=ready").await;
    assert_eq!(ready.body.as_array().unwrap().len(), 1);
    assert_eq!(ready.body[0]["id"], second.as_str());
    let closed = app.get("/api/v1/sessions?status=closed").await;
    assert_eq!(closed.body[0]["id"], first.as_str());
    app.get("/api/v1/sessions?status=sleeping").await.assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn startup_files_run_in_order_as_startup_executions() {
    let app = spawn_app().await;
    app.write("init/b.js", "globalThis.order.push('b'); console.log('b ran');");
    app.write("init/a.js", "globalThis.order = ['a'];");
    let template = app.template(json!({ "name": "boot" })).await;
    let base = format!("/api/v1/templates/{template}/startup-files");
    app.post(&base, json!({ "path": "init/b.js", "order_index": 20 })).await.assert_status(201);
    app.post(&base, json!({ "path": "init/a.js", "order_index": 10 })).await.assert_status(201);
    let session = app.post("/api/v1/sessions", app.session_body(&template)).await;
    let id = session.assert_status(201)["id"].as_str().unwrap().to_owned();

    let order = app.repl(&id, "order.join(',')").await;
    assert_eq!(crate::harness::value_of(&order.body)["json"], "a,b");
    let executions = app.get(&format!("/api/v1/executions?session_id={id}")).await;
    let kinds: Vec<_> = executions.body.as_array().unwrap().iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds, [json!("repl"), json!("startup"), json!("startup")]);
    let b_run = &executions.body[1];
    assert_eq!(b_run["path"], "init/b.js");
    let events = app.get(&format!("/api/v1/executions/{}/events", b_run["id"].as_str().unwrap())).await;
    assert!(events.body.as_array().unwrap().iter().any(|e| e["payload"]["text"] == "b ran"));
}

#[tokio::test]
async fn a_failing_startup_file_crashes_the_session_with_the_reason() {
    let app = spawn_app().await;
    app.write("boom.js", "throw new TypeError('bad config');");
    let template = app.template(json!({ "name": "boom" })).await;
    app.post(&format!("/api/v1/templates/{template}/startup-files"), json!({ "path": "boom.js" })).await;
    let failed = app.post("/api/v1/sessions", app.session_body(&template)).await;
    let details = failed.assert_error(422, "STARTUP_FAILED").clone();
    let id = details["session_id"].as_str().expect("details carry the session id");
    let session = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(session.body["status"], "crashed");
    assert!(session.body["last_error"].as_str().unwrap().contains("bad config"), "{}", session.body);
    assert_eq!(app.get("/api/v1/runtime/summary").await.body["active_sessions"], 0);
}

#[tokio::test]
async fn a_missing_startup_file_crashes_the_session() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "missing" })).await;
    app.post(&format!("/api/v1/templates/{template}/startup-files"), json!({ "path": "nope.js" })).await;
    let failed = app.post("/api/v1/sessions", app.session_body(&template)).await;
    failed.assert_error(422, "STARTUP_FAILED");
    assert!(failed.body["error"]["message"].as_str().unwrap().contains("nope.js"));
}

#[tokio::test]
async fn a_missing_library_fails_the_start_and_says_how_to_fix_it() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "lib", "libraries": ["lodash-4.17.21"] })).await;
    let failed = app.post("/api/v1/sessions", app.session_body(&template)).await;
    failed.assert_error(422, "STARTUP_FAILED");
    assert!(failed.body["error"]["message"].as_str().unwrap().contains("libs download"), "{}", failed.body);
}

#[tokio::test]
async fn a_cached_library_is_loaded_into_the_global_scope() {
    let app = spawn_app().await;
    std::fs::write(
        app.dir.path().join("cache/lodash-4.17.21.js"),
        "var _ = { chunk: function (a, n) { var out = []; for (var i = 0; i < a.length; i += n) out.push(a.slice(i, i + n)); return out; } };",
    )
    .unwrap();
    let template = app.template(json!({ "name": "lib", "libraries": ["lodash-4.17.21"] })).await;
    let session = app.post("/api/v1/sessions", app.session_body(&template)).await;
    let id = session.assert_status(201)["id"].as_str().unwrap().to_owned();
    let chunked = app.repl(&id, "_.chunk([1,2,3,4,5], 2)").await;
    assert_eq!(crate::harness::value_of(&chunked.body)["json"], json!([[1, 2], [3, 4], [5]]));
}
