//! Modern JavaScript through the real daemon and CLI: top-level `await`
//! with declarations that persist, the event loop and timers, web globals,
//! and ES modules run from the worktree with their refusals.

use serde_json::{json, Value};

use crate::harness::{run_cli, Daemon, Home};
use crate::runtime::{repl, session, template};

/// The value JSON of a REPL answer that completed.
fn value(answer: &(u16, Value)) -> Value {
    assert_eq!(answer.0, 201, "{}", answer.1);
    assert_eq!(answer.1["status"], "ok", "{}", answer.1);
    answer.1["result"]["json"].clone()
}

fn console(answer: &(u16, Value)) -> Vec<String> {
    let events = answer.1["events"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter(|e| e["type"] == "console")
        .map(|e| e["payload"]["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn await_timers_and_web_globals_work_in_the_repl_through_the_api() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let session = session(&daemon, &home, &template(&daemon, json!({}), &[], &[]));
    let waited = repl(
        &daemon,
        &session,
        "setTimeout(() => console.log('from the timer'), 10);\n\
         const answer = await new Promise(resolve => setTimeout(() => resolve(41), 30));\n\
         answer",
    );
    assert_eq!(value(&waited), json!(41));
    assert_eq!(console(&waited), ["from the timer"], "a callback's output belongs to the execution that scheduled it");
    assert_eq!(
        value(&repl(&daemon, &session, "answer + 1")),
        json!(42),
        "a declaration of an awaiting snippet persists"
    );
    let globals = repl(
        &daemon,
        &session,
        "[typeof structuredClone, new URL('https://e.org/p?q=1').searchParams.get('q'), btoa('hi'), \
         crypto.randomUUID().length, new TextDecoder().decode(new TextEncoder().encode('ok'))]",
    );
    assert_eq!(value(&globals), json!(["function", "1", "aGk=", 36, "ok"]));
    let rejected = repl(&daemon, &session, "await Promise.reject(new TypeError('refused'))");
    assert_eq!(rejected.0, 201, "{}", rejected.1);
    assert_eq!(rejected.1["status"], "error");
    let last = rejected.1["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "exception");
    assert_eq!(last["payload"]["message"], "TypeError: refused");
}

#[test]
fn es_modules_run_from_the_worktree_with_json_and_refuse_what_leaves_it() {
    let home = Home::new();
    home.write("main.mjs", "import { twice } from './lib/math.js';\nimport data from './data.json' with { type: 'json' };\nconsole.log(twice(data.n));\n");
    home.write("lib/math.js", "export const twice = (n) => 2 * n;\n");
    home.write("data.json", "{ \"n\": 21 }");
    home.write("escape.mjs", "import '../outside.js';\n");
    home.write("broken.mjs", "export const x = 1;\n\nthrow new Error('at line 3');\n");
    let daemon = Daemon::start(&home);
    let settings = json!({ "runtime": { "esm": true } });
    let session = session(&daemon, &home, &template(&daemon, settings, &[], &[]));
    let run = |path: &str| daemon.post("/executions/run-file", json!({ "session_id": session, "path": path }));
    let ran = run("main.mjs");
    assert_eq!(ran.0, 201, "{}", ran.1);
    assert_eq!(ran.1["status"], "ok", "{}", ran.1);
    assert_eq!(console(&ran), ["42"]);
    let imported = repl(&daemon, &session, "const { twice } = await import('./lib/math.js'); twice(5)");
    assert_eq!(value(&imported), json!(10));
    let escaped = run("escape.mjs");
    let message = escaped.1["events"].as_array().unwrap().last().unwrap()["payload"]["message"].clone();
    assert!(message.as_str().unwrap().contains("../outside.js"), "{message}");
    assert!(message.as_str().unwrap().contains("outside"), "the rule is named: {message}");
    let broken = run("broken.mjs");
    let stack = broken.1["events"].as_array().unwrap().last().unwrap()["payload"]["stack"].clone();
    assert!(stack.as_str().unwrap().contains("broken.mjs:3:"), "{stack}");

    let cli = |args: &[&str]| run_cli(&daemon.url, &home.worktree(), args, None);
    let awaited = cli(&["exec", "repl", &session, "await Promise.resolve(6 * 7)"]);
    assert_eq!(awaited.code, 0, "{}", awaited.stderr);
    assert!(awaited.stdout.contains("42"), "{}", awaited.stdout);
    let module = cli(&["exec", "run-file", &session, "main.mjs"]);
    assert_eq!(module.code, 0, "{}", module.stderr);
    assert!(module.stdout.contains("42"), "{}", module.stdout);
}
