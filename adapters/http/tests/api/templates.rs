//! Templates and everything configured on them.

use poem::http::Method;
use serde_json::json;

use crate::harness::spawn_app;

#[tokio::test]
async fn a_template_is_created_with_default_settings_and_listed() {
    let app = spawn_app().await;
    let created = app.post("/api/v1/templates", json!({ "name": "agents" })).await;
    let body = created.assert_status(201);
    assert_eq!(body["name"], "agents");
    assert_eq!(body["engine"], "boa");
    assert_eq!(body["is_active"], true);
    assert_eq!(
        body["settings"],
        json!({
            "limits": { "cpu_ms": 5000, "wall_ms": 30000, "mem_mb": 128, "max_events": 1000, "max_output_kb": 512 },
            "resolver": { "roots": [], "extensions": [".js", ".mjs"], "allow_absolute_repo_imports": false },
            "runtime": { "esm": false, "strict": false, "console": true, "checkpoints": true }
        })
    );
    let id = body["id"].as_str().unwrap();
    let list = app.get("/api/v1/templates").await;
    let list = list.assert_status(200).as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id);
}

#[tokio::test]
async fn templates_are_listed_newest_first() {
    let app = spawn_app().await;
    let first = app.template(json!({ "name": "one" })).await;
    let second = app.template(json!({ "name": "two" })).await;
    let list = app.get("/api/v1/templates").await;
    let ids: Vec<_> = list.body.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [second, first]);
}

