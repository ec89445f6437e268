//! Tokens and scopes on every operation, the `Host` and `Origin` checks,
//! CORS, and worktree roots (SPEC §9).

use poem::http::Method;
use serde_json::{json, Value};
use vm_http::AuthMode;

use crate::harness::{access, spawn_app, spawn_app_with, As, TestApp, LISTEN};

/// Every operation of the OpenAPI document: method, path with its
/// parameters filled in, tag and operation id.
fn operations(app: &TestApp) -> Vec<(Method, String, String, String, Value)> {
    let spec: Value = serde_json::from_str(&vm_http::openapi_json(app.services.clone())).unwrap();
    let mut out = vec![];
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let filled = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "00000000-0000-4000-8000-000000000000" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            out.push((
                method.to_uppercase().parse().unwrap(),
                format!("/api/v1{filled}"),
                op["tags"][0].as_str().unwrap_or("").to_owned(),
                op["operationId"].as_str().unwrap().to_owned(),
                op.clone(),
            ));
        }
    }
    assert!(out.len() > 30, "the document lists every operation");
    out
}

/// The scope each operation needs, from the rule of SPEC §9: `read` for
/// every GET, `execute` for sessions and executions, `admin` for templates
/// and tokens; `None` for the probes `/health` and `/ready`.
fn required_scope(method: &Method, tag: &str, operation: &str) -> Option<&'static str> {
    match (operation, tag) {
        ("health" | "ready", _) => None,
        ("whoAmI", _) => Some("read"),
        (_, "Tokens") => Some("admin"),
        _ if *method == Method::GET => Some("read"),
        (_, "Sessions" | "Executions") => Some("execute"),
        _ => Some("admin"),
    }
}

#[tokio::test]
async fn every_operation_but_the_probes_declares_the_token_and_refuses_calls_without_one() {
    let app = spawn_app().await;
    for (method, path, tag, operation, op) in operations(&app) {
        let declared = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("token").is_some()));
        let needs = required_scope(&method, &tag, &operation);
        assert_eq!(declared, needs.is_some(), "{operation}: security in the document");
        if needs.is_none() {
            app.call_as(As::Nobody, method.clone(), &path, None).await.assert_status(200);
            continue;
        }
        for who in [As::Nobody, As::Token("vmsys_0000"), As::Token("")] {
            let response = app.request(method.clone(), &path, who).send().await;
            assert_eq!(
                response.0.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
                Some("Bearer realm=\"vm-system\""),
                "{operation}"
            );
            let answer = crate::harness::answer(response).await;
            answer.assert_error(401, "UNAUTHENTICATED");
        }
    }
}

#[tokio::test]
async fn each_scope_reaches_exactly_its_operations() {
    let app = spawn_app().await;
    let tokens = [
        ("read", app.token("reader", &["read"]).await),
        ("execute", app.token("runner", &["execute"]).await),
        ("admin", app.token("owner", &["admin"]).await),
    ];
    let rank = |scope: &str| ["read", "execute", "admin"].iter().position(|s| *s == scope).unwrap();
    let mut checked = 0;
    for (method, path, tag, operation, _) in operations(&app) {
        let Some(needed) = required_scope(&method, &tag, &operation) else { continue };
        // Revoking the token used below would end the test early.
        if operation == "revokeToken" {
            continue;
        }
        for (scope, secret) in &tokens {
            let answer = app.call_as(As::Token(secret), method.clone(), &path, None).await;
            if rank(scope) >= rank(needed) {
                assert!(
                    ![401, 403].contains(&answer.status.as_u16()),
                    "{operation} with a {scope} token: {} {}",
                    answer.status,
                    answer.body
                );
            } else {
                let details = answer.assert_error(403, "FORBIDDEN");
                assert_eq!(details["required_scope"], needed, "{operation}");
                assert!(answer.body["error"]["message"].as_str().unwrap().contains(needed));
            }
            checked += 1;
        }
    }
    assert!(checked > 90, "checked {checked} operation × scope pairs");
}

