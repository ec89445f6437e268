//! `serve --db postgres://…`: the daemon on a real PostgreSQL server, a
//! clear one-sentence failure when the server is unreachable, and a
//! password that never reaches the logs.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{bootstrap_token, client, wait_for_exit, BIN};

/// `vm-system serve` on `db` with debug logs, in a temporary directory.
fn serve(dir: &std::path::Path, db: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "debug", "--db", db, "--cache-dir"])
        .arg(dir.join("cache"))
        .current_dir(dir)
        .env("VM_SYSTEM_DATA_DIR", dir.join("data"))
        .env_remove("VM_SYSTEM_LOG")
        .stdin(Stdio::null());
    command
}

#[test]
fn serve_on_an_unreachable_server_exits_with_one_sentence_naming_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    let output = serve(dir.path(), &format!("postgres://vm:s3cret@127.0.0.1:{port}/vm")).output().unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(format!("error: cannot reach the PostgreSQL server at 127.0.0.1:{port}: connection refused").as_str()),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
    assert!(!dir.path().join("vm-system.db").exists(), "fell back to SQLite");
}

#[test]
fn serve_on_postgres_keeps_data_across_restarts_and_never_logs_the_password() {
    let Some(url) = vm_testpg::fresh_database_url() else { return };
    // Trust authentication ignores the password, so it can be any secret.
    let with_password = url.replacen("postgres://postgres@", "postgres://postgres:s3cret@", 1);
    let dir = tempfile::tempdir().unwrap();

    let mut logs = String::new();
    let mut template_id = String::new();
    for round in 0..2 {
        let mut child =
            serve(dir.path(), &with_password).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let collected = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("vm-system listening on ") {
                    let _ = tx.send(address.trim().to_owned());
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(30)).expect("the daemon listens");
        let api = format!("{base}/api/v1");
        let http = client(bootstrap_token(&dir.path().join("data"), &base).as_deref());

        if round == 0 {
            let created: Value = http
                .post(format!("{api}/templates"))
                .json(&json!({ "name": "on-postgres" }))
                .send()
                .unwrap()
                .json()
                .unwrap();
            template_id = created["id"].as_str().expect("a template id").to_owned();
        } else {
            let found = http.get(format!("{api}/templates/{template_id}")).send().unwrap();
            assert_eq!(found.status().as_u16(), 200, "the template survived the restart");
        }

        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(wait_for_exit(&mut child, Duration::from_secs(20)).success());
        logs.push_str(&collected.join().unwrap());
    }

    assert!(logs.contains("postgres:***@127.0.0.1:"), "the redacted URL is logged: {logs}");
    assert!(!logs.contains("s3cret"), "the password leaked: {logs}");
    assert!(!dir.path().join("vm-system.db").exists(), "a SQLite file was created");
}
