//! The command line as a user runs it: the real binary against a real daemon
//! (temporary database, worktree and library cache), in text, JSON and YAML.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{eventually, path_str, run_cli, CliRun, Daemon, Home};

/// A fake lodash for the library cache, so no test downloads anything.
const FAKE_LODASH: &str = "var _ = { VERSION: '4.17.21-fake', chunk: function (a, n) { var out = []; \
                           for (var i = 0; i < a.length; i += n) out.push(a.slice(i, i + n)); return out; } };\n";

struct Fixture {
    home: Home,
    daemon: Daemon,
}

impl Fixture {
    fn start() -> Self {
        let home = Home::new();
        std::fs::write(home.dir.path().join("cache").join("lodash-4.17.21.js"), FAKE_LODASH).unwrap();
        home.write("setup.js", "globalThis.greet = (name) => 'hello, ' + name;\n");
        home.write(
            "hello.js",
            "console.log(greet(__ENV__.WHO || 'file'));\nconsole.warn('careful');\n(__ARGS__.n || 1) * 21\n",
        );
        let daemon = Daemon::start(&home);
        Self { home, daemon }
    }

    /// `vm-system ARGS` in the worktree.
    fn vm(&self, args: &[&str]) -> CliRun {
        run_cli(&self.daemon.url, &self.home.worktree(), args, None)
    }

    fn vm_stdin(&self, args: &[&str], stdin: &str) -> CliRun {
        run_cli(&self.daemon.url, &self.home.worktree(), args, Some(stdin))
    }

    /// Stdout of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.vm(args);
        assert_eq!(run.code, 0, "vm-system {args:?} failed: {run:?}");
        run.stdout
    }

    /// The `-o json` output of a command that must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let args = [args, &["-o", "json"]].concat();
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|err| panic!("{args:?} printed no JSON ({err}): {out}"))
    }

    /// The id a `-q` command printed.
    fn id(&self, args: &[&str]) -> String {
        let args = [args, &["-q"]].concat();
        let out = self.ok(&args);
        let id = out.trim().to_owned();
        assert!(id.len() == 36 && !id.contains('\n'), "{args:?} printed {out:?}, not one id");
        id
    }
}

/// Lines of `text`, each split into whitespace-separated words.
fn words(text: &str) -> Vec<Vec<&str>> {
    text.lines().map(|l| l.split_whitespace().collect()).collect()
}