#[tokio::test]
async fn the_detail_shows_settings_capabilities_startup_files_modules_and_libraries() {
    let app = spawn_app().await;
    let id = app
        .template(json!({
            "name": "full",
            "settings": { "limits": { "wall_ms": 2000 } },
            "exposed_modules": ["fs"],
            "libraries": ["lodash-4.17.21"]
        }))
        .await;
    let base = format!("/api/v1/templates/{id}");
    app.post(
        &format!("{base}/capabilities"),
        json!({ "kind": "module", "name": "exec", "config": { "allow": ["git"] } }),
    )
    .await
    .assert_status(201);
    app.post(&format!("{base}/startup-files"), json!({ "path": "b.js", "order_index": 2 })).await.assert_status(201);
    app.post(&format!("{base}/startup-files"), json!({ "path": "a.js", "order_index": 1 })).await.assert_status(201);
    app.post(&format!("{base}/modules"), json!({ "name": "exec" })).await.assert_status(201);
    app.post(&format!("{base}/libraries"), json!({ "name": "dayjs-1.11.10" })).await.assert_status(201);

    let detail = app.get(&base).await;
    let detail = detail.assert_status(200);
    assert_eq!(detail["settings"]["limits"]["wall_ms"], 2000);
    assert_eq!(detail["settings"]["limits"]["cpu_ms"], 5000);
    assert_eq!(detail["exposed_modules"], json!(["exec", "fs"]));
    assert_eq!(detail["libraries"], json!(["lodash-4.17.21", "dayjs-1.11.10"]));
    assert_eq!(detail["capabilities"][0]["config"], json!({ "allow": ["git"] }));
    assert_eq!(detail["capabilities"][0]["enabled"], true);
    let paths: Vec<_> = detail["startup_files"].as_array().unwrap().iter().map(|f| f["path"].clone()).collect();
    assert_eq!(paths, [json!("a.js"), json!("b.js")]);
    assert_eq!(detail["startup_files"][0]["mode"], "eval");

    let listed = app.get(&format!("{base}/startup-files")).await;
    assert_eq!(listed.body[0]["path"], "a.js");
    let caps = app.get(&format!("{base}/capabilities")).await;
    assert_eq!(caps.assert_status(200).as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn modules_and_libraries_are_added_once_and_removed() {
    let app = spawn_app().await;
    let id = app.template(json!({ "name": "m" })).await;
    let base = format!("/api/v1/templates/{id}");
    app.post(&format!("{base}/modules"), json!({ "name": "fs" })).await.assert_status(201);
    let twice = app.post(&format!("{base}/modules"), json!({ "name": "fs" })).await;
    assert_eq!(twice.assert_status(201), &json!(["fs"]));
    app.post(&format!("{base}/libraries"), json!({ "name": "ramda-0.29.0" })).await;
    app.post(&format!("{base}/libraries"), json!({ "name": "lodash-4.17.21" })).await;
    let again = app.post(&format!("{base}/libraries"), json!({ "name": "ramda-0.29.0" })).await;
    assert_eq!(again.body, json!(["ramda-0.29.0", "lodash-4.17.21"]), "order is kept");

    let removed = app.delete(&format!("{base}/modules/fs")).await;
    assert_eq!(removed.assert_status(200), &json!([]));
    let removed = app.delete(&format!("{base}/libraries/ramda-0.29.0")).await;
    assert_eq!(removed.body, json!(["lodash-4.17.21"]));
    assert_eq!(app.get(&format!("{base}/modules")).await.body, json!([]));
    assert_eq!(app.get(&format!("{base}/libraries")).await.body, json!(["lodash-4.17.21"]));
}

#[tokio::test]
async fn settings_are_read_and_replaced_with_defaults_for_missing_fields() {
    let app = spawn_app().await;
    let id = app.template(json!({ "name": "s", "settings": { "limits": { "cpu_ms": 100 } } })).await;
    let path = format!("/api/v1/templates/{id}/settings");
    assert_eq!(app.get(&path).await.body["limits"]["cpu_ms"], 100);
    let replaced = app
        .call(Method::PUT, &path, Some(json!({ "limits": { "wall_ms": 1234 }, "runtime": { "strict": true } })))
        .await;
    let replaced = replaced.assert_status(200);
    assert_eq!(replaced["limits"]["wall_ms"], 1234);
    assert_eq!(replaced["limits"]["cpu_ms"], 5000, "replace, not merge");
    assert_eq!(replaced["runtime"]["strict"], true);
    assert_eq!(app.get(&path).await.body, *replaced);
}

#[tokio::test]
async fn deleting_a_template_removes_it_and_everything_configured_on_it() {
    let app = spawn_app().await;
    let id = app.template(json!({ "name": "gone", "exposed_modules": ["fs"] })).await;
    let base = format!("/api/v1/templates/{id}");
    app.post(&format!("{base}/startup-files"), json!({ "path": "init.js" })).await.assert_status(201);
    app.post(&format!("{base}/capabilities"), json!({ "kind": "env", "name": "HOME" })).await.assert_status(201);
    let deleted = app.delete(&base).await;
    assert_eq!(deleted.status.as_u16(), 204);
    app.get(&base).await.assert_error(404, "TEMPLATE_NOT_FOUND");
    app.get(&format!("{base}/startup-files")).await.assert_error(404, "TEMPLATE_NOT_FOUND");
    app.delete(&base).await.assert_error(404, "TEMPLATE_NOT_FOUND");
    assert_eq!(app.get("/api/v1/templates").await.body, json!([]));
}

#[tokio::test]
async fn deleting_a_template_keeps_its_sessions() {
    let app = spawn_app().await;
    let template = app.template(json!({ "name": "t" })).await;
    let session = app.post("/api/v1/sessions", app.session_body(&template)).await;
    let session_id = session.body["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/templates/{template}")).await;
    let kept = app.get(&format!("/api/v1/sessions/{session_id}")).await;
    assert_eq!(kept.assert_status(200)["status"], "ready");
    let still_runs = app.repl(&session_id, "1 + 1").await;
    still_runs.assert_status(201);
}

#[tokio::test]
async fn the_catalogs_list_modules_and_libraries_with_cache_state() {
    let app = spawn_app().await;
    std::fs::write(app.dir.path().join("cache/dayjs-1.11.10.js"), "var dayjs = function(){};").unwrap();
    let modules = app.get("/api/v1/catalog/modules").await;
    let names: Vec<_> = modules.body.as_array().unwrap().iter().map(|m| m["name"].clone()).collect();
    assert_eq!(names, [json!("database"), json!("exec"), json!("fs")]);
    let libraries = app.get("/api/v1/catalog/libraries").await;
    let libraries = libraries.body.as_array().unwrap();
    assert_eq!(libraries.len(), 6);
    for library in libraries {
        assert_eq!(library["cached"], library["name"] == "dayjs-1.11.10", "{library}");
    }
}

#[tokio::test]
async fn a_fetch_capability_with_a_bad_allow_list_is_refused_when_added_naming_the_entry() {
    let app = spawn_app().await;
    let id = app.template(json!({ "name": "net" })).await;
    let path = format!("/api/v1/templates/{id}/capabilities");
    let cases = [
        ("a malformed entry", json!({ "allow": ["127.0.0.1:3000", "bad host!"] }), "config.allow[1]", "\"bad host!\""),
        ("an entry with a scheme", json!({ "allow": ["https://api.example.com"] }), "config.allow[0]", "scheme"),
        ("a zero max_fetch_kb", json!({ "allow": [], "max_fetch_kb": 0 }), "config.max_fetch_kb", "positive"),
        ("an unknown key", json!({ "allow": [], "hosts": [] }), "config.hosts", "unknown config key \"hosts\""),
    ];
    for (label, config, field, message) in cases {
        let refused = app.post(&path, json!({ "kind": "net", "name": "fetch", "config": config })).await;
        let details = refused.assert_error(422, "INVALID_VALUE");
        assert_eq!(details["field"], field, "{label}");
        let said = refused.body["error"]["message"].as_str().unwrap();
        assert!(said.contains(message), "{label}: {said}");
    }
    let disabled = app.post(&path, json!({ "kind": "net", "name": "fetch", "enabled": false, "config": {} })).await;
    assert_eq!(disabled.assert_error(422, "INVALID_VALUE")["field"], "config.allow", "disabled or not");
    assert_eq!(app.get(&path).await.body, json!([]), "nothing refused was stored");

    let config = json!({ "allow": ["api.example.com", "*.example.org:8443", "[::1]:8080"], "max_fetch_kb": 64 });
    let added = app.post(&path, json!({ "kind": "net", "name": "fetch", "config": config })).await;
    assert_eq!(added.assert_status(201)["config"], config, "a valid config is stored as sent");
}
