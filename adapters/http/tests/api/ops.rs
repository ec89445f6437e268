//! Liveness, readiness and honest store failures: `/health` answers while
//! the daemon lives, `/ready` only while the store answers, the runtime can
//! start sessions and the daemon is not draining, and an operation whose
//! store is gone is 503 `STORE_UNAVAILABLE` with `Retry-After`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::Method;
use poem::test::TestClient;
use poem::EndpointExt;
use serde_json::json;
use vm_domain::paths::WorktreePolicy;
use vm_http::clock::SystemClock;
use vm_http::{AuthMode, Services, StorePorts};
use vm_runtime_boa::sandbox::SandboxMode;
use vm_runtime_boa::{BoaRuntime, FsLibraryCache};

use crate::harness::{access, answer, fresh_database, spawn_app, spawn_app_with, As, TestApp, LISTEN};

/// The store bounds its checks and pool waits at 2 s; allow for a slow machine.
const OUTAGE_ANSWER_BOUND: Duration = Duration::from_secs(3);

/// Calls `path` as `who`, and returns the answer, its `Retry-After` header and how long it took.
async fn timed(
    app: &TestApp,
    who: As<'_>,
    method: Method,
    path: &str,
) -> (crate::harness::Answer, Option<String>, Duration) {
    let started = Instant::now();
    let response = app.request(method, path, who).send().await;
    let retry_after = response.0.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (answer(response).await, retry_after, started.elapsed())
}

#[tokio::test]
async fn ready_answers_200_with_a_live_store_and_needs_no_token() {
    let app = spawn_app().await;
    let ready = app.call_as(As::Nobody, Method::GET, "/api/v1/ready", None).await;
    assert_eq!(
        ready.assert_status(200),
        &json!({ "status": "ready", "store": "ok", "runtime": "ok", "pending_writes": 0 })
    );
}

#[tokio::test]
async fn ready_answers_503_runtime_unavailable_when_no_session_could_start() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let store = vm_store::open(&fresh_database(dir.path())).await.expect("the test database opens");
    let stores = StorePorts {
        templates: store.templates.clone(),
        sessions: store.sessions.clone(),
        executions: store.executions.clone(),
        tokens: store.tokens.clone(),
        nodes: store.nodes.clone(),
        health: store.health.clone(),
    };
    // No worker can start from a program that does not exist.
    let runtime = BoaRuntime::new(cache.clone(), SandboxMode::Off).with_worker_program(dir.path().join("missing"));
    let services = Services::new(
        stores,
        Arc::new(runtime),
        Arc::new(FsLibraryCache::new(cache.clone())),
        Arc::new(SystemClock),
        WorktreePolicy::new(&[std::env::temp_dir()], &[cache]).unwrap(),
        crate::harness::node_config(),
    );
    let client = TestClient::new(vm_http::app(Arc::new(services), access(AuthMode::Required, &[], &[]), None).boxed());
    let started = Instant::now();
    let response = client.get("/api/v1/ready").header("host", LISTEN).send().await;
    let retry_after = response.0.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let ready = answer(response).await;
    let details = ready.assert_error(503, "RUNTIME_UNAVAILABLE");
    assert_eq!(details["checks"], json!({ "store": "ok", "runtime": "failed", "drain": "ok" }));
    assert!(!ready.body.to_string().contains("missing"), "the cause stays in the log: {}", ready.body);
    assert_eq!(retry_after.as_deref(), Some("2"));
    assert!(started.elapsed() < OUTAGE_ANSWER_BOUND, "answered in {:?}", started.elapsed());
}

