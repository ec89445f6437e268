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