#[test]
fn the_full_loop_works_from_template_to_closed_session_in_text_and_json() {
    let f = Fixture::start();

    // A template with a startup file, a module, a library and a capability.
    let template = f.id(&["template", "create", "loop"]);
    let startup = f.ok(&["template", "add-startup", &template, "setup.js"]);
    assert!(words(&startup).contains(&vec!["path:", "setup.js"]), "{startup}");
    assert!(words(&startup).contains(&vec!["mode:", "eval"]), "{startup}");
    assert_eq!(f.ok(&["template", "add-module", &template, "fs"]), "NAME\nfs\n");
    assert_eq!(f.json(&["template", "add-library", &template, "lodash-4.17.21"]), json!(["lodash-4.17.21"]));
    let capability =
        f.json(&["template", "add-capability", &template, "module", "exec", "--config", r#"{"allow":["git"]}"#]);
    assert_eq!(
        (capability["kind"].as_str(), capability["config"].clone()),
        (Some("module"), json!({"allow": ["git"]}))
    );
    assert_eq!(f.ok(&["template", "list-modules", &template, "-q"]), "fs\n");
    assert_eq!(f.ok(&["template", "list-libraries", &template]), "NAME\nlodash-4.17.21\n");
    let capabilities = f.ok(&["template", "list-capabilities", &template]);
    assert_eq!(words(&capabilities)[0], ["ID", "KIND", "NAME", "ENABLED", "CONFIG"]);
    assert_eq!(words(&capabilities)[1][1..], ["module", "exec", "true", r#"{"allow":["git"]}"#]);
    let startups = f.ok(&["template", "list-startup", &template]);
    assert_eq!(words(&startups)[1][..3], ["0", "setup.js", "eval"], "{startups}");

    // Catalogs.
    let modules = f.ok(&["template", "list-available-modules", "-q"]);
    assert_eq!(modules, "database\nexec\nfs\n");
    let libraries = f.ok(&["template", "list-available-libraries"]);
    let lodash = words(&libraries).into_iter().find(|w| w.first() == Some(&"lodash-4.17.21")).unwrap();
    assert_eq!(lodash[..3], ["lodash-4.17.21", "_", "yes"], "{libraries}");
    let moment = words(&libraries).into_iter().find(|w| w.first() == Some(&"moment-2.29.4")).unwrap();
    assert_eq!(moment[2], "no");

    // Settings: set-settings changes what it names and keeps the rest.
    f.ok(&["template", "set-settings", &template, "--cpu-ms", "4000"]);
    let settings = f.ok(&["template", "set-settings", &template, "--wall-ms", "20000", "--strict", "false"]);
    assert!(settings.starts_with("limits:    cpu_ms=4000 wall_ms=20000 mem_mb=128 "), "{settings}");
    let settings = f.json(&["template", "get-settings", &template]);
    assert_eq!(
        (settings["limits"]["cpu_ms"].as_u64(), settings["limits"]["wall_ms"].as_u64()),
        (Some(4000), Some(20000))
    );

    // The detail block and the list.
    let detail = f.ok(&["template", "get", &template]);
    for expected in [
        vec!["name:", "loop"],
        vec!["modules:", "fs"],
        vec!["libraries:", "lodash-4.17.21"],
        vec!["startup", "files:", "setup.js"],
        vec!["capabilities:", "module/exec"],
    ] {
        assert!(words(&detail).contains(&expected), "{expected:?} in\n{detail}");
    }
    let list = f.ok(&["template", "list"]);
    assert_eq!(words(&list)[0], ["ID", "NAME", "ENGINE", "MODULES", "LIBRARIES", "CREATED"]);
    assert_eq!(words(&list)[1][..5], [template.as_str(), "loop", "boa", "fs", "lodash-4.17.21"]);

    // A session in the current directory: startup file ran, library loaded.
    let session = f.id(&["session", "create", "--template-id", &template]);
    let shown = f.json(&["session", "get", &session]);
    assert_eq!(shown["worktree_path"], path_str(&f.home.worktree()));
    assert_eq!((shown["workspace_id"].as_str(), shown["base_commit_oid"].as_str()), (Some("worktree"), Some("HEAD")));
    assert_eq!(shown["status"], "ready");
    let listed = f.ok(&["session", "list", "--status", "ready"]);
    assert_eq!(words(&listed)[0], ["ID", "TEMPLATE", "STATUS", "WORKSPACE", "CREATED", "FORKED-FROM", "WORKTREE"]);
    assert_eq!(words(&listed)[1][..4], [session.as_str(), template.as_str(), "ready", "worktree"]);

    // The REPL keeps state; values print like a REPL; stdin works.
    assert_eq!(f.ok(&["exec", "repl", &session, "let x = 20"]), "undefined\n");
    assert_eq!(f.ok(&["exec", "repl", &session, "x * 2 + 2"]), "42\n");
    assert_eq!(f.ok(&["exec", "repl", &session, "--", "-x + 2"]), "-18\n", "code starting with - goes after --");
    assert_eq!(f.ok(&["exec", "repl", &session, "greet('repl')"]), "'hello, repl'\n");
    assert_eq!(
        f.ok(&["exec", "repl", &session, "_.VERSION + ' ' + _.chunk([1, 2, 3], 2).length"]),
        "'4.17.21-fake 2'\n"
    );
    let piped = f
        .vm_stdin(&["exec", "repl", &session, "-"], "console.log('from stdin');\nconsole.error('to stderr');\nx + 1\n");
    assert_eq!((piped.code, piped.stdout.as_str(), piped.stderr.as_str()), (0, "from stdin\n21\n", "to stderr\n"));

    // run-file: console on stdout (warnings on stderr), the value, args and env.
    let ran = f.vm(&["exec", "run-file", &session, "hello.js", "--args", r#"{"n": 2}"#, "--env", "WHO=env"]);
    assert_eq!((ran.code, ran.stdout.as_str(), ran.stderr.as_str()), (0, "hello, env\n42\n", "careful\n"));
    let ran = f.json(&["exec", "run-file", &session, "hello.js"]);
    assert_eq!((ran["kind"].as_str(), ran["status"].as_str()), (Some("run_file"), Some("ok")));
    let types: Vec<&str> = ran["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["input_echo", "console", "console", "value"]);
    let file_run = ran["id"].as_str().unwrap().to_owned();
    assert_eq!(f.ok(&["exec", "run-file", &session, "hello.js", "-q"]).trim().len(), 36);

    // list / get / events.
    let executions = f.ok(&["exec", "list", "--session-id", &session, "--limit", "2"]);
    let rows = words(&executions);
    assert_eq!(rows[0], ["ID", "KIND", "STATUS", "STARTED", "DURATION", "SOURCE"]);
    assert_eq!(
        (rows.len(), rows[2][0], rows[2][1], rows[2][2], rows[2][5]),
        (3, file_run.as_str(), "run_file", "ok", "hello.js")
    );
    let all = f.json(&["exec", "list", "--session-id", &session]);
    let kinds: Vec<&str> = all.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.last(), Some(&"startup"), "the startup file is recorded as an execution: {kinds:?}");
    let got = f.ok(&["exec", "get", &file_run]);
    for expected in [vec!["status:", "ok"], vec!["kind:", "run_file"], vec!["path:", "hello.js"], vec!["result:", "21"]]
    {
        assert!(words(&got).contains(&expected), "{expected:?} in\n{got}");
    }
    let events = f.ok(&["exec", "events", &file_run]);
    assert_eq!(
        events,
        "SEQ   TYPE        DETAIL\n1     input_echo  hello.js\n2     console     log: hello, file\n\
         3     console     warn: careful\n4     value       21\n"
    );
    let after = f.json(&["exec", "events", &file_run, "--after-seq", "2"]);
    let seqs: Vec<i64> = after.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [3, 4]);
    assert_eq!(f.ok(&["exec", "events", &file_run, "--after-seq", "3", "-q"]), "4\n");

    // ops.
    assert_eq!(f.ok(&["ops", "health"]), "ok\n");
    assert_eq!(f.json(&["ops", "health"]), json!({"status": "ok"}));
    assert_eq!(
        f.ok(&["ops", "ready"]),
        "status:          ready\nstore:           ok\nruntime:         ok\npending writes:  0\n"
    );
    assert_eq!(
        f.json(&["ops", "ready"]),
        json!({"status": "ready", "store": "ok", "runtime": "ok", "pending_writes": 0})
    );
    assert_eq!(f.ok(&["ops", "runtime-summary", "-q"]), format!("{session}\n"));

    // Close; the session refuses work afterwards.
    let closed = f.ok(&["session", "close", &session]);
    assert!(words(&closed).contains(&vec!["status:", "closed"]), "{closed}");
    let refused = f.vm(&["exec", "repl", &session, "1"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.starts_with("SESSION_NOT_READY: "), "{refused:?}");
    assert_eq!(f.ok(&["ops", "runtime-summary"]), "active sessions:  0\nsession ids:      -\n");

    // Delete: the template is gone, the closed session is kept.
    assert_eq!(f.ok(&["template", "delete", &template]), format!("deleted template {template}\n"));
    assert_eq!(f.ok(&["template", "list", "-q"]), "");
    assert_eq!(f.json(&["session", "get", &session])["status"], "closed");
}

#[test]
fn a_javascript_builtin_is_refused_as_a_module_with_module_not_allowed() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "modules"]);
    let refused = f.vm(&["template", "add-module", &template, "json"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert_eq!(refused.stdout, "");
    let first = refused.stderr.lines().next().unwrap();
    assert!(first.starts_with("MODULE_NOT_ALLOWED: module \"json\""), "{first}");
    assert!(refused.stderr.contains("allowed: database, exec, fs"), "details name what is allowed: {refused:?}");
    assert_eq!(f.json(&["template", "list-modules", &template]), json!([]));
}

#[test]
fn run_file_refuses_a_path_that_leaves_the_worktree() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "paths"]);
    let session = f.id(&["session", "create", "--template-id", &template]);
    for path in ["../x", "../x.js", "/etc/passwd"] {
        let refused = f.vm(&["exec", "run-file", &session, path]);
        assert_eq!(refused.code, 1, "{path}: {refused:?}");
        assert!(refused.stderr.starts_with("INVALID_PATH: "), "{path}: {refused:?}");
        assert_eq!(refused.stdout, "", "{path}");
    }
    let missing = f.vm(&["exec", "run-file", &session, "nope.js"]);
    assert!(missing.code == 1 && missing.stderr.starts_with("FILE_NOT_FOUND: "), "{missing:?}");
}

#[test]
fn an_execution_that_throws_prints_the_exception_and_exits_1_in_every_format() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "throws"]);
    let session = f.id(&["session", "create", "--template-id", &template]);
    let text = f.vm(&["exec", "repl", &session, "console.log('before'); throw new Error('boom')"]);
    assert_eq!((text.code, text.stdout.as_str()), (1, "before\n"));
    assert!(text.stderr.starts_with("Uncaught Error: boom\n"), "{text:?}");
    let as_json = f.vm(&["exec", "repl", &session, "null.x", "-o", "json"]);
    assert_eq!(as_json.code, 1);
    let execution: Value = serde_json::from_str(&as_json.stdout).unwrap();
    assert_eq!((execution["status"].as_str(), execution["error"]["code"].as_str()), (Some("error"), Some("EXCEPTION")));
    let quiet = f.vm(&["exec", "repl", &session, "null.x", "-q"]);
    assert_eq!((quiet.code, quiet.stdout.trim().len()), (1, 36), "-q still prints the id: {quiet:?}");
}