#[tokio::test]
async fn a_draining_daemon_is_not_ready_refuses_new_executions_and_stays_alive() {
    let app = spawn_app_with(access(AuthMode::Off, &[], &[])).await;
    let session = app.ready_session().await;
    let report = app.services.executions.drain(Duration::from_secs(1)).await;
    assert_eq!(report.running, 0);
    let (ready, retry_after, _) = timed(&app, As::Nobody, Method::GET, "/api/v1/ready").await;
    let details = ready.assert_error(503, "SHUTTING_DOWN");
    assert_eq!(details["checks"], json!({ "store": "ok", "runtime": "ok", "drain": "draining" }));
    assert_eq!(retry_after.as_deref(), Some("2"));
    let repl = app
        .request(Method::POST, "/api/v1/executions/repl", As::Nobody)
        .body_json(&json!({ "session_id": session, "input": "1" }))
        .send()
        .await;
    let retry_after = repl.0.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    answer(repl).await.assert_error(503, "SHUTTING_DOWN");
    assert_eq!(retry_after.as_deref(), Some("2"));
    let health = app.call_as(As::Nobody, Method::GET, "/api/v1/health", None).await;
    assert_eq!(health.assert_status(200), &json!({ "status": "ok" }));
    let listed = app.call_as(As::Nobody, Method::GET, "/api/v1/sessions", None).await;
    listed.assert_status(200);
}

#[tokio::test]
async fn ready_answers_503_within_the_bound_when_the_store_is_gone_and_health_stays_200() {
    let app = spawn_app().await;
    app.store.close().await;
    let (ready, retry_after, took) = timed(&app, As::Nobody, Method::GET, "/api/v1/ready").await;
    let details = ready.assert_error(503, "STORE_UNAVAILABLE");
    assert!(took < OUTAGE_ANSWER_BOUND, "answered in {took:?}");
    assert_eq!(retry_after.as_deref(), Some("2"));
    assert!(details.get("execution_id").is_none(), "{details}");
    assert_eq!(details["checks"], json!({ "store": "failed", "runtime": "ok", "drain": "ok" }));
    let health = app.call_as(As::Nobody, Method::GET, "/api/v1/health", None).await;
    assert_eq!(health.assert_status(200), &json!({ "status": "ok" }), "liveness does not depend on the store");
}

#[tokio::test]
async fn an_authenticated_call_on_a_closed_store_is_503_store_unavailable_with_retry_after() {
    let app = spawn_app().await;
    app.store.close().await;
    for (method, path) in [(Method::GET, "/api/v1/templates"), (Method::GET, "/api/v1/whoami")] {
        let (answer, retry_after, took) = timed(&app, As::Admin, method, path).await;
        let details = answer.assert_error(503, "STORE_UNAVAILABLE");
        assert!(details["reason"].is_string(), "{path}: {details}");
        assert_eq!(retry_after.as_deref(), Some("2"), "{path}");
        assert!(took < OUTAGE_ANSWER_BOUND, "{path} answered in {took:?}");
        assert!(answer.request_id.is_some(), "{path}");
    }
}

#[tokio::test]
async fn an_operation_on_a_closed_store_is_503_store_unavailable_and_runs_nothing() {
    let app = spawn_app_with(access(AuthMode::Off, &[], &[])).await;
    let session = app.ready_session().await;
    app.store.close().await;
    let (listed, retry_after, took) = timed(&app, As::Nobody, Method::GET, "/api/v1/sessions").await;
    listed.assert_error(503, "STORE_UNAVAILABLE");
    assert_eq!(retry_after.as_deref(), Some("2"));
    assert!(took < OUTAGE_ANSWER_BOUND, "answered in {took:?}");
    let started = Instant::now();
    let repl = app
        .call_as(
            As::Nobody,
            Method::POST,
            "/api/v1/executions/repl",
            Some(json!({
                "session_id": session,
                "input": "globalThis.ran = true",
            })),
        )
        .await;
    let details = repl.assert_error(503, "STORE_UNAVAILABLE");
    assert!(details.get("execution_id").is_none(), "nothing ran, so nothing is pending: {details}");
    assert!(started.elapsed() < OUTAGE_ANSWER_BOUND, "answered in {:?}", started.elapsed());
}