#[tokio::test]
async fn a_token_is_shown_once_listed_without_its_secret_and_revoked_at_once() {
    let app = spawn_app().await;
    let created = app
        .post("/api/v1/tokens", json!({ "name": "ci", "scopes": ["execute", "read", "execute"], "expires_at": null }))
        .await;
    let created = created.assert_status(201).clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("vmsys_") && secret.len() == 70, "{secret}");
    let token = &created["token"];
    assert_eq!(token["scopes"], json!(["read", "execute"]));
    assert_eq!(token["status"], "active");
    assert!(token["last_used_at"].is_null());
    let id = token["id"].as_str().unwrap().to_owned();

    let who = app.call_as(As::Token(&secret), Method::GET, "/api/v1/whoami", None).await;
    assert_eq!(who.assert_status(200)["name"], "ci");

    let listed = app.get("/api/v1/tokens").await;
    let listed = listed.assert_status(200).to_string();
    assert!(!listed.contains(&secret[6..]), "a list never holds a secret");
    let fetched = app.get(&format!("/api/v1/tokens/{id}")).await;
    assert!(fetched.assert_status(200)["last_used_at"].is_string(), "using a token records it");

    let revoked = app.delete(&format!("/api/v1/tokens/{id}")).await;
    let revoked = revoked.assert_status(200).clone();
    assert_eq!(revoked["status"], "revoked");
    let again = app.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(again.assert_status(200)["revoked_at"], revoked["revoked_at"], "revoking twice changes nothing");
    let refused = app.call_as(As::Token(&secret), Method::GET, "/api/v1/templates", None).await;
    refused.assert_error(401, "UNAUTHENTICATED");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("revoked"));

    app.delete("/api/v1/tokens/00000000-0000-4000-8000-000000000000").await.assert_error(404, "TOKEN_NOT_FOUND");
    app.delete("/api/v1/tokens/not-a-uuid").await.assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::milliseconds(1500)).to_rfc3339();
    let created = app.post("/api/v1/tokens", json!({ "name": "brief", "scopes": ["read"], "expires_at": soon })).await;
    let secret = created.assert_status(201)["secret"].as_str().unwrap().to_owned();
    app.call_as(As::Token(&secret), Method::GET, "/api/v1/templates", None).await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let refused = app.call_as(As::Token(&secret), Method::GET, "/api/v1/templates", None).await;
    refused.assert_error(401, "UNAUTHENTICATED");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("expired"));
    let listed = app.get("/api/v1/tokens").await;
    let brief = listed.body.as_array().unwrap().iter().find(|t| t["name"] == "brief").unwrap().clone();
    assert_eq!(brief["status"], "expired");
}

#[tokio::test]
async fn bad_token_requests_are_validation_errors() {
    let app = spawn_app().await;
    let past = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let cases = [
        (json!({ "name": "x", "scopes": [] }), "scopes"),
        (json!({ "name": "x", "scopes": ["root"] }), "scopes"),
        (json!({ "name": "", "scopes": ["read"] }), "name"),
        (json!({ "name": "has space", "scopes": ["read"] }), "name"),
        (json!({ "name": "x", "scopes": ["read"], "expires_at": "tomorrow" }), "expires_at"),
    ];
    for (body, field) in cases {
        let answer = app.post("/api/v1/tokens", body.clone()).await;
        let details = answer.assert_error(400, "VALIDATION_ERROR");
        assert!(details["field"].as_str().unwrap().starts_with(field), "{body}: {details}");
    }
    app.post("/api/v1/tokens", json!({ "name": "x", "scopes": ["read"], "secret": "mine" }))
        .await
        .assert_error(400, "INVALID_REQUEST");
    // Well-formed but in the past: a rule the schema cannot state, so 422.
    let answer = app.post("/api/v1/tokens", json!({ "name": "x", "scopes": ["read"], "expires_at": past })).await;
    assert_eq!(answer.assert_error(422, "INVALID_VALUE")["field"], "expires_at");
    assert_eq!(app.get("/api/v1/tokens").await.body.as_array().unwrap().len(), 1, "nothing was stored");
}

#[tokio::test]
async fn foreign_hosts_are_misdirected_everywhere() {
    let app = spawn_app_with(access(AuthMode::Required, &["vm.example.com"], &[])).await;
    for path in ["/api/v1/health", "/api/v1/templates", "/api/v1/openapi.json", "/docs/", "/"] {
        for host in ["evil.example:3210", "127.0.0.1.nip.io", "localhost.evil.example"] {
            let answer =
                crate::harness::answer(app.client.request(Method::GET, path).header("host", host).send().await).await;
            let details = answer.assert_error(421, "MISDIRECTED_REQUEST");
            assert_eq!(details["host"], host);
            assert!(details["allowed_hosts"].as_array().unwrap().contains(&json!("vm.example.com")));
        }
    }
    for host in [LISTEN, "localhost:3210", "LOCALHOST", "[::1]:3210", "vm.example.com", "VM.Example.com:443"] {
        let answer =
            crate::harness::answer(app.client.request(Method::GET, "/api/v1/health").header("host", host).send().await)
                .await;
        answer.assert_status(200);
    }
}

