//! The README's curl walkthrough, step by step, against the real binary.

use serde_json::json;

use crate::harness::{path_str, Daemon, Home};

#[test]
fn the_readme_walkthrough_answers_with_the_documented_codes() {
    let home = Home::new();
    home.write("hello.js", "console.log('hello from a file'); 6 * 7");
    let daemon = Daemon::start(&home);

    assert_eq!(daemon.get("/health"), (200, json!({ "status": "ok" })));

    let (status, template) = daemon.post("/templates", json!({ "name": "demo" }));
    assert_eq!(status, 201, "{template}");
    let template_id = template["id"].as_str().unwrap();

    let (status, session) = daemon.post(
        "/sessions",
        json!({
            "template_id": template_id,
            "workspace_id": "ws-1",
            "base_commit_oid": "HEAD",
            "worktree_path": path_str(&home.worktree()),
        }),
    );
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["status"], "ready");
    let session_id = session["id"].as_str().unwrap();

    let (status, first) = daemon.post("/executions/repl", json!({ "session_id": session_id, "input": "let x = 20" }));
    assert_eq!(status, 201, "{first}");
    let (_, second) = daemon.post("/executions/repl", json!({ "session_id": session_id, "input": "x * 2 + 2" }));
    assert_eq!(second["result"]["json"], 42);

    let (status, file_run) =
        daemon.post("/executions/run-file", json!({ "session_id": session_id, "path": "hello.js" }));
    assert_eq!(status, 201, "{file_run}");
    assert_eq!(file_run["events"][1]["payload"]["text"], "hello from a file");
    assert_eq!(file_run["result"]["json"], 42);

    let (status, listed) = daemon.get(&format!("/executions?session_id={session_id}&limit=2"));
    assert_eq!(status, 200);
    assert_eq!(listed[0]["id"], file_run["id"]);

    let (status, events) = daemon.get(&format!("/executions/{}/events?after_seq=1", file_run["id"].as_str().unwrap()));
    assert_eq!(status, 200);
    assert_eq!(events[0]["seq"], 2);

    let (status, refused) =
        daemon.post("/executions/run-file", json!({ "session_id": session_id, "path": "../etc/passwd" }));
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("INVALID_PATH")));

    let (_, summary) = daemon.get("/runtime/summary");
    assert_eq!(summary["active_session_ids"], json!([session_id]));
    let (status, closed) = daemon.post(&format!("/sessions/{session_id}/close"), json!({}));
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")));
    let (status, not_ready) = daemon.post("/executions/repl", json!({ "session_id": session_id, "input": "x" }));
    assert_eq!((status, not_ready["error"]["code"].as_str()), (409, Some("SESSION_NOT_READY")));
}

#[test]
fn swagger_ui_and_the_openapi_document_are_served() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let docs = daemon.get_raw("/docs/");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().unwrap().to_lowercase().contains("swagger"));
    let spec = daemon.get_raw("/api/v1/openapi.json");
    assert_eq!(spec.status().as_u16(), 200);
    let spec: serde_json::Value = spec.json().unwrap();
    assert!(spec["paths"]["/executions/repl"]["post"].is_object());
    assert!(daemon.get_raw("/api/v1/health").headers().contains_key("x-request-id"));
}