#[test]
fn an_api_error_prints_its_code_and_message_on_stderr_and_exits_1() {
    let f = Fixture::start();
    let missing = "00000000-0000-4000-8000-000000000000";
    for (args, code) in [
        (vec!["template", "get", missing], "TEMPLATE_NOT_FOUND"),
        (vec!["session", "get", missing], "SESSION_NOT_FOUND"),
        (vec!["exec", "events", missing], "EXECUTION_NOT_FOUND"),
        (vec!["template", "get", "not-a-uuid"], "VALIDATION_ERROR"),
        (vec!["template", "add-library", missing, "lodash-4.17.21"], "TEMPLATE_NOT_FOUND"),
        (vec!["exec", "list", "--limit", "0"], "VALIDATION_ERROR"),
    ] {
        for format in ["text", "json"] {
            let run = f.vm(&[args.as_slice(), &["-o", format]].concat());
            assert_eq!((run.code, run.stdout.as_str()), (1, ""), "{args:?}: {run:?}");
            assert!(run.stderr.starts_with(&format!("{code}: ")), "{args:?} -o {format}: {run:?}");
        }
    }
    let template = f.id(&["template", "create", "libs"]);
    let refused = f.vm(&["template", "add-library", &template, "leftpad-1.0.0"]);
    assert!(refused.code == 1 && refused.stderr.starts_with("LIBRARY_NOT_AVAILABLE: "), "{refused:?}");
}

