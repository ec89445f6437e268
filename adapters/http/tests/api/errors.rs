//! One test per row of SPEC §5's error table (the limit rows live with the
//! runtime), plus the envelope for unknown routes and wrong methods.

use poem::http::Method;
use serde_json::json;

use crate::harness::spawn_app;

#[tokio::test]
async fn a_missing_field_is_a_validation_error_naming_it() {
    let app = spawn_app().await;
    let answer = app.post("/api/v1/templates", json!({ "engine": "boa" })).await;
    let details = answer.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(details["field"], "name");
}

#[tokio::test]
async fn a_field_of_the_wrong_type_or_blank_is_a_validation_error() {
    let app = spawn_app().await;
    app.post("/api/v1/templates", json!({ "name": 5 })).await.assert_error(400, "VALIDATION_ERROR");
    app.post("/api/v1/templates", json!({ "name": "   " })).await.assert_error(400, "VALIDATION_ERROR");
    let template = app.template(json!({ "name": "t" })).await;
    let path = format!("/api/v1/templates/{template}/settings");
    let zero = app.call(Method::PUT, &path, Some(json!({ "limits": { "wall_ms": 0 } }))).await;
    assert_eq!(zero.assert_error(400, "VALIDATION_ERROR")["field"], "limits.wall_ms");
    let negative = app.call(Method::PUT, &path, Some(json!({ "limits": { "wall_ms": -5 } }))).await;
    negative.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(app.get(&path).await.body["limits"]["wall_ms"], 30000, "nothing stored was lost");
}

#[tokio::test]
async fn a_bad_uuid_is_a_validation_error() {
    let app = spawn_app().await;
    app.get("/api/v1/templates/not-a-uuid").await.assert_error(400, "VALIDATION_ERROR");
    app.get("/api/v1/sessions/123").await.assert_error(400, "VALIDATION_ERROR");
    app.get("/api/v1/executions/xyz/events").await.assert_error(400, "VALIDATION_ERROR");
    let answer = app.repl("nope", "1").await;
    assert_eq!(answer.assert_error(400, "VALIDATION_ERROR")["field"], "session_id");
    let answer = app
        .post(
            "/api/v1/sessions",
            json!({ "template_id": "x", "workspace_id": "w", "base_commit_oid": "c", "worktree_path": "/tmp" }),
        )
        .await;
    assert_eq!(answer.assert_error(400, "VALIDATION_ERROR")["field"], "template_id");
}

#[tokio::test]
async fn a_bad_query_value_is_a_validation_error() {
    let app = spawn_app().await;
    app.get("/api/v1/executions?limit=ten").await.assert_error(400, "VALIDATION_ERROR");
    app.get("/api/v1/executions?session_id=zzz").await.assert_error(400, "VALIDATION_ERROR");
    app.get("/api/v1/sessions?status=READY").await.assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn malformed_json_is_an_invalid_request() {
    let app = spawn_app().await;
    for body in ["{", "{\"name\": }", "not json", "[1,2", "{\"name\":\"x\"} trailing"] {
        let answer = app.raw(Method::POST, "/api/v1/templates", "application/json", body).await;
        answer.assert_error(400, "INVALID_REQUEST");
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_or_is_missing_is_an_invalid_request() {
    let app = spawn_app().await;
    for body in ["", "[]", "42", "\"name\"", "null"] {
        let answer = app.raw(Method::POST, "/api/v1/templates", "application/json", body).await;
        answer.assert_error(400, "INVALID_REQUEST");
    }
    let answer = app.raw(Method::POST, "/api/v1/templates", "text/plain", "{\"name\":\"x\"}").await;
    answer.assert_error(400, "INVALID_REQUEST");
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_payload_too_large() {
    let app = spawn_app().await;
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(vm_http::payload::MAX_BODY_BYTES));
    let answer = app.raw(Method::POST, "/api/v1/templates", "application/json", &huge).await;
    answer.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(app.get("/api/v1/templates").await.body, json!([]));
}

#[tokio::test]
async fn an_unknown_field_is_an_invalid_request() {
    let app = spawn_app().await;
    app.post("/api/v1/templates", json!({ "name": "t", "colour": "blue" })).await.assert_error(400, "INVALID_REQUEST");
    app.post("/api/v1/templates", json!({ "name": "t", "settings": { "limits": { "wall": 1 } } }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    let session = app.ready_session().await;
    app.post("/api/v1/executions/repl", json!({ "session_id": session, "input": "1", "timeout": 5 }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    assert_eq!(app.get("/api/v1/templates").await.body.as_array().unwrap().len(), 1, "nothing extra was stored");
}

#[tokio::test]
async fn unknown_resources_are_not_found_with_their_own_codes() {
    let app = spawn_app().await;
    let ghost = "00000000-0000-4000-8000-000000000000";
    app.get(&format!("/api/v1/templates/{ghost}")).await.assert_error(404, "TEMPLATE_NOT_FOUND");
    app.get(&format!("/api/v1/templates/{ghost}/settings")).await.assert_error(404, "TEMPLATE_NOT_FOUND");
    app.post(&format!("/api/v1/templates/{ghost}/modules"), json!({ "name": "fs" }))
        .await
        .assert_error(404, "TEMPLATE_NOT_FOUND");
    app.get(&format!("/api/v1/sessions/{ghost}")).await.assert_error(404, "SESSION_NOT_FOUND");
    app.post(&format!("/api/v1/sessions/{ghost}/close"), json!({})).await.assert_error(404, "SESSION_NOT_FOUND");
    app.repl(ghost, "1").await.assert_error(404, "SESSION_NOT_FOUND");
    app.get(&format!("/api/v1/executions/{ghost}")).await.assert_error(404, "EXECUTION_NOT_FOUND");
    app.get(&format!("/api/v1/executions/{ghost}/events")).await.assert_error(404, "EXECUTION_NOT_FOUND");
    let session = app.post("/api/v1/sessions", app.session_body(ghost)).await;
    session.assert_error(404, "TEMPLATE_NOT_FOUND");
}

#[tokio::test]
async fn a_missing_file_is_file_not_found() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let answer = app.post("/api/v1/executions/run-file", json!({ "session_id": session, "path": "missing.js" })).await;
    assert_eq!(answer.assert_error(404, "FILE_NOT_FOUND")["path"], "missing.js");
}

#[tokio::test]
async fn a_session_that_is_not_ready_refuses_executions() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    app.post(&format!("/api/v1/sessions/{session}/close"), json!({})).await;
    let details = app.repl(&session, "1").await.assert_error(409, "SESSION_NOT_READY").clone();
    assert_eq!(details["status"], "closed");
    app.write("x.js", "1");
    app.post("/api/v1/executions/run-file", json!({ "session_id": session, "path": "x.js" }))
        .await
        .assert_error(409, "SESSION_NOT_READY");
}

#[tokio::test]
async fn a_startup_mode_other_than_eval_is_unsupported() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "t" })).await;
    let answer = app
        .post(&format!("/api/v1/templates/{template}/startup-files"), json!({ "path": "a.js", "mode": "module" }))
        .await;
    answer.assert_error(422, "STARTUP_MODE_UNSUPPORTED");
}

#[tokio::test]
async fn built_in_and_unknown_modules_are_not_allowed() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "t" })).await;
    for name in ["json", "Math", "console", "left-pad"] {
        let answer = app.post(&format!("/api/v1/templates/{template}/modules"), json!({ "name": name })).await;
        assert_eq!(answer.assert_error(422, "MODULE_NOT_ALLOWED")["allowed"], json!(["database", "exec", "fs"]));
    }
    app.post("/api/v1/templates", json!({ "name": "t", "exposed_modules": ["json"] }))
        .await
        .assert_error(422, "MODULE_NOT_ALLOWED");
    assert_eq!(app.get(&format!("/api/v1/templates/{template}/modules")).await.body, json!([]));
}

