//! A lab per test: a daemon started as root or as an unprivileged user (made
//! here when the tests run as root), on a private directory that also holds
//! what a session must never reach: a secret file, the daemon's database and
//! log, a file in the host's `/tmp`, a secret in the daemon's environment.
//! The lab is the daemon's worktree root and holds its data directory; the
//! harness sends the bootstrap admin token the daemon writes there.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_vm-system");

/// The account the unprivileged daemon runs as, when the tests run as root.
const TEST_USER: &str = "vmsystem-sbx";

/// Programs the lab's template lets `exec` run: a shell among them, since
/// the sandbox must hold even against a shell.
pub const PROGRAMS: &[&str] =
    &["sh", "bash", "git", "cat", "ls", "id", "kill", "sleep", "setsid", "nohup", "python3", "env", "grep", "stat"];

/// Who runs the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    Unprivileged,
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The unprivileged account's uid and gid: made once when running as root,
/// the current user's otherwise.
fn unprivileged_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        if !is_root() {
            return (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        }
        if nix::unistd::User::from_name(TEST_USER).ok().flatten().is_none() {
            let status = Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER])
                .status()
                .expect("useradd runs");
            assert!(status.success(), "useradd {TEST_USER} failed");
        }
        let user = nix::unistd::User::from_name(TEST_USER).unwrap().expect("the test user exists");
        (user.uid.as_raw(), user.gid.as_raw())
    })
}

pub struct Lab {
    pub who: As,
    pub dir: TempDir,
    daemon: Child,
    pub url: String,
    pub marker: String,
    /// A file in the host's `/tmp`, holding the marker.
    pub host_tmp_file: PathBuf,
    http: reqwest::blocking::Client,
    pub template: String,
}

impl Lab {
    /// A running daemon as `who`, or `None` (with a note) when this test
    /// process cannot start one that way (not root).
    pub fn start(who: As) -> Option<Self> {
        Self::start_with(who, &[])
    }

