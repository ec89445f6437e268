//! API security through the real binary: the bootstrap admin token and its
//! file, the CLI's token (flag, variable, file), `vm-system token …`,
//! `--admin-token-file`, `--auth=off`, worktree roots, the `Host` check and
//! the audit log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{
    cli_command, client, eventually, path_str, run_cli, run_command, serve_command, CliRun, Daemon, Home,
};

/// `vm-system ARGS` against `daemon` with no `VM_SYSTEM_TOKEN`, as a user
/// on the daemon's machine runs it: the token comes from `data_dir`.
fn cli_without_token(daemon: &Daemon, data_dir: &Path, args: &[&str]) -> CliRun {
    let mut command = cli_command(&daemon.url, data_dir.parent().unwrap(), args);
    command.env_remove("VM_SYSTEM_TOKEN").env("VM_SYSTEM_DATA_DIR", data_dir);
    run_command(command, None)
}

/// `vm-system ARGS` against `daemon` with `VM_SYSTEM_TOKEN=token` and a data
/// directory without token files.
fn cli_with_token(daemon: &Daemon, token: &str, args: &[&str]) -> CliRun {
    let empty = tempfile::tempdir().unwrap();
    let mut command = cli_command(&daemon.url, empty.path(), args);
    command.env("VM_SYSTEM_TOKEN", token).env("VM_SYSTEM_DATA_DIR", empty.path());
    run_command(command, None)
}

/// The `-o json` output of a command that must succeed.
#[track_caller]
fn json_of(run: CliRun) -> Value {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("no JSON ({err}): {run:?}"))
}

fn port(daemon: &Daemon) -> &str {
    daemon.url.rsplit(':').next().unwrap()
}

#[test]
fn the_bootstrap_token_is_printed_once_and_kept_in_a_file_only_its_user_can_read() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let file = home.data_dir().join(format!("admin-token-{}", port(&daemon)));
    let secret = std::fs::read_to_string(&file).expect("the token file is written").trim().to_owned();
    assert!(secret.starts_with("vmsys_"), "{secret}");
    assert_eq!(daemon.token(), Some(secret.as_str()));
    let printed = daemon.stdout();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines,
        [
            format!("Bootstrap admin token (shown once): {secret}").as_str(),
            &format!("It is saved, readable only by you, in {}", file.display()),
            &format!("Web UI, signed in: {}/#token={secret}", daemon.url),
            &format!("vm-system listening on {}", daemon.url),
        ]
    );
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(home.data_dir()).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(daemon.get("/whoami").1["name"], "bootstrap");

    // Restarted on the same database, data directory and port: no new
    // secret is made or printed, and the file still holds a working token.
    let address = daemon.url.trim_start_matches("http://").to_owned();
    assert!(daemon.terminate().success());
    let restarted = Daemon::start_with(&home, &["--listen", &address]);
    assert_eq!(restarted.stdout(), format!("vm-system listening on {}\n", restarted.url));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), secret, "the file is kept as it was");
    let (status, me) = restarted.get("/whoami");
    assert_eq!((status, me["name"].as_str()), (200, Some("bootstrap")), "{me}");
    let tokens = json_of(cli_without_token(&restarted, &home.data_dir(), &["token", "list", "-o", "json"]));
    assert_eq!(tokens.as_array().unwrap().len(), 1, "one token, made by the first start: {tokens}");
}

