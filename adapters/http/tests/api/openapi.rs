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

#[tokio::test]
async fn the_document_states_nulls_formats_enums_unions_and_the_errors_that_apply() {
    let app = spawn_app().await;
    let doc: serde_json::Value = serde_json::from_str(&vm_http::openapi_json(app.services.clone())).unwrap();
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    assert_eq!(schema("SessionView")["properties"]["closed_at"]["nullable"], true);
    assert_eq!(schema("SessionView")["properties"]["id"]["format"], "uuid");
    assert_eq!(schema("SessionView")["properties"]["created_at"]["format"], "date-time");
    assert_eq!(schema("ExecutionView")["properties"]["result"]["nullable"], true);
    assert_eq!(schema("CreateTemplateBody")["additionalProperties"], false);
    assert_eq!(schema("LimitsBody")["additionalProperties"], false, "reached through SettingsBody");
    let modules: Vec<&str> = vm_domain::catalog::MODULES.iter().map(|m| m.name).collect();
    assert_eq!(schema("ModuleNameBody")["properties"]["name"]["enum"], serde_json::json!(modules));
    assert_eq!(schema("CreateTemplateBody")["properties"]["engine"]["enum"], serde_json::json!(["boa", null]));
    let events = schema("EventView");
    assert_eq!(events["discriminator"]["propertyName"], "type");
    assert_eq!(events["oneOf"].as_array().unwrap().len(), 8);
    assert_eq!(schema("ConsoleEvent")["properties"]["payload"]["$ref"], "#/components/schemas/ConsolePayload");
    assert!(schema("ErrorDetails")["anyOf"].as_array().unwrap().len() > 10);
    let responses = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"].as_object().unwrap().keys().cloned().collect()
    };
    let list = responses("/sessions", "get");
    for absent in ["405", "408", "413", "422"] {
        assert!(!list.contains(&absent.to_owned()), "GET /sessions declares {absent}: {list:?}");
    }
    let create = responses("/templates", "post");
    for present in ["201", "400", "401", "403", "413", "422", "503", "507"] {
        assert!(create.contains(&present.to_owned()), "POST /templates lacks {present}: {create:?}");
    }
}