    pub fn start_with(who: As, extra: &[&str]) -> Option<Self> {
        if who == As::Root && !is_root() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs the sandbox suite as root");
            eprintln!("note: not root, so the daemon-as-root half of this test is skipped");
            return None;
        }
        let marker = format!("TOPSECRET-{}", uuid::Uuid::new_v4().simple());
        let dir = tempfile::Builder::new().prefix("vm-sbx-lab-").tempdir().expect("a lab dir");
        // Only the daemon's user can traverse the lab, as with a mkdtemp
        // directory or a checkout under /root.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        for sub in ["worktree", "other-worktree", "cache", "outside"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("outside/secret.txt"), &marker).unwrap();
        std::fs::write(dir.path().join("other-worktree/state.txt"), &marker).unwrap();
        std::fs::write(dir.path().join("worktree/hello.txt"), "hello from the worktree\n").unwrap();
        let host_tmp_file = std::env::temp_dir().join(format!("vm-sbx-{}.txt", uuid::Uuid::new_v4().simple()));
        std::fs::write(&host_tmp_file, &marker).unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        // A descriptor the daemon's launcher leaks to it (no close-on-exec):
        // it must not reach any session.
        let leaked = std::fs::File::open(dir.path().join("outside/secret.txt")).unwrap();
        nix::fcntl::fcntl(&leaked, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("vm.db"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .arg("--worktree-root")
            .arg(dir.path())
            .args(extra)
            .current_dir(dir.path())
            .env("VM_SYSTEM_DATA_DIR", dir.path().join("data"))
            .env_remove("VM_SYSTEM_TOKEN")
            .env("VM_SBX_DAEMON_SECRET", &marker)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if who == As::Unprivileged && is_root() {
            let (uid, gid) = unprivileged_user();
            chown_tree(dir.path(), uid, gid);
            command.uid(uid).gid(gid);
        }
        let mut daemon = command.spawn().expect("vm-system starts");
        drop(leaked);
        let url = listening_url(&mut daemon, dir.path());
        let http = authorized_client(&dir.path().join("data"), &url);
        let mut lab = Self { who, dir, daemon, url, marker, host_tmp_file, http, template: String::new() };
        lab.template = lab.make_template();
        Some(lab)
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn worktree(&self) -> PathBuf {
        self.path("worktree").canonicalize().unwrap()
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.id()
    }

    /// The sessions' keepers of this daemon: children of its zygotes.
    pub fn keeper_pids(&self) -> Vec<u32> {
        let zygotes = children_of(self.daemon.id());
        zygotes.into_iter().flat_map(children_of).collect()
    }

    /// The session processes of this daemon: the keepers and their
    /// children (each session's live worker and checkpoint).
    pub fn worker_pids(&self) -> Vec<u32> {
        let keepers = self.keeper_pids();
        let workers: Vec<u32> = keepers.iter().copied().flat_map(children_of).collect();
        keepers.into_iter().chain(workers).collect()
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.http.post(format!("{}/api/v1{path}", self.url)).json(&body).send().expect("answers");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(format!("{}/api/v1{path}", self.url)).send().expect("answers");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    fn make_template(&self) -> String {
        let (status, template) = self.post("/templates", json!({ "name": "sandbox-lab" }));
        assert_eq!(status, 201, "{template}");
        let id = template["id"].as_str().unwrap().to_owned();
        for module in ["fs", "exec", "database"] {
            let (status, body) = self.post(&format!("/templates/{id}/modules"), json!({ "name": module }));
            assert_eq!(status, 201, "{body}");
        }
        let capability = json!({ "kind": "module", "name": "exec", "enabled": true,
            "config": { "allow": PROGRAMS, "env": ["LAB_FLAG"] } });
        let (status, body) = self.post(&format!("/templates/{id}/capabilities"), capability);
        assert_eq!(status, 201, "{body}");
        id
    }

    /// A ready session on the lab's worktree.
    pub fn session(&self) -> String {
        self.session_on(&self.worktree())
    }

    pub fn session_on(&self, worktree: &Path) -> String {
        let body = json!({ "template_id": self.template, "workspace_id": "ws", "base_commit_oid": "c0ffee",
            "worktree_path": worktree.to_str().unwrap() });
        let (status, session) = self.post("/sessions", body);
        assert_eq!(status, 201, "{session}\n{}", self.daemon_log());
        session["id"].as_str().unwrap().to_owned()
    }

    pub fn close(&self, session: &str) {
        let (status, body) = self.post(&format!("/sessions/{session}/close"), json!({}));
        assert_eq!(status, 200, "{body}");
    }

    /// Runs a REPL snippet; the whole answer.
    pub fn repl(&self, session: &str, input: &str) -> (u16, Value) {
        self.post("/executions/repl", json!({ "session_id": session, "input": input }))
    }

    /// The JSON value of a snippet that must complete.
    #[track_caller]
    pub fn value(&self, session: &str, input: &str) -> Value {
        let (status, body) = self.repl(session, input);
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["status"], "ok", "{input}\n{body}");
        self.assert_no_marker(&body);
        body["result"]["json"].clone()
    }

    /// Runs `script` with `sh -c` inside the session: what a shell that an
    /// attacker got in the sandbox sees.
    #[track_caller]
    pub fn sh(&self, session: &str, script: &str) -> Shell {
        let snippet = format!(
            "(() => {{ const r = require('exec').run('sh', ['-c', {}], {{ timeout_ms: 20000 }}); \
             return {{ code: r.code, stdout: r.stdout, stderr: r.stderr }}; }})()",
            serde_json::to_string(script).unwrap()
        );
        let value = self.value(session, &snippet);
        Shell {
            code: value["code"].as_i64().unwrap_or(-1),
            stdout: value["stdout"].as_str().unwrap_or_default().to_owned(),
            stderr: value["stderr"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Fails when anything of `answer` holds the marker: a secret reached
    /// the session.
    #[track_caller]
    pub fn assert_no_marker(&self, answer: &Value) {
        let text = answer.to_string();
        assert!(!text.contains(&self.marker), "a secret from outside the worktree reached the session: {text}");
    }

    /// Whether any process on the host has `needle` in its command line.
    pub fn host_process_with(needle: &str) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(pid);
            }
        }
        found
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_file(&self.host_tmp_file);
    }
}

/// What `sh -c` printed and how it ended.
#[derive(Debug)]
pub struct Shell {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let status = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(path).status().unwrap();
    assert!(status.success());
}

/// A client that sends the bootstrap admin token the daemon at `url` wrote
/// to `data_dir` (readable by the daemon's user, and by root).
fn authorized_client(data_dir: &Path, url: &str) -> reqwest::blocking::Client {
    let port = url.rsplit(':').next().unwrap_or_default().trim_end_matches('/');
    let file = data_dir.join(format!("admin-token-{port}"));
    let token = std::fs::read_to_string(&file)
        .unwrap_or_else(|err| panic!("the daemon wrote its bootstrap token to {}: {err}", file.display()));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", token.trim()).parse().unwrap());
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).default_headers(headers).build().unwrap()
}

fn listening_url(daemon: &mut Child, dir: &Path) -> String {
    use std::io::{BufRead, BufReader};
    let stdout = daemon.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("vm-system listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => url,
        Err(_) => {
            let _ = daemon.kill();
            let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
            panic!("the daemon did not start within 30 s; its log:\n{log}");
        }
    }
}

/// Polls `probe` until it is true, or panics after `within`.
#[track_caller]
pub fn eventually(within: Duration, what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !probe() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}