#[test]
fn a_daemon_that_is_not_running_is_one_sentence_naming_the_url_and_exit_code_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let cwd = std::env::temp_dir();
    for args in [
        vec!["ops", "health"],
        vec!["template", "list", "-o", "json"],
        vec!["exec", "repl", "6a624238-6e16-4003-83c9-09125e07aecb", "1"],
    ] {
        let run = run_cli(&url, &cwd, &args, None);
        assert_eq!(run.code, 3, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {run:?}");
        assert!(run.stderr.contains(&format!("cannot reach the vm-system daemon at {url}")), "{run:?}");
        assert!(run.stderr.contains("vm-system serve"), "says how to fix it: {run:?}");
    }
    // An id that is not a UUID is refused before anything is sent.
    let run = run_cli(&url, &cwd, &["exec", "repl", "s", "1"], None);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("\"s\" is not an id (ids are UUIDs"), "{run:?}");
}

#[test]
fn usage_errors_exit_2_and_send_nothing() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "usage"]);
    let session = f.id(&["session", "create", "--template-id", &template]);
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "config is not JSON",
            vec!["template", "add-capability", &template, "env", "HOME", "--config", "{nope"],
            "not valid JSON",
        ),
        (
            "config is not an object",
            vec!["template", "add-capability", &template, "env", "HOME", "--config", "[1]"],
            "JSON object",
        ),
        ("unknown capability kind", vec!["template", "add-capability", &template, "disk", "x"], "invalid value"),
        ("args is not an object", vec!["exec", "run-file", &session, "hello.js", "--args", "5"], "JSON object"),
        ("env without =", vec!["exec", "run-file", &session, "hello.js", "--env", "WHO"], "KEY=VALUE"),
        ("an empty id", vec!["template", "get", ""], "an id is required"),
        (
            "unknown settings field",
            vec!["template", "set-settings", &template, "--settings", r#"{"limits":{"wall":1}}"#],
            "unknown field",
        ),
        ("set-settings with nothing to set", vec!["template", "set-settings", &template], "at least one"),
        ("quiet and an output format", vec!["template", "list", "-q", "-o", "json"], "cannot be used with"),
        ("unknown output format", vec!["template", "list", "-o", "xml"], "invalid value"),
        ("unknown command", vec!["templates", "list"], "unrecognized subcommand"),
        ("bad server URL", vec!["--server-url", "localhost:3210", "ops", "health"], "invalid server URL"),
        ("unknown help topic", vec!["help", "nonsense"], "no help topic or command"),
    ];
    for (label, args, says) in cases {
        let run = f.vm(&args);
        assert_eq!(run.code, 2, "{label}: {run:?}");
        assert!(run.stderr.contains(says), "{label}: {says:?} in {}", run.stderr);
    }
    assert_eq!(f.json(&["template", "list-capabilities", &template]), json!([]), "nothing was sent");
    assert_eq!(f.json(&["exec", "list", "--session-id", &session]).as_array().unwrap().len(), 0);
}

