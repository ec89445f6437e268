//! `vm-system repl` as a person uses it: the real binary in a pseudo-terminal
//! (line editor, raw mode, Ctrl+C as the terminal sends it) against a real
//! daemon.

use std::process::Command;
use std::time::{Duration, Instant};

use rexpect::session::{spawn_with_options, Options, PtySession};

use crate::harness::{cli_command, eventually, run_cli, Daemon, Home};
use crate::runtime::{session, template};

/// How long any one expected output may take.
const EXPECT_MS: u64 = 30_000;

struct Fixture {
    home: Home,
    daemon: Daemon,
    session: String,
    history: std::path::PathBuf,
}

impl Fixture {
    fn start() -> Self {
        let home = Home::new();
        let daemon = Daemon::start(&home);
        let template = template(&daemon, serde_json::json!({}), &[], &[]);
        let session = session(&daemon, &home, &template);
        let history = home.dir.path().join("state").join("repl_history");
        Self { home, daemon, session, history }
    }

    /// `vm-system ARGS` as run by a person, with this fixture's history file.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = cli_command(&self.daemon.url, &self.home.worktree(), args);
        command.env("TERM", "xterm").env("VM_SYSTEM_REPL_HISTORY", &self.history);
        command
    }

    /// `vm-system repl SESSION` in a pseudo-terminal, at its first prompt.
    fn repl(&self) -> PtySession {
        let command = self.command(&["repl", &self.session]);
        let options = Options { timeout_ms: Some(EXPECT_MS), strip_ansi_escape_codes: true };
        let mut repl = spawn_with_options(command, options).expect("vm-system repl starts in a pty");
        repl.exp_string(&format!("session {}", self.session)).expect("the banner names the session");
        repl.exp_string("> ").expect("a prompt");
        repl
    }

    /// The id of the execution of this session that is running now.
    fn running(&self) -> String {
        eventually(Duration::from_secs(20), "an execution to be running", || {
            let (_, list) = self.daemon.get(&format!("/executions?session_id={}", self.session));
            let running = list.as_array()?.iter().find(|e| e["status"] == "running")?;
            running["id"].as_str().map(str::to_owned)
        })
    }
}

/// Types `line` and Enter; waits for `expected` in what follows, then for
/// the next prompt (so that the line editor is reading again).
fn enter(repl: &mut PtySession, line: &str, expected: &str) {
    repl.send_line(line).unwrap();
    repl.exp_string(expected).unwrap_or_else(|err| panic!("{expected:?} after {line:?}: {err}"));
    repl.exp_string("> ").unwrap_or_else(|err| panic!("the prompt after {line:?}: {err}"));
}