#[test]
fn the_cli_uses_the_token_file_of_a_daemon_on_this_machine_or_vm_system_token() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let secret = daemon.token().unwrap().to_owned();

    let me = json_of(cli_without_token(&daemon, &home.data_dir(), &["token", "whoami", "-o", "json"]));
    assert_eq!((me["name"].as_str(), me["scopes"].clone()), (Some("bootstrap"), json!(["admin"])));
    let by_name = daemon.url.replace("127.0.0.1", "localhost");
    let mut command = cli_command(&by_name, home.dir.path(), &["template", "create", "via-localhost", "-q"]);
    command.env_remove("VM_SYSTEM_TOKEN").env("VM_SYSTEM_DATA_DIR", home.data_dir());
    let created = run_command(command, None);
    assert_eq!(created.code, 0, "localhost is this machine too: {created:?}");

    let listed = cli_with_token(&daemon, &secret, &["template", "list", "-q"]);
    assert_eq!((listed.code, listed.stdout.trim()), (0, created.stdout.trim()), "{listed:?}");
    let flag = cli_with_token(&daemon, "", &["template", "list", "-q", "--token", &secret]);
    assert_eq!(flag.code, 0, "{flag:?}");

    let bad = cli_with_token(&daemon, "vmsys_not-a-token", &["template", "list"]);
    assert_eq!((bad.code, bad.stdout.as_str()), (1, ""), "{bad:?}");
    let lines: Vec<&str> = bad.stderr.lines().collect();
    assert!(lines[0].starts_with("UNAUTHENTICATED: "), "{bad:?}");
    assert!(lines[1].starts_with("hint: ") && lines[1].contains("VM_SYSTEM_TOKEN") && lines[1].contains("--token"));
    assert!(!bad.stderr.contains("vmsys_not-a-token"), "the secret is not repeated: {bad:?}");

    let elsewhere = tempfile::tempdir().unwrap();
    let missing = cli_without_token(&daemon, elsewhere.path(), &["session", "list"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.starts_with("UNAUTHENTICATED: "), "{missing:?}");
    let looked_at = elsewhere.path().join(format!("admin-token-{}", port(&daemon)));
    assert!(missing.stderr.contains(path_str(&looked_at)), "the hint names the file it looked at: {missing:?}");
    let blank = cli_without_token(&daemon, &home.data_dir(), &["session", "list", "--token", ""]);
    assert!(blank.code == 1 && blank.stderr.starts_with("UNAUTHENTICATED: "), "a blank token is no token: {blank:?}");
}