#[test]
fn json_and_yaml_outputs_are_the_api_objects_as_the_daemon_sent_them() {
    let f = Fixture::start();
    let template =
        f.id(&["template", "create", "shapes", "--module", "fs", "--library", "lodash-4.17.21", "--mem-mb", "64"]);
    let (status, api) = f.daemon.get(&format!("/templates/{template}"));
    assert_eq!(status, 200);
    assert_eq!(api["settings"]["limits"]["mem_mb"], 64);
    assert_eq!(f.json(&["template", "get", &template]), api);
    let yaml = f.ok(&["template", "get", &template, "-o", "yaml"]);
    let from_yaml: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, api);
    let (_, catalog) = f.daemon.get("/catalog/libraries");
    assert_eq!(f.json(&["template", "list-available-libraries"]), catalog);
    let deleted = f.vm(&["template", "delete", &template, "-o", "json"]);
    assert_eq!((deleted.code, deleted.stdout.as_str()), (0, ""), "a 204 has no object to print");
}

#[test]
fn exec_events_follow_prints_events_until_the_execution_ends() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "follow"]);
    let session = f.id(&["session", "create", "--template-id", &template]);
    let url = f.daemon.url.clone();
    let cwd = f.home.worktree();
    let session_for_run = session.clone();
    let slow = std::thread::spawn(move || {
        let snippet = "console.log('start'); const t = Date.now(); while (Date.now() - t < 2500) {} 'done'";
        run_cli(&url, &cwd, &["exec", "repl", &session_for_run, snippet], None)
    });
    let running = eventually(Duration::from_secs(20), "the slow execution to be running", || {
        let (_, list) = f.daemon.get(&format!("/executions?session_id={session}"));
        list.as_array()?.iter().find(|e| e["status"] == "running").map(|e| e["id"].as_str().unwrap().to_owned())
    });
    let followed = f.vm(&["exec", "events", &running, "--follow", "--interval-ms", "50"]);
    assert_eq!(followed.code, 0, "{followed:?}");
    let lines: Vec<&str> = followed.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"SEQ   TYPE        DETAIL"));
    assert_eq!(lines.last(), Some(&"3     value       'done'"), "follow ends after the last event: {followed:?}");
    let (_, execution) = f.daemon.get(&format!("/executions/{running}"));
    assert_eq!(execution["status"], "ok", "it returned only once the execution had ended");
    assert_eq!(slow.join().unwrap().stdout, "start\n'done'\n");

    let json_lines = f.ok(&["exec", "events", &running, "--follow", "--after-seq", "1", "-o", "json"]);
    let seqs: Vec<i64> =
        json_lines.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [2, 3], "one JSON object per line");

    let failed = f.vm(&["exec", "repl", &session, "throw 1", "-q"]);
    let followed = f.vm(&["exec", "events", failed.stdout.trim(), "--follow"]);
    assert_eq!(followed.code, 1, "following an execution that did not end ok exits 1: {followed:?}");
}