#[test]
fn the_repl_evaluates_multi_line_entries_streams_output_and_ctrl_c_cancels_without_losing_state() {
    let f = Fixture::start();
    let mut repl = f.repl();

    // Values print as a REPL prints them; state persists between entries.
    enter(&mut repl, "6 * 7", "42");
    enter(&mut repl, "let kept = 'be' + 'fore'", "undefined");

    // An open bracket continues the entry on the next line; it runs once closed.
    repl.send_line("function add(a, b) {").unwrap();
    repl.send_line("  return a + b;").unwrap();
    enter(&mut repl, "}", "undefined");
    enter(&mut repl, "add(100, 23)", "123");

    // Console lines print as they happen, before the entry ends.
    let slow = "console.log('stream' + 'ed'); const t0 = Date.now(); while (Date.now() - t0 < 2000) {} 'fini' + 'shed'";
    repl.send_line(slow).unwrap();
    repl.exp_string("streamed").unwrap();
    let streamed = Instant::now();
    repl.exp_string("'finished'").unwrap();
    let waited = streamed.elapsed();
    repl.exp_string("> ").unwrap();
    assert!(waited > Duration::from_millis(700), "the console line came {waited:?} before the value, not with it");

    // Ctrl+C while an entry runs cancels it; the prompt comes back, the state is as before.
    repl.send_line("kept = 'after'; while (true) {}").unwrap();
    let running = f.running();
    repl.send_control('c').unwrap();
    repl.exp_string("execution cancelled").unwrap();
    repl.exp_string("rolled back").unwrap();
    repl.exp_string("> ").unwrap();
    let (_, cancelled) = f.daemon.get(&format!("/executions/{running}"));
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["error"]["details"]["rolled_back"], true);
    enter(&mut repl, "kept", "'before'");
    enter(&mut repl, "add(1, 1)", "2");

    // Exceptions and unknown commands are said; .help lists the commands.
    enter(&mut repl, "null.x", "Uncaught TypeError");
    enter(&mut repl, ".nope", "unknown command .nope");
    enter(&mut repl, ".help", ".exit");

    // Ctrl+C at the prompt clears the line; the REPL stays.
    repl.send("abandoned").unwrap();
    repl.flush().unwrap();
    repl.send_control('c').unwrap();
    repl.exp_string("the line is cleared").unwrap();
    enter(&mut repl, "'still' + ' here'", "'still here'");

    repl.send_line(".exit").unwrap();
    repl.exp_eof().unwrap();
    match repl.process.wait().unwrap() {
        rexpect::process::wait::WaitStatus::Exited(_, code) => assert_eq!(code, 0, ".exit leaves with 0"),
        other => panic!("the REPL ended with {other:?}"),
    }

    // Entries are kept in the history file, a multi-line one as one entry.
    let history = std::fs::read_to_string(&f.history).unwrap();
    assert!(history.lines().any(|l| l == "6 * 7"), "{history}");
    assert!(history.lines().any(|l| l == "function add(a, b) {\\n  return a + b;\\n}"), "{history}");
    let executions = f.daemon.get(&format!("/executions?session_id={}", f.session)).1;
    let inputs: Vec<&str> = executions.as_array().unwrap().iter().filter_map(|e| e["input"].as_str()).collect();
    assert!(inputs.contains(&"function add(a, b) {\n  return a + b;\n}"), "sent as one entry: {inputs:?}");
    assert!(!inputs.iter().any(|i| i.contains("abandoned")), "a cleared line is not sent: {inputs:?}");
}

#[test]
fn ctrl_d_leaves_and_the_history_of_a_previous_run_is_there() {
    let f = Fixture::start();
    std::fs::create_dir_all(f.history.parent().unwrap()).unwrap();
    std::fs::write(&f.history, "#V2\nglobalThis.fromHistory = 're' + 'called'\n").unwrap();
    let mut repl = f.repl();
    // Up recalls the previous run's entry.
    repl.send("\x1b[A").unwrap();
    repl.flush().unwrap();
    repl.exp_string("globalThis.fromHistory = 're' + 'called'").unwrap();
    enter(&mut repl, "", "'recalled'");
    enter(&mut repl, "typeof fromHistory", "'string'");
    repl.send_control('d').unwrap();
    repl.exp_eof().unwrap();
}

#[test]
fn a_missing_closed_or_unreachable_session_is_said_with_its_exit_code() {
    let f = Fixture::start();
    let cwd = f.home.worktree();
    let missing = run_cli(&f.daemon.url, &cwd, &["repl", "00000000-0000-4000-8000-000000000000"], None);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.starts_with("SESSION_NOT_FOUND: "), "{missing:?}");

    let closed = run_cli(&f.daemon.url, &cwd, &["session", "close", &f.session], None);
    assert_eq!(closed.code, 0, "{closed:?}");
    let refused = run_cli(&f.daemon.url, &cwd, &["repl", &f.session], None);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains(&format!("session {} is closed", f.session)), "{refused:?}");
    assert!(refused.stderr.contains("vm-system session create"), "says what to do: {refused:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = run_cli(&format!("http://127.0.0.1:{port}"), &cwd, &["repl", &f.session], None);
    assert_eq!(nowhere.code, 3, "{nowhere:?}");

    let usage = run_cli(&f.daemon.url, &cwd, &["repl", &f.session, "-o", "json"], None);
    assert_eq!(usage.code, 2, "{usage:?}");
}
