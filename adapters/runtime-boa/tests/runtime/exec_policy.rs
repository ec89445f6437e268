//! The `exec` module's policy (issue 9): the program that runs is the one
//! the daemon resolved, with a fixed environment plus only allowed
//! variables; loader, PATH and git variables can never be set.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use vm_domain::event::EventPayload;
use vm_domain::ids::SessionId;
use vm_domain::ports::Outcome;

use crate::harness::{exec_capability, json_of, with_modules, Harness};

/// A session with `exec` allowing `programs` and the extra `env` names.
async fn exec_session(h: &Harness, programs: &[&str], env: &[&str]) -> SessionId {
    let mut capability = exec_capability(programs);
    capability.config.insert("env".into(), Value::from(env.to_vec()));
    h.session_with(|spec| {
        with_modules(spec, &["exec"]);
        spec.capabilities = vec![capability];
    })
    .await
}

/// `[code, message]` of what `source` threw, or `["none", result]`.
async fn caught(h: &Harness, s: SessionId, source: &str) -> (Outcome, Value) {
    let outcome =
        h.eval(s, &format!("try {{ ['none', {source}] }} catch (e) {{ [String(e.code), String(e.message)] }}")).await;
    let json = json_of(&outcome);
    (outcome, json)
}

fn has_output(outcome: &Outcome) -> bool {
    outcome.events.iter().any(|e| matches!(e, EventPayload::Stdout { .. } | EventPayload::Stderr { .. }))
}

fn mentions(outcome: &Outcome, needle: &str) -> bool {
    outcome.events.iter().any(|e| format!("{e:?}").contains(needle))
}

fn plant_script(h: &Harness, name: &str, body: &str) {
    let path = h.write(name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("an executable script");
}

#[tokio::test]
async fn exec_refuses_loader_path_git_and_unlisted_variables_and_does_not_run_the_program() {
    let h = Harness::new();
    let s = exec_session(&h, &["env"], &["MY_FLAG", "PATH", "LD_PRELOAD", "GIT_CONFIG_GLOBAL"]).await;
    let cases = [
        ("PATH", "'.'", "PATH changes which code a program loads"),
        ("LD_PRELOAD", "'./evil.so'", "LD_PRELOAD changes which code a program loads"),
        ("GIT_CONFIG_GLOBAL", "'./.gitconfig'", "GIT_CONFIG_GLOBAL changes which code a program loads"),
        ("HOME", "'/root'", "HOME changes which code a program loads"),
        ("OTHER_FLAG", "'1'", "OTHER_FLAG is not allowed"),
        ("'A=B'", "'1'", "'A=B' is not a valid variable name"),
    ];
    for (name, value, why) in cases {
        let source = format!("require('exec').run('env', [], {{ env: {{ LANG: 'C', {name}: {value} }} }})");
        let (outcome, json) = caught(&h, s, &source).await;
        assert_eq!(json[0], "ERR_ENV_NOT_ALLOWED", "{name}: {json}");
        assert!(json[1].as_str().unwrap().contains(why), "{name}: {json}");
        assert!(!has_output(&outcome), "{name}: the program must not run: {outcome:?}");
    }
}

#[tokio::test]
async fn exec_passes_listed_and_default_variables_over_a_fixed_environment() {
    let h = Harness::new();
    let s = exec_session(&h, &["env"], &["MY_FLAG"]).await;
    let (_, json) =
        caught(&h, s, "require('exec').run('env', [], { env: { MY_FLAG: 'on', LC_ALL: 'C' } }).stdout").await;
    let mut lines: Vec<String> = json[1].as_str().unwrap().lines().map(str::to_owned).collect();
    lines.sort();
    let home = format!("HOME={}", h.root().display());
    let mut expected = vec![
        "GIT_CONFIG_GLOBAL=/dev/null",
        "GIT_CONFIG_NOSYSTEM=1",
        "GIT_TERMINAL_PROMPT=0",
        &home,
        "LANG=C.UTF-8",
        "LC_ALL=C",
        "MY_FLAG=on",
        "PATH=/usr/local/bin:/usr/bin:/bin",
    ];
    expected.sort();
    assert_eq!(lines, expected, "nothing of the daemon's environment is inherited");
}

#[tokio::test]
async fn a_program_planted_in_the_worktree_never_runs_in_place_of_the_allowed_one() {
    let h = Harness::new();
    plant_script(&h, "env", "echo PLANTED");
    plant_script(&h, "sh", "echo PLANTED");
    let s = exec_session(&h, &["env", "sh"], &[]).await;
    for source in [
        "require('exec').run('env', [], { cwd: '.' })",
        "require('exec').run('env', ['env'], { cwd: '.' })",
        "require('exec').run('sh', ['-c', 'echo $0'], { cwd: '.' })",
    ] {
        let (outcome, json) = caught(&h, s, source).await;
        assert_eq!(json[0], "none", "{source}: {json}");
        assert!(!mentions(&outcome, "PLANTED"), "{source}: {outcome:?}");
    }
    let (_, json) = caught(&h, s, "require('exec').run('sh', ['-c', 'echo $0']).stdout").await;
    assert_eq!(json[1], "sh\n", "argv[0] stays the allowed name");
}

#[tokio::test]
async fn an_allowed_program_missing_from_the_daemons_path_is_enoent() {
    let h = Harness::new();
    let s = exec_session(&h, &["no-such-program-vm-test"], &[]).await;
    let (_, json) = caught(&h, s, "require('exec').run('no-such-program-vm-test')").await;
    assert_eq!(
        json,
        json!([
            "ENOENT",
            "exec.run: program 'no-such-program-vm-test' is allowed but was not found on the daemon's PATH when \
             the session started"
        ])
    );
}

#[tokio::test]
async fn git_runs_but_ignores_a_gitconfig_planted_in_the_worktree_home() {
    if std::process::Command::new("git").arg("--version").output().is_err() {
        eprintln!("note: git is not installed; skipping the planted .gitconfig test");
        return;
    }
    let h = Harness::new();
    h.write(".gitconfig", "[alias]\n\tx = !echo PWNED\n");
    std::fs::create_dir_all(h.root().join(".config/git")).unwrap();
    h.write(".config/git/config", "[alias]\n\tx = !echo PWNED\n");
    let s = exec_session(&h, &["git"], &[]).await;
    let (outcome, json) = caught(&h, s, "require('exec').run('git', ['x'])").await;
    assert_eq!(json[0], "none", "{json}");
    assert_ne!(json[1]["code"], 0, "the planted alias is not defined: {json}");
    assert!(!mentions(&outcome, "PWNED"), "{outcome:?}");
    let (_, version) = caught(&h, s, "require('exec').run('git', ['--version'])").await;
    assert_eq!(version[1]["code"], 0, "git itself still runs: {version}");
    assert!(version[1]["stdout"].as_str().unwrap().starts_with("git version"), "{version}");
}