#[test]
fn tokens_are_made_listed_checked_and_revoked_from_the_cli() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let vm = |args: &[&str]| run_cli(&daemon.url, home.dir.path(), args, None);

    let made = vm(&["token", "create", "ci", "--scope", "read", "--scope", "execute", "--expires-in", "30d"]);
    assert_eq!(made.code, 0, "{made:?}");
    assert!(made.stdout.contains("shown only this once"), "{made:?}");
    let secret_line = made.stdout.lines().find(|l| l.starts_with("secret:")).expect("the secret is printed");
    let ci_secret = secret_line.split_whitespace().nth(1).unwrap().to_owned();
    assert!(ci_secret.starts_with("vmsys_"), "{made:?}");

    let reader = vm(&["token", "create", "reader", "--scope", "read", "-q"]);
    assert_eq!(reader.code, 0, "{reader:?}");
    let reader_secret = reader.stdout.trim().to_owned();
    assert!(reader_secret.starts_with("vmsys_") && !reader_secret.contains('\n'), "-q prints the secret: {reader:?}");

    let both = json_of(vm(&["token", "create", "both", "--scope", "read,execute", "-o", "json"]));
    assert!(both["secret"].as_str().unwrap().starts_with("vmsys_"), "{both}");
    assert_eq!(
        (both["token"]["scopes"].clone(), both["token"]["status"].clone()),
        (json!(["read", "execute"]), json!("active"))
    );
    assert_eq!(both["token"]["expires_at"], Value::Null);

    let listed = vm(&["token", "list"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let header = listed.stdout.lines().next().unwrap();
    assert!(header.split_whitespace().eq(["ID", "NAME", "SCOPES", "STATUS", "CREATED", "LAST-USED", "EXPIRES"]));
    let ci_row = listed.stdout.lines().find(|l| l.contains(" ci ")).expect("ci is listed");
    assert!(ci_row.contains("read, execute") && ci_row.contains("active"), "{ci_row}");
    assert!(!listed.stdout.contains(&ci_secret), "secrets are never listed");
    let api = json_of(vm(&["token", "list", "-o", "json"]));
    let ci = api.as_array().unwrap().iter().find(|t| t["name"] == "ci").unwrap().clone();
    let ci_id = ci["id"].as_str().unwrap().to_owned();
    let expires = chrono::DateTime::parse_from_rfc3339(ci["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() / 24;
    assert!((29..=30).contains(&days), "--expires-in 30d: {ci}");
    let ids = vm(&["token", "list", "-q"]).stdout;
    assert_eq!(ids.lines().count(), 4, "bootstrap, ci, reader, both: {ids}");

    let whoami = cli_with_token(&daemon, &reader_secret, &["token", "whoami"]);
    assert_eq!(whoami.code, 0, "{whoami:?}");
    assert!(whoami.stdout.lines().any(|l| l.split_whitespace().eq(["name:", "reader"])), "{whoami:?}");
    assert!(whoami.stdout.lines().any(|l| l.split_whitespace().eq(["scopes:", "read"])), "{whoami:?}");
    assert_eq!(cli_with_token(&daemon, &reader_secret, &["template", "list"]).code, 0);
    let forbidden = cli_with_token(&daemon, &reader_secret, &["template", "create", "nope"]);
    assert_eq!(forbidden.code, 1, "{forbidden:?}");
    assert!(forbidden.stderr.starts_with("FORBIDDEN: "), "{forbidden:?}");
    let not_admin = cli_with_token(&daemon, &ci_secret, &["token", "list"]);
    assert!(not_admin.stderr.starts_with("FORBIDDEN: "), "tokens need admin: {not_admin:?}");
    assert_eq!(cli_with_token(&daemon, &ci_secret, &["session", "list"]).code, 0);

    let revoked = json_of(vm(&["token", "revoke", &ci_id, "-o", "json"]));
    assert_eq!((revoked["id"].as_str(), revoked["status"].as_str()), (Some(ci_id.as_str()), Some("revoked")));
    assert_eq!(vm(&["token", "revoke", &ci_id, "-q"]).stdout.trim(), ci_id, "revoking twice is harmless");
    let shown = vm(&["token", "get", &ci_id]);
    assert!(shown.stdout.lines().any(|l| l.split_whitespace().eq(["status:", "revoked"])), "{shown:?}");
    let refused = cli_with_token(&daemon, &ci_secret, &["session", "list"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.starts_with("UNAUTHENTICATED: "), "{refused:?}");
    assert!(refused.stderr.contains("revoked"), "{refused:?}");
    let unknown = vm(&["token", "get", "00000000-0000-4000-8000-000000000000"]);
    assert!(unknown.code == 1 && unknown.stderr.starts_with("TOKEN_NOT_FOUND: "), "{unknown:?}");
}

#[test]
fn an_admin_token_file_makes_its_secret_an_admin_token_and_no_bootstrap_token() {
    let home = Home::new();
    let file = home.dir.path().join("admin.secret");
    let secret = "automation-secret-0123456789abcdefghij";
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let daemon = Daemon::start_with(&home, &["--listen", "127.0.0.1:0", "--admin-token-file", path_str(&file)]);
    assert_eq!(daemon.stdout(), format!("vm-system listening on {}\n", daemon.url), "no bootstrap token");
    assert!(!home.data_dir().join(format!("admin-token-{}", port(&daemon))).exists());
    assert_eq!(daemon.token(), None);
    assert_eq!(daemon.get("/templates").0, 401);
    let me: Value = client(Some(secret)).get(format!("{}/api/v1/whoami", daemon.url)).send().unwrap().json().unwrap();
    assert_eq!((me["name"].as_str(), me["scopes"].clone()), (Some("admin-token-file"), json!(["admin"])));
    let created = cli_with_token(&daemon, secret, &["template", "create", "automated", "-q"]);
    assert_eq!(created.code, 0, "{created:?}");

    let short = home.dir.path().join("short.secret");
    std::fs::write(&short, "too-short\n").unwrap();
    let other = Home::new();
    let output = serve_command(&other, &["--listen", "127.0.0.1:0", "--admin-token-file", path_str(&short)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: ") && last.contains(path_str(&short)) && last.contains("32"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    assert!(!stderr.contains("too-short"), "the secret is not logged: {stderr}");
}

#[test]
fn auth_off_is_refused_on_a_public_address_and_loud_on_loopback() {
    let home = Home::new();
    let output = serve_command(&home, &["--auth=off", "--listen", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(error[0].starts_with("error: --auth=off is refused on 0.0.0.0:0"), "{stderr}");
    assert_eq!(error[0].matches(". ").count(), 0, "one sentence: {stderr}");

    let daemon = Daemon::start_with(&home, &["--auth=off", "--listen", "127.0.0.1:0", "--log-level", "info"]);
    assert_eq!(daemon.token(), None);
    assert_eq!(daemon.stdout(), format!("vm-system listening on {}\n", daemon.url), "no bootstrap token");
    eventually(Duration::from_secs(10), "AUTH OFF in the log", || daemon.logs().contains("AUTH OFF").then_some(()));
    assert_eq!(daemon.post("/templates", json!({ "name": "open" })).0, 201);
    let me = json_of(cli_without_token(&daemon, &home.data_dir(), &["token", "whoami", "-o", "json"]));
    assert_eq!(me["name"], "auth-off");
}

#[test]
fn a_session_outside_the_worktree_roots_is_refused_with_invalid_path_naming_the_root() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let vm = |args: &[&str]| run_cli(&daemon.url, home.dir.path(), args, None);
    let template = vm(&["template", "create", "roots", "-q"]).stdout.trim().to_owned();
    let outside = tempfile::tempdir().unwrap();
    let refused = vm(&["session", "create", "--template-id", &template, "--worktree-path", path_str(outside.path())]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.starts_with("INVALID_PATH: "), "{refused:?}");
    let root = home.dir.path().canonicalize().unwrap();
    assert!(refused.stderr.contains(path_str(&root)), "names the root: {refused:?}");
    let inside = vm(&["session", "create", "--template-id", &template, "--worktree-path", path_str(&home.worktree())]);
    assert_eq!(inside.code, 0, "{inside:?}");
}

#[test]
fn a_request_naming_a_foreign_host_is_misdirected() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    for path in ["/api/v1/templates", "/api/v1/health"] {
        let response =
            daemon.http().get(format!("{}{path}", daemon.url)).header("Host", "evil.example").send().unwrap();
        assert_eq!(response.status().as_u16(), 421, "{path}");
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"]["code"], "MISDIRECTED_REQUEST", "{body}");
    }
    assert_eq!(daemon.get("/templates").0, 200, "the daemon's own address is served");
}

#[test]
fn state_changing_requests_are_audited_by_token_name_and_never_log_a_secret() {
    let home = Home::new();
    let daemon = Daemon::start_with(&home, &["--listen", "127.0.0.1:0", "--log-level", "info"]);
    let secret = daemon.token().unwrap().to_owned();
    assert_eq!(daemon.post("/templates", json!({ "name": "audited" })).0, 201);
    let wrong = "vmsys_0000000000000000000000000000000000000000000000000000000000000000";
    let refused =
        client(Some(wrong)).post(format!("{}/api/v1/templates", daemon.url)).json(&json!({"name": "x"})).send();
    assert_eq!(refused.unwrap().status().as_u16(), 401);
    let line = eventually(Duration::from_secs(10), "the audit line of createTemplate", || {
        let logs = daemon.logs();
        logs.lines()
            .find(|l| {
                l.contains("vm_system::audit")
                    && l.contains("token=bootstrap")
                    && l.contains("route=\"createTemplate\"")
            })
            .map(str::to_owned)
    });
    assert!(line.contains("status=201"), "{line}");
    eventually(Duration::from_secs(10), "the audit line of the refused request", || {
        daemon.logs().lines().any(|l| l.contains("vm_system::audit") && l.contains("status=401")).then_some(())
    });
    let logs = daemon.logs();
    assert!(!logs.contains(&secret), "the bootstrap secret reached the log:\n{logs}");
    assert!(!logs.contains(wrong), "a presented secret reached the log:\n{logs}");
}
