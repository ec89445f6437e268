//! Libraries end to end: `libs download` fills the cache (real lodash and
//! dayjs through the local npm client, never the public internet), sessions
//! evaluate them in the configured order, and a missing one fails the start.

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{run_cli, Daemon, Home};
use crate::runtime::{repl, session, session_body, template};

fn libs(home: &Home, args: &[&str]) -> crate::harness::CliRun {
    let cache = home.dir.path().join("cache");
    let mut all: Vec<&str> = vec!["libs"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--cache-dir", cache.to_str().expect("a UTF-8 path")]);
    run_cli("http://127.0.0.1:9", home.dir.path(), &all, None)
}

fn add_libraries(daemon: &Daemon, template: &str, names: &[&str]) {
    for name in names {
        let (status, body) = daemon.post(&format!("/templates/{template}/libraries"), json!({ "name": name }));
        assert_eq!(status, 201, "{body}");
    }
}

#[test]
fn lodash_and_dayjs_fetched_with_npm_load_into_a_session() {
    let home = Home::new();
    let download = libs(&home, &["download", "lodash-4.17.21", "dayjs-1.11.10", "--from", "npm"]);
    assert_eq!(download.code, 0, "{download:?}");
    assert!(download.stdout.contains("lodash-4.17.21") && download.stdout.contains("npm"), "{}", download.stdout);
    let listed = libs(&home, &["list", "-o", "json"]);
    let listed: Value = serde_json::from_str(&listed.stdout).expect("libs list -o json prints JSON");
    let cached: Vec<_> =
        listed.as_array().unwrap().iter().filter(|l| l["cached"] == true).map(|l| l["name"].clone()).collect();
    assert_eq!(cached, [json!("lodash-4.17.21"), json!("dayjs-1.11.10")]);

    let daemon = Daemon::start(&home);
    let (_, catalog) = daemon.get("/catalog/libraries");
    let lodash = catalog.as_array().unwrap().iter().find(|l| l["name"] == "lodash-4.17.21").cloned().unwrap();
    assert_eq!(lodash["cached"], true, "{lodash}");
    let t = template(&daemon, json!({}), &[], &[]);
    add_libraries(&daemon, &t, &["lodash-4.17.21", "dayjs-1.11.10"]);
    let s = session(&daemon, &home, &t);
    let (_, answer) = repl(
        &daemon,
        &s,
        "[_.VERSION, _.chunk([1, 2, 3, 4, 5], 2), dayjs('2024-02-28').add(1, 'day').format('YYYY-MM-DD')]",
    );
    assert_eq!(answer["result"]["json"], json!(["4.17.21", [[1, 2], [3, 4], [5]], "2024-02-29"]), "{answer}");
    let second = session(&daemon, &home, &t);
    let (_, answer) = repl(&daemon, &second, "typeof _.debounce + ' ' + typeof dayjs");
    assert_eq!(answer["result"]["json"], "function function", "every session of the template has them");
}

#[test]
fn libraries_copied_from_a_directory_are_evaluated_in_the_configured_order() {
    let home = Home::new();
    let source = home.dir.path().join("vendored");
    std::fs::create_dir_all(&source).unwrap();
    write(&source, "lodash-4.17.21.js", "var _ = { twice: x => x * 2 };");
    write(&source, "ramda-0.29.0.js", "var R = { base: _.twice(21), quadruple: x => _.twice(_.twice(x)) };");
    let download = libs(&home, &["download", "lodash-4.17.21", "ramda-0.29.0", "--from", source.to_str().unwrap()]);
    assert_eq!(download.code, 0, "{download:?}");
    assert!(home.dir.path().join("cache/ramda-0.29.0.js").is_file());

    let daemon = Daemon::start(&home);
    let ordered = template(&daemon, json!({}), &[], &[]);
    add_libraries(&daemon, &ordered, &["lodash-4.17.21", "ramda-0.29.0"]);
    let s = session(&daemon, &home, &ordered);
    assert_eq!(repl(&daemon, &s, "[R.base, R.quadruple(5)]").1["result"]["json"], json!([42, 20]));

    let reversed = template(&daemon, json!({}), &[], &[]);
    add_libraries(&daemon, &reversed, &["ramda-0.29.0", "lodash-4.17.21"]);
    let (status, refused) = daemon.post("/sessions", session_body(&home, &reversed));
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("STARTUP_FAILED")), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("ramda-0.29.0") && message.contains("ReferenceError"), "{message}");
}

#[test]
fn a_missing_library_fails_the_session_start_and_says_to_run_libs_download() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let t = template(&daemon, json!({}), &[], &[]);
    add_libraries(&daemon, &t, &["moment-2.29.4"]);
    let (status, body) = daemon.post("/sessions", session_body(&home, &t));
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("STARTUP_FAILED")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("moment-2.29.4") && message.contains("vm-system libs download"), "{message}");
    let session_id = body["error"]["details"]["session_id"].as_str().expect("the failed session's id");
    let (_, session) = daemon.get(&format!("/sessions/{session_id}"));
    assert_eq!(session["status"], "crashed");
    assert!(session["last_error"].as_str().unwrap().contains("libs download"), "{session}");
}

#[test]
fn libs_download_refuses_names_outside_the_catalog_and_missing_directories() {
    let home = Home::new();
    let unknown = libs(&home, &["download", "leftpad-1.0.0", "--from", "npm"]);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("leftpad-1.0.0") && unknown.stderr.contains("lodash-4.17.21"), "{unknown:?}");
    let nowhere = libs(&home, &["download", "--from", "/no/such/dir"]);
    assert_ne!(nowhere.code, 0);
    assert!(nowhere.stderr.contains("not a directory"), "{nowhere:?}");
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}