#[test]
fn a_limit_stops_an_execution_and_the_cli_prints_the_output_up_to_it() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "limits", "--max-events", "5"]);
    let session = f.id(&["session", "create", "--template-id", &template]);
    let run = f.vm(&["exec", "repl", &session, "for (let i = 0; i < 100; i++) console.log('line ' + i)"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.starts_with("line 0\nline 1\n"), "the events up to the limit are shown: {run:?}");
    assert!(!run.stdout.contains("line 99"), "{run:?}");
    assert!(run.stderr.starts_with("OUTPUT_LIMIT_EXCEEDED: "), "the limit is said once, as the error: {run:?}");
    assert!(run.stderr.contains("execution_id: "), "details name the execution: {run:?}");
}

#[test]
fn help_lists_the_topics_prints_each_and_still_gives_command_help() {
    let f = Fixture::start();
    let index = f.ok(&["help"]);
    let topics = [
        "getting-started",
        "architecture",
        "api-reference",
        "cli-command-reference",
        "templates-and-sessions",
        "javascript",
        "examples",
        "security",
        "operations",
        "contributing",
    ];
    for topic in topics {
        assert!(index.lines().any(|l| l.trim_start().starts_with(topic)), "{topic} listed in\n{index}");
        let text = f.ok(&["help", topic]);
        assert!(text.len() > 800, "{topic} is a real guide ({} bytes)", text.len());
        assert!(!text.contains("(draft)"), "{topic}");
    }
    let reference = f.ok(&["help", "cli-command-reference"]);
    for command in [
        "template create",
        "session create",
        "session fork",
        "exec repl",
        "exec events",
        "exec cancel",
        "--no-wait",
        "repl SESSION",
        "ops health",
        "completions",
    ] {
        assert!(reference.contains(command), "the reference covers {command}");
    }
    for code in ["0 ", "1 ", "2 ", "3 "] {
        assert!(reference.lines().any(|l| l.trim_start().starts_with(code)), "exit code {code}documented");
    }
    let repl_help = f.ok(&["help", "exec", "repl"]);
    assert!(repl_help.contains("Usage: vm-system exec repl"), "{repl_help}");
    assert_eq!(repl_help, f.ok(&["exec", "repl", "--help"]));
    for command in [&["repl"][..], &["exec", "cancel"], &["session", "fork"]] {
        let help = f.ok(&[&["help"][..], command].concat());
        assert!(help.contains(&format!("Usage: vm-system {}", command.join(" "))), "{help}");
    }
    assert!(f.ok(&["exec", "repl", "--help"]).contains("--no-wait"));
    let top = f.ok(&["--help"]);
    for group in ["template", "session", "exec", "repl", "ops", "completions", "help", "--output", "--server-url"] {
        assert!(top.contains(group), "{group} in --help");
    }
}