#[tokio::test]
async fn state_changing_requests_from_foreign_origins_are_forbidden() {
    let app = spawn_app().await;
    let body = json!({ "name": "from-page" });
    for origin in ["http://evil.example", "null", "http://127.0.0.1:9999", "https://localhost.evil.example"] {
        let answer = crate::harness::answer(
            app.request(Method::POST, "/api/v1/templates", As::Admin)
                .header("origin", origin)
                .body_json(&body)
                .send()
                .await,
        )
        .await;
        answer.assert_error(403, "FORBIDDEN");
        assert!(answer.body["error"]["message"].as_str().unwrap().contains("origin"));
    }
    assert_eq!(app.get("/api/v1/templates").await.body, json!([]), "nothing was made");
    let own = crate::harness::answer(
        app.request(Method::POST, "/api/v1/templates", As::Admin)
            .header("origin", format!("http://{LISTEN}"))
            .body_json(&body)
            .send()
            .await,
    )
    .await;
    own.assert_status(201);
    // Reading is not refused, but CORS is closed: no header lets the page see it.
    let read =
        app.request(Method::GET, "/api/v1/templates", As::Admin).header("origin", "http://evil.example").send().await;
    assert_eq!(read.0.status().as_u16(), 200);
    assert!(read.0.headers().get("access-control-allow-origin").is_none());
    let preflight = app
        .request(Method::OPTIONS, "/api/v1/templates", As::Nobody)
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await;
    assert!(preflight.0.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_and_may_change_state() {
    let app = spawn_app_with(access(AuthMode::Required, &[], &["https://ui.example.com"])).await;
    let preflight = app
        .request(Method::OPTIONS, "/api/v1/templates", As::Nobody)
        .header("origin", "https://ui.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await;
    assert!(preflight.0.status().is_success(), "{}", preflight.0.status());
    assert_eq!(
        preflight.0.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://ui.example.com")
    );
    let created = crate::harness::answer(
        app.request(Method::POST, "/api/v1/templates", As::Admin)
            .header("origin", "https://ui.example.com")
            .body_json(&json!({ "name": "from-ui" }))
            .send()
            .await,
    )
    .await;
    created.assert_status(201);
    let other = crate::harness::answer(
        app.request(Method::POST, "/api/v1/templates", As::Admin)
            .header("origin", "https://other.example.com")
            .body_json(&json!({ "name": "from-other" }))
            .send()
            .await,
    )
    .await;
    other.assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn with_auth_off_no_token_is_needed() {
    let app = spawn_app_with(access(AuthMode::Off, &[], &[])).await;
    let who = app.call_as(As::Nobody, Method::GET, "/api/v1/whoami", None).await;
    assert_eq!(who.assert_status(200)["name"], "auth-off");
    assert!(who.body["token_id"].is_null());
    app.call_as(As::Nobody, Method::POST, "/api/v1/templates", Some(json!({ "name": "open" })))
        .await
        .assert_status(201);
}

#[tokio::test]
async fn worktrees_outside_the_roots_or_in_system_and_daemon_directories_are_invalid_paths() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "roots" })).await;
    let outside = std::env::current_dir().unwrap();
    let cache = app.dir.path().join("cache");
    // Symlinks inside a root that lead to refused places.
    let to_etc = app.dir.path().join("to-etc");
    std::os::unix::fs::symlink("/etc", &to_etc).unwrap();
    let to_cache = app.dir.path().join("to-cache");
    std::os::unix::fs::symlink(&cache, &to_cache).unwrap();
    let to_proc = app.dir.path().join("to-proc-root");
    std::os::unix::fs::symlink("/proc/self/root", &to_proc).unwrap();
    for worktree in [
        to_etc.to_str().unwrap(),
        to_cache.to_str().unwrap(),
        to_proc.to_str().unwrap(),
        outside.to_str().unwrap(),
        "/",
        "/proc/self/root",
        "/proc/self/cwd",
        "/etc",
        "/usr/lib",
        cache.to_str().unwrap(),
    ] {
        let mut body = app.session_body(&template);
        body["worktree_path"] = json!(worktree);
        let answer = app.post("/api/v1/sessions", body).await;
        let details = answer.assert_error(422, "INVALID_PATH");
        assert_eq!(details["path"], worktree);
    }
    let mut body = app.session_body(&template);
    body["worktree_path"] = json!(outside.to_str().unwrap());
    let answer = app.post("/api/v1/sessions", body).await;
    let roots = std::env::temp_dir().canonicalize().unwrap();
    assert!(
        answer.body["error"]["message"].as_str().unwrap().contains(roots.to_str().unwrap()),
        "the error names the roots: {}",
        answer.body
    );
    assert_eq!(app.get("/api/v1/sessions").await.body, json!([]), "no session was made");
}
