//! The committed `openapi/openapi.json` is what the code generates.
//! Regenerate: `UPDATE_OPENAPI=1 cargo test -p vm-http --test api openapi`.

use crate::harness::spawn_app;

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let app = spawn_app().await;
    let generated = vm_http::openapi_json(app.services.clone());
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale; regenerate it with:\n  UPDATE_OPENAPI=1 cargo test -p vm-http --test api openapi"
    );
}

#[tokio::test]
async fn the_served_document_is_the_generated_one_and_lists_every_endpoint() {
    let app = spawn_app().await;
    let served = app.get("/api/v1/openapi.json").await;
    let doc = served.assert_status(200);
    let generated: serde_json::Value = serde_json::from_str(&vm_http::openapi_json(app.services.clone())).unwrap();
    assert_eq!(doc, &generated);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/health",
        "/ready",
        "/runtime/summary",
        "/templates",
        "/templates/{id}",
        "/templates/{id}/settings",
        "/templates/{id}/capabilities",
        "/templates/{id}/startup-files",
        "/templates/{id}/modules",
        "/templates/{id}/modules/{name}",
        "/templates/{id}/libraries",
        "/templates/{id}/libraries/{name}",
        "/catalog/modules",
        "/catalog/libraries",
        "/sessions",
        "/sessions/{id}",
        "/sessions/{id}/close",
        "/executions/repl",
        "/executions/run-file",
        "/executions",
        "/executions/{id}",
        "/executions/{id}/events",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs() {
    let app = spawn_app().await;
    let redirect = app.request(poem::http::Method::GET, "/docs", crate::harness::As::Nobody).send().await;
    assert_eq!(redirect.0.status().as_u16(), 302);
    let page = app.request(poem::http::Method::GET, "/docs/", crate::harness::As::Nobody).send().await;
    assert_eq!(page.0.status().as_u16(), 200);
    let html = page.0.into_body().into_string().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    let init =
        app.request(poem::http::Method::GET, "/docs/swagger-initializer.js", crate::harness::As::Nobody).send().await;
    let script = init.0.into_body().into_string().await.unwrap();
    assert!(script.contains("/api/v1/openapi.json"), "{script}");
}

#[tokio::test]
async fn every_operation_that_touches_the_store_declares_503_with_retry_after_and_507() {
    let app = spawn_app().await;
    let doc: serde_json::Value = serde_json::from_str(&vm_http::openapi_json(app.services.clone())).unwrap();
    let envelope = "#/components/schemas/ErrorEnvelope";
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = &op["responses"];
            if path == "/health" {
                assert!(responses.get("503").is_none(), "liveness never depends on the store");
                continue;
            }
            let unavailable = &responses["503"];
            assert_eq!(
                unavailable["content"]["application/json; charset=utf-8"]["schema"]["$ref"], envelope,
                "{method} {path}"
            );
            let headers =
                unavailable["headers"].as_object().map(|h| h.keys().map(|k| k.to_ascii_lowercase()).collect());
            assert_eq!(headers, Some(vec!["retry-after".to_owned()]), "{method} {path}: 503 declares Retry-After");
            if path == "/ready" {
                assert!(responses.get("507").is_none(), "readiness answers 503 for every store failure");
            } else {
                let full = &responses["507"];
                assert_eq!(
                    full["content"]["application/json; charset=utf-8"]["schema"]["$ref"], envelope,
                    "{method} {path}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "checked {checked} operations");
}