#[test]
fn completion_scripts_load_in_their_shell() {
    let f = Fixture::start();
    let bash = f.ok(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("vm-system.bash");
    std::fs::write(&script, &bash).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p vm-system", script.display()))
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("vm-system"));
    for (shell, marker) in [("zsh", "#compdef vm-system"), ("fish", "complete -c vm-system")] {
        let script = f.ok(&["completions", shell]);
        assert!(script.contains(marker), "{shell}");
        assert!(script.contains("runtime-summary"), "{shell} completes subcommands");
    }
}

/// Lines a running command prints, each with the time it arrived, read as
/// they come.
struct Lines {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(String, Instant)>,
}

impl Lines {
    fn spawn(f: &Fixture, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = crate::harness::cli_command(&f.daemon.url, &f.home.worktree(), args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("vm-system starts");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((line, Instant::now()));
            }
        });
        Self { child, lines }
    }

    /// The next line, within 30 s.
    fn next(&self) -> Option<(String, Instant)> {
        self.lines.recv_timeout(Duration::from_secs(30)).ok()
    }

    fn exit_code(mut self) -> i32 {
        crate::harness::wait_for_exit(&mut self.child, Duration::from_secs(30)).code().unwrap_or(-1)
    }
}

#[test]
fn exec_events_follow_streams_an_early_console_line_before_the_execution_ends() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "stream"]);
    let session = f.id(&["session", "create", "--template-id", &template]);
    let snippet = "console.log('early'); const t = Date.now(); while (Date.now() - t < 3000) {} \
                   console.log('late'); 'done'";
    let submitted = f.vm(&["exec", "repl", &session, snippet, "--no-wait", "-q"]);
    assert_eq!(submitted.code, 0, "{submitted:?}");
    let execution = submitted.stdout.trim().to_owned();
    assert_eq!(execution.len(), 36, "--no-wait -q prints the id at once: {submitted:?}");

    let follow = Lines::spawn(&f, &["exec", "events", &execution, "--follow"]);
    assert_eq!(follow.next().map(|(line, _)| line).as_deref(), Some("SEQ   TYPE        DETAIL"));
    let mut seen = Vec::new();
    while let Some((line, at)) = follow.next() {
        if line.contains("log: early") {
            let (_, now) = f.daemon.get(&format!("/executions/{execution}"));
            assert_eq!(now["status"], "running", "the early line came while the execution ran");
        }
        seen.push((line, at));
    }
    let lines: Vec<&str> = seen.iter().map(|(line, _)| line.as_str()).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].starts_with("1     input_echo  console.log('early')"), "{lines:?}");
    assert_eq!(lines[1..], ["2     console     log: early", "3     console     log: late", "4     value       'done'"]);
    let early_to_end = seen[3].1 - seen[1].1;
    assert!(early_to_end > Duration::from_millis(1000), "early arrived {early_to_end:?} before the end, not at it");
    assert_eq!(follow.exit_code(), 0, "ended ok");

    // Followed again once ended: the stored events, then the end, at once; JSON Lines.
    let json_lines = f.ok(&["exec", "events", &execution, "--follow", "--after-seq", "2", "-o", "json"]);
    let seqs: Vec<i64> =
        json_lines.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [3, 4]);

    // run-file --no-wait prints the running execution's block.
    f.home.write("slow.js", "const t1 = Date.now(); while (Date.now() - t1 < 300) {} 7\n");
    let started = f.ok(&["exec", "run-file", &session, "slow.js", "--no-wait"]);
    assert!(words(&started).contains(&vec!["status:", "running"]), "{started}");
    let id = words(&started).into_iter().find(|w| w.first() == Some(&"id:")).unwrap()[1].to_owned();
    assert_eq!(f.ok(&["exec", "events", &id, "--follow", "-q"]), "1\n2\n");
    let missing = f.vm(&["exec", "events", "00000000-0000-4000-8000-000000000000", "--follow"]);
    assert!(missing.code == 1 && missing.stderr.starts_with("EXECUTION_NOT_FOUND: "), "{missing:?}");
}

