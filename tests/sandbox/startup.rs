//! Fail closed: a daemon that cannot confine sessions as asked does not
//! start, and says why; `--sandbox=off` is loud.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{is_root, As, Lab, BIN};

/// Runs `serve` with `extra` and expects it to exit at once, failing;
/// returns what it printed on stderr.
fn refused(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("vm.db"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon started with {extra:?}; it must refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    assert!(!status.success(), "{extra:?}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"), "{extra:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_root_daemon_refuses_an_unknown_or_root_sandbox_user() {
    if !is_root() {
        eprintln!("note: not root; --sandbox-user only matters to a root daemon");
        return;
    }
    let unknown = refused(&["--sandbox-user", "no-such-user-vm-system"]);
    assert!(unknown.contains("--sandbox-user no-such-user-vm-system: no such user"), "{unknown}");
    for root in ["root", "0", "1000:0"] {
        let stderr = refused(&["--sandbox-user", root]);
        assert!(stderr.contains("never run as root"), "{root}: {stderr}");
    }
}

#[test]
fn sandbox_off_is_logged_loudly_and_gives_the_daemons_rights() {
    let Some(lab) = Lab::start_with(As::Unprivileged, &["--sandbox", "off"]) else { return };
    assert!(lab.daemon_log().contains("SANDBOX OFF"), "{}", lab.daemon_log());
    let session = lab.session();
    let input = format!("require('exec').run('cat', ['{}']).stdout", lab.path("outside/secret.txt").display());
    let (status, body) = lab.repl(&session, &input);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["result"]["json"], lab.marker.as_str(), "without the sandbox, a session reads what the daemon can");
}
