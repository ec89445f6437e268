//! `vm-system help getting-started` is executed: every `$ ` line runs in one
//! bash session, and what it prints must match the lines the guide shows.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{Daemon, Home, BIN};

/// One command of the guide and what the guide says it prints.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Vec<String>,
    exit_code: i32,
}

/// The `$ ` lines of the guide and the indented lines under each. A trailing
/// `# exit status N` comment (a bash comment, so the line still runs as
/// printed) says the command is meant to fail with N.
fn steps(guide: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_output = false;
    for line in guide.lines() {
        let trimmed = line.trim_start();
        if let Some(command) = trimmed.strip_prefix("$ ") {
            let exit_code = command
                .rsplit_once("# exit status ")
                .map(|(_, code)| code.trim().parse().expect("a number after `# exit status`"))
                .unwrap_or(0);
            steps.push(Step { command: command.to_owned(), expected: Vec::new(), exit_code });
            in_output = true;
        } else if trimmed.is_empty() || !line.starts_with("    ") {
            in_output = false;
        } else if in_output {
            steps.last_mut().unwrap().expected.push(trimmed.to_owned());
        }
    }
    steps
}

/// Whether one printed word matches one word of the guide. `<id>`, `<time>`,
/// `<ms>` and `<path>` check the word's form; any other `<…>` matches any word.
fn word_matches(expected: &str, actual: &str) -> bool {
    match expected {
        "<id>" => actual.len() == 36 && actual.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        "<time>" => chrono::DateTime::parse_from_rfc3339(actual).is_ok(),
        "<ms>" => actual.strip_suffix("ms").is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
        "<path>" => actual.starts_with('/'),
        _ if expected.starts_with('<') && expected.ends_with('>') && expected.len() > 2 => true,
        _ => expected == actual,
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let (expected, actual): (Vec<_>, Vec<_>) =
        (expected.split_whitespace().collect(), actual.split_whitespace().collect());
    expected.len() == actual.len() && expected.iter().zip(&actual).all(|(e, a)| word_matches(e, a))
}

/// Matches printed lines against the guide's; a `...` line stands for any
/// number of lines.
fn output_matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((dots, rest)) if dots == "..." => (0..=actual.len()).any(|skip| output_matches(rest, &actual[skip..])),
        Some((first, rest)) => {
            actual.split_first().is_some_and(|(line, more)| line_matches(first, line) && output_matches(rest, more))
        }
    }
}

#[test]
fn the_getting_started_guide_word_matching_rules_accept_and_refuse_what_they_should() {
    let id = "3dd128c4-4c24-4aaf-8107-634f3785c3f1";
    assert!(line_matches("id:  <id>", &format!("id:        {id}")));
    assert!(!line_matches("id:  <id>", "id:  not-an-id"));
    assert!(line_matches("<id>  repl  ok  <time>  <ms>  x", &format!("{id} repl ok 2026-01-02T03:04:05Z 12ms x")));
    assert!(!line_matches("<ms>", "12"));
    assert!(!line_matches("a b", "a b c"));
    let lines = ["Uncaught Error: boom", "    at <main> (<repl>:1:7)"];
    assert!(output_matches(&["Uncaught Error: boom".into(), "...".into()], &lines));
    assert!(!output_matches(&["Uncaught Error: bang".into(), "...".into()], &lines));
    assert!(!output_matches(&["Uncaught Error: boom".into()], &lines));
}

#[test]
fn every_command_of_the_getting_started_guide_works_as_printed() {
    let guide = Command::new(BIN).args(["help", "getting-started"]).output().unwrap();
    assert!(guide.status.success());
    let guide = String::from_utf8(guide.stdout).unwrap();
    let steps = steps(&guide);
    assert!(steps.len() >= 20, "the guide has its commands ({} found)", steps.len());

    // Step one starts the daemon. The test runs it on a free port with the
    // database in a temporary directory instead of blocking on port 3210; the
    // guide's other commands then reach it through VM_SYSTEM_URL, and find
    // its bootstrap token in its data directory as a reader's commands do.
    let serve = &steps[0];
    assert_eq!(serve.command, "vm-system serve");
    assert_eq!(serve.expected.last().map(String::as_str), Some("vm-system listening on http://127.0.0.1:3210"));
    let home = Home::new();
    let daemon = Daemon::start(&home);
    assert!(daemon.url.starts_with("http://127.0.0.1:"));
    // What serve printed, on the guide's port and with its secret written
    // as the guide writes it.
    let secret = daemon.token().expect("a bootstrap token").to_owned();
    let printed = daemon.stdout().replace(&daemon.url, "http://127.0.0.1:3210").replace(&secret, "<token>");
    let lines: Vec<&str> = printed.lines().collect();
    assert!(
        output_matches(&serve.expected, &lines),
        "serve printed:\n{printed}\nthe guide says:\n{:?}",
        serve.expected
    );

    let user_home = home.dir.path().join("user");
    let outputs = home.dir.path().join("outputs");
    std::fs::create_dir_all(&user_home).unwrap();
    std::fs::create_dir_all(&outputs).unwrap();
    let rest = &steps[1..];
    let script = bash_script(rest, &outputs);
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let ran = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&user_home)
        .env("HOME", &user_home)
        .env("PATH", path)
        .env("VM_SYSTEM_URL", &daemon.url)
        .env("VM_SYSTEM_DATA_DIR", home.data_dir())
        .env_remove("VM_SYSTEM_TOKEN")
        .env_remove("VM_SYSTEM_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(ran.status.success(), "the guide's script ran: {}", String::from_utf8_lossy(&ran.stderr));

    for (index, step) in rest.iter().enumerate() {
        let read =
            |suffix: &str| std::fs::read_to_string(outputs.join(format!("{index}.{suffix}"))).unwrap_or_default();
        let code: i32 = read("rc").trim().parse().unwrap_or(-1);
        let printed = format!("{}{}", read("out"), read("err"));
        assert_eq!(code, step.exit_code, "`{}` exited {code}; it printed:\n{printed}", step.command);
        let lines: Vec<&str> = printed.lines().collect();
        assert!(
            output_matches(&step.expected, &lines),
            "`{}` printed:\n{printed}\nthe guide says:\n{}",
            step.command,
            step.expected.join("\n")
        );
    }
}

/// One bash session for all the commands, so `cd` and variables carry over
/// as in the reader's terminal. Each command's stdout, stderr and exit status
/// go to files named by its index.
fn bash_script(steps: &[Step], outputs: &Path) -> String {
    let mut script = String::from("set -o pipefail\n");
    for (index, step) in steps.iter().enumerate() {
        let base = outputs.join(index.to_string());
        let base = base.display();
        script.push_str(&format!("{{\n{}\n}} > '{base}.out' 2> '{base}.err'\necho $? > '{base}.rc'\n", step.command));
    }
    script
}