#[test]
fn exec_cancel_stops_an_endless_loop_and_the_session_keeps_its_state() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "cancel"]);
    let session = f.id(&["session", "create", "--template-id", &template]);
    assert_eq!(f.ok(&["exec", "repl", &session, "let kept = 'before'"]), "undefined\n");
    let execution = f.id(&["exec", "repl", &session, "kept = 'after'; while (true) {}", "--no-wait"]);
    let follow = Lines::spawn(&f, &["exec", "events", &execution, "--follow", "-o", "json"]);

    let cancelled = f.ok(&["exec", "cancel", &execution]);
    for expected in [vec!["status:", "cancelled"], vec!["rolled", "back:", "yes,"]] {
        assert!(words(&cancelled).iter().any(|w| w.starts_with(&expected)), "{expected:?} in\n{cancelled}");
    }
    let shown = f.json(&["exec", "get", &execution]);
    assert_eq!((shown["status"].as_str(), shown["error"]["code"].as_str()), (Some("cancelled"), Some("CANCELLED")));
    assert_eq!(shown["error"]["details"]["rolled_back"], true);

    let mut types = Vec::new();
    while let Some((line, _)) = follow.next() {
        types.push(serde_json::from_str::<Value>(&line).unwrap()["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(types.last().map(String::as_str), Some("system"), "the follower saw the cancel: {types:?}");
    assert_eq!(follow.exit_code(), 1, "a cancelled execution did not end ok");

    let again = f.vm(&["exec", "cancel", &execution]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.starts_with("EXECUTION_NOT_RUNNING: "), "{again:?}");
    assert!(again.stderr.contains(&format!("hint: execution {execution} has already ended")), "{again:?}");
    assert_eq!(f.ok(&["exec", "repl", &session, "kept"]), "'before'\n", "rolled back and still ready");
}

#[test]
fn session_fork_copies_the_heap_then_the_two_sessions_diverge() {
    let f = Fixture::start();
    let template = f.id(&["template", "create", "fork", "--checkpoints", "true"]);
    assert!(f.ok(&["template", "get-settings", &template]).contains("checkpoints=true"));
    let settings = f.ok(&["template", "set-settings", &template, "--checkpoints", "false"]);
    assert!(settings.contains("runtime:   esm=false strict=false console=true checkpoints=false"), "{settings}");
    assert_eq!(f.json(&["template", "get", &template])["settings"]["runtime"]["checkpoints"], false);
    f.ok(&["template", "set-settings", &template, "--checkpoints", "true"]);

    let source = f.id(&["session", "create", "--template-id", &template]);
    f.ok(&["exec", "repl", &source, "globalThis.who = 'source'; function hello() { return 'hi ' + who }"]);
    let forked = f.ok(&["session", "fork", &source]);
    assert!(words(&forked).contains(&vec!["forked", "from:", source.as_str()]), "{forked}");
    assert!(words(&forked).contains(&vec!["status:", "ready"]), "{forked}");
    let fork = words(&forked)[0][1].to_owned();
    assert_eq!(f.json(&["session", "get", &fork])["forked_from"], source.as_str());
    assert_eq!(f.json(&["session", "get", &source])["forked_from"], Value::Null);
    let listed = f.ok(&["session", "list"]);
    let row = words(&listed).into_iter().find(|w| w.first() == Some(&fork.as_str())).unwrap().join(" ");
    assert!(row.contains(&source), "the list shows FORKED-FROM: {listed}");

    assert_eq!(f.ok(&["exec", "repl", &fork, "hello()"]), "'hi source'\n", "the heap was copied");
    f.ok(&["exec", "repl", &fork, "who = 'fork'"]);
    assert_eq!(f.ok(&["exec", "repl", &fork, "hello()"]), "'hi fork'\n");
    assert_eq!(f.ok(&["exec", "repl", &source, "hello()"]), "'hi source'\n", "the source is unchanged");
    assert_eq!(f.id(&["session", "fork", &fork]).len(), 36, "a fork can be forked");

    f.ok(&["session", "close", &source]);
    let refused = f.vm(&["session", "fork", &source]);
    assert!(refused.code == 1 && refused.stderr.starts_with("SESSION_NOT_READY: "), "{refused:?}");
}
