//! REPL and run-file executions, listings and event paging.

use serde_json::json;

use crate::harness::{event_types, spawn_app, value_of};

#[tokio::test]
async fn repl_keeps_variables_between_calls() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    app.repl(&session, "let counter = 40; function bump(n) { counter += n; return counter; }").await.assert_status(201);
    app.repl(&session, "bump(1)").await.assert_status(201);
    let answer = app.repl(&session, "bump(1)").await;
    let execution = answer.assert_status(201);
    assert_eq!(value_of(execution)["json"], 42);
    assert_eq!(execution["status"], "ok");
    assert_eq!(execution["kind"], "repl");
    assert_eq!(execution["result"]["json"], 42);
}

#[tokio::test]
async fn a_repl_call_records_echo_console_and_value_in_order() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let answer = app.repl(&session, "console.log('hello', 1); console.warn('careful'); ({ a: 1 })").await;
    let execution = answer.assert_status(201);
    assert_eq!(event_types(execution), ["input_echo", "console", "console", "value"]);
    let events = execution["events"].as_array().unwrap();
    assert_eq!(events[0]["payload"]["text"], "console.log('hello', 1); console.warn('careful'); ({ a: 1 })");
    assert_eq!(events[1]["payload"], json!({ "level": "log", "text": "hello 1" }));
    assert_eq!(events[2]["payload"]["level"], "warn");
    assert_eq!(value_of(execution)["json"], json!({ "a": 1 }));
    let seqs: Vec<_> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(execution["metrics"]["event_count"], 4);
}

#[tokio::test]
async fn an_exception_is_stored_as_an_execution_with_status_error() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let answer = app.repl(&session, "undefinedThing.call()").await;
    let execution = answer.assert_status(201);
    assert_eq!(execution["status"], "error");
    assert_eq!(event_types(execution), ["input_echo", "exception"]);
    let message = execution["events"][1]["payload"]["message"].as_str().unwrap();
    assert!(message.starts_with("ReferenceError"), "{message}");
    assert_eq!(execution["error"]["code"], "EXCEPTION");
    let after = app.repl(&session, "1 + 1").await;
    assert_eq!(value_of(&after.body)["json"], 2, "the session survives an exception");
}

#[tokio::test]
async fn run_file_sees_args_and_env_and_leaves_its_globals_behind() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    app.write(
        "scripts/greet.js",
        "var greeting = __ENV__.GREETING + ', ' + __ARGS__.name; console.log(greeting); greeting.length",
    );
    let answer = app
        .post(
            "/api/v1/executions/run-file",
            json!({ "session_id": session, "path": "scripts/greet.js", "args": { "name": "Ada" }, "env": { "GREETING": "Hello" } }),
        )
        .await;
    let execution = answer.assert_status(201);
    assert_eq!(execution["kind"], "run_file");
    assert_eq!(execution["path"], "scripts/greet.js");
    assert_eq!(execution["args"], json!({ "name": "Ada" }));
    assert_eq!(execution["env"], json!({ "GREETING": "Hello" }));
    assert_eq!(execution["events"][0]["payload"]["text"], "scripts/greet.js");
    assert_eq!(execution["events"][1]["payload"]["text"], "Hello, Ada");
    let later = app.repl(&session, "greeting").await;
    assert_eq!(value_of(&later.body)["json"], "Hello, Ada");
}

#[tokio::test]
async fn executions_are_listed_newest_first_and_limited() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let answer = app.repl(&session, &format!("{i}")).await;
        ids.push(answer.body["id"].as_str().unwrap().to_owned());
    }
    let all = app.get(&format!("/api/v1/executions?session_id={session}")).await;
    let listed: Vec<_> = all.body.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    ids.reverse();
    assert_eq!(listed, ids);
    let two = app.get(&format!("/api/v1/executions?session_id={session}&limit=2")).await;
    assert_eq!(two.body.as_array().unwrap().len(), 2);
    assert_eq!(two.body[0]["id"], ids[0].as_str());
    for bad in ["0", "-3", "1001", "many"] {
        app.get(&format!("/api/v1/executions?limit={bad}")).await.assert_error(400, "VALIDATION_ERROR");
    }
    let one = app.get(&format!("/api/v1/executions/{}", ids[0])).await;
    assert_eq!(one.assert_status(200)["input"], "3");
}

#[tokio::test]
async fn events_are_paged_with_after_seq() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let answer = app.repl(&session, "for (let i = 1; i <= 5; i++) console.log('line ' + i); 'done'").await;
    let id = answer.body["id"].as_str().unwrap().to_owned();
    let all = app.get(&format!("/api/v1/executions/{id}/events")).await;
    assert_eq!(all.body.as_array().unwrap().len(), 7);
    let tail = app.get(&format!("/api/v1/executions/{id}/events?after_seq=4")).await;
    let seqs: Vec<_> = tail.body.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [5, 6, 7]);
    assert_eq!(tail.body[0]["payload"]["text"], "line 4");
    let none = app.get(&format!("/api/v1/executions/{id}/events?after_seq=7")).await;
    assert_eq!(none.body, json!([]));
    app.get(&format!("/api/v1/executions/{id}/events?after_seq=-1")).await.assert_error(400, "VALIDATION_ERROR");
    app.get(&format!("/api/v1/executions/{id}/events?after_seq=x")).await.assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_second_execution_while_one_runs_is_refused_with_session_busy() {
    let app = spawn_app().await;
    let session = app.ready_session().await;
    let slow = "let s = 0; for (let i = 0; i < 3e6; i++) { s += i } s";
    let (a, b) = tokio::join!(app.repl(&session, slow), app.repl(&session, slow));
    let (ran, refused) = if a.status.as_u16() == 201 { (a, b) } else { (b, a) };
    ran.assert_status(201);
    let details = refused.assert_error(409, "SESSION_BUSY");
    assert_eq!(details["running_execution_id"], ran.body["id"]);
    app.repl(&session, "1").await.assert_status(201);
    let listed = app.get(&format!("/api/v1/executions?session_id={session}")).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2, "the refused call stored nothing");
}

#[tokio::test]
async fn sessions_are_independent() {
    let app = spawn_app().await;
    let one = app.ready_session().await;
    let two = app.ready_session().await;
    app.repl(&one, "var only_here = 1").await;
    let other = app.repl(&two, "typeof only_here").await;
    assert_eq!(value_of(&other.body)["json"], "undefined");
}
