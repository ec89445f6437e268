//! Starts `vm-system serve` on a free port with a temporary database, library
//! cache and worktree, and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_vm-system");

/// A temporary home: `vm.db`, `cache/`, `worktree/`.
pub struct Home {
    pub dir: TempDir,
}

impl Home {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("cache")).unwrap();
        std::fs::create_dir_all(dir.path().join("worktree")).unwrap();
        Self { dir }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("vm.db")
    }

    pub fn worktree(&self) -> PathBuf {
        self.dir.path().join("worktree").canonicalize().unwrap()
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.worktree().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

pub struct Daemon {
    child: Child,
    pub url: String,
    http: reqwest::blocking::Client,
}

impl Daemon {
    /// Starts a daemon on `home`'s database and waits until it listens.
    pub fn start(home: &Home) -> Self {
        Self::start_with(home, &["--listen", "127.0.0.1:0"])
    }

    pub fn start_with(home: &Home, extra: &[&str]) -> Self {
        let mut child = serve_command(home, extra).stdout(Stdio::piped()).spawn().expect("vm-system starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("vm-system listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the daemon did not report its address within 30 s");
            }
        };
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Self { child, url, http }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        decode(self.http.get(format!("{}/api/v1{path}", self.url)).send())
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        decode(self.http.post(format!("{}/api/v1{path}", self.url)).json(&body).send())
    }

    pub fn get_raw(&self, path: &str) -> reqwest::blocking::Response {
        self.http.get(format!("{}{path}", self.url)).send().expect("the daemon answers")
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        wait_for_exit(&mut self.child, Duration::from_secs(20))
    }

    /// Kills the process outright, as a crash or `kill -9` would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve_command(home: &Home, extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg("--db")
        .arg(home.db())
        .arg("--cache-dir")
        .arg(home.dir.path().join("cache"))
        .args(extra)
        .current_dir(home.dir.path())
        .stdin(Stdio::null());
    if std::env::var_os("VM_TEST_LOG").is_some() {
        command.stderr(Stdio::inherit());
    } else {
        command.stderr(Stdio::null());
    }
    command
}

fn decode(response: reqwest::Result<reqwest::blocking::Response>) -> (u16, Value) {
    let response = response.expect("the daemon answers");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn wait_for_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `probe` until it returns `Some`, or panics after `within`.
pub fn eventually<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// What one `vm-system` command did: its exit code and its output.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `vm-system ARGS` as a user would, in `cwd`, against the daemon at
/// `server_url` (through `VM_SYSTEM_URL`), with `stdin` piped in when given.
pub fn run_cli(server_url: &str, cwd: &Path, args: &[&str], stdin: Option<&str>) -> CliRun {
    use std::io::{Read, Write};
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("VM_SYSTEM_URL", server_url)
        .env_remove("VM_SYSTEM_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vm-system starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text).unwrap_or_default()
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text).unwrap_or_default()
    });
    let status = wait_for_exit(&mut child, Duration::from_secs(90));
    CliRun { code: status.code().unwrap_or(-1), stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}