#[tokio::test]
async fn a_library_outside_the_catalog_is_not_available() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "t" })).await;
    let answer = app.post(&format!("/api/v1/templates/{template}/libraries"), json!({ "name": "lodash" })).await;
    let details = answer.assert_error(422, "LIBRARY_NOT_AVAILABLE");
    assert!(details["available"].as_array().unwrap().contains(&json!("lodash-4.17.21")));
}

#[tokio::test]
async fn an_unknown_engine_is_unsupported() {
    let app = spawn_app().await;
    let answer = app.post("/api/v1/templates", json!({ "name": "t", "engine": "v8" })).await;
    assert_eq!(answer.assert_error(422, "ENGINE_UNSUPPORTED")["supported"], json!(["boa"]));
}

#[tokio::test]
async fn a_failed_start_is_startup_failed_with_the_session_id() {
    let app = spawn_app().await;
    app.write("init.js", "throw new Error('nope')");
    let template = app.template(json!({ "name": "t" })).await;
    app.post(&format!("/api/v1/templates/{template}/startup-files"), json!({ "path": "init.js" })).await;
    let answer = app.post("/api/v1/sessions", app.session_body(&template)).await;
    let details = answer.assert_error(422, "STARTUP_FAILED");
    assert!(details["session_id"].is_string());
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_use_the_envelope() {
    let app = spawn_app().await;
    app.get("/api/v1/nothing-here").await.assert_error(404, "NOT_FOUND");
    app.get("/nothing-at-all").await.assert_error(404, "NOT_FOUND");
    app.call(Method::PATCH, "/api/v1/templates", None).await.assert_error(405, "METHOD_NOT_ALLOWED");
    app.call(Method::GET, "/api/v1/executions/repl", None).await.assert_error(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn a_wrong_method_is_answered_with_the_allowed_ones() {
    let app = spawn_app().await;
    for (method, path, allowed) in [
        (Method::PATCH, "/api/v1/sessions/6a624238-6e16-4003-83c9-09125e07aecb", "DELETE, GET"),
        (Method::PUT, "/api/v1/templates", "GET, POST"),
        (Method::GET, "/api/v1/executions/repl", "POST"),
    ] {
        let answer = app.request(method.clone(), path, crate::harness::As::Admin).send().await;
        assert_eq!(answer.0.status().as_u16(), 405, "{method} {path}");
        let header = answer.0.headers().get("allow").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(header.as_deref(), Some(allowed), "{method} {path}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_valid_ones_are_echoed() {
    let app = spawn_app().await;
    let ok = app.get("/api/v1/health").await;
    assert_eq!(ok.body, json!({ "status": "ok" }));
    let generated = ok.request_id.expect("a request id on success");
    assert_eq!(generated.len(), 36);
    let error = app.get("/api/v1/nowhere").await;
    assert!(error.request_id.is_some(), "a request id on errors");
    let echoed = app
        .request(poem::http::Method::GET, "/api/v1/health", crate::harness::As::Nobody)
        .header("X-Request-Id", "trace-42.a")
        .send()
        .await;
    assert_eq!(echoed.0.headers()["x-request-id"], "trace-42.a");
    let replaced = app
        .request(poem::http::Method::GET, "/api/v1/health", crate::harness::As::Nobody)
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await;
    assert_ne!(replaced.0.headers()["x-request-id"], "bad id with spaces");
}
