//! Starts `vm-system serve` on a free port with a temporary database, library
//! cache, data directory and worktree, and talks to it over HTTP with the
//! daemon's bootstrap admin token.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_vm-system");

/// A temporary home: `vm.db`, `cache/`, `worktree/`, and `data/`, the
/// daemon's data directory (made by the daemon, with its token file). The
/// home is the daemon's only worktree root.
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

    /// `VM_SYSTEM_DATA_DIR` of the daemons started on this home.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
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
    /// Sends [`Daemon::token`] on every request.
    http: reqwest::blocking::Client,
    token: Option<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// The token of each running daemon, by URL, for [`cli_command`].
static TOKENS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

impl Daemon {
    /// Starts a daemon on `home`'s database and waits until it listens.
    pub fn start(home: &Home) -> Self {
        Self::start_with(home, &["--listen", "127.0.0.1:0"])
    }

    pub fn start_with(home: &Home, extra: &[&str]) -> Self {
        Self::start_command(serve_command(home, extra))
    }

    /// Starts a daemon from a [`serve_command`] the test has adjusted
    /// (resource limits, environment) and waits until it listens. Its token
    /// is the bootstrap admin token in its data directory, if there is one.
    pub fn start_command(mut command: Command) -> Self {
        let data_dir = data_dir_of(&command);
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("vm-system starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let (pipe, printed) = (child.stdout.take().unwrap(), stdout.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                printed.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("vm-system listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let (pipe, logged) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let echo = std::env::var_os("VM_TEST_LOG").is_some();
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                }
                logged.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the daemon did not report its address within 30 s; its log:\n{}", stderr.lock().unwrap());
            }
        };
        let token = data_dir.and_then(|dir| bootstrap_token(&dir, &url));
        let http = client(token.as_deref());
        if let Some(token) = &token {
            TOKENS.lock().unwrap().insert(url.clone(), token.clone());
        }
        Self { child, url, http, token, stdout, stderr }
    }

    /// The admin token the harness sends: the bootstrap token (`None` with
    /// `--auth=off` or `--admin-token-file`).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// An HTTP client that sends [`Daemon::token`].
    pub fn http(&self) -> reqwest::blocking::Client {
        self.http.clone()
    }

    /// What the daemon printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// What the daemon logged on stderr so far (also shown with `VM_TEST_LOG=1`).
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The daemon's process id, to watch its resource use.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// Sends `signal` (`TERM`, `INT`…) to the daemon and returns at once.
    pub fn signal(&self, signal: &str) {
        Command::new("kill").args([format!("-{signal}"), self.child.id().to_string()]).status().unwrap();
    }

    /// Waits for the daemon to exit on its own (after [`Daemon::signal`]);
    /// panics after `within`.
    pub fn exited_within(&mut self, within: Duration) -> ExitStatus {
        wait_for_exit(&mut self.child, within)
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
        TOKENS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.url);
    }
}

/// A blocking HTTP client that sends `token` as its bearer token.
pub fn client(token: Option<&str>) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    }
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).default_headers(headers).build().unwrap()
}

/// The bootstrap admin token a daemon at `url` keeps in `data_dir`: its
/// port's token file, else (a restart on another port, same database) the
/// newest token file there.
pub fn bootstrap_token(data_dir: &Path, url: &str) -> Option<String> {
    let read = |path: &Path| std::fs::read_to_string(path).ok().map(|text| text.trim().to_owned());
    let port = url.rsplit(':').next().unwrap_or_default().trim_end_matches('/');
    if let Some(token) = read(&data_dir.join(format!("admin-token-{port}"))) {
        return Some(token);
    }
    let mut files: Vec<_> = std::fs::read_dir(data_dir)
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("admin-token-"))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    files.sort();
    files.last().and_then(|(_, path)| read(path))
}

/// The data directory `command` gives the daemon: `--data-dir`, else
/// `VM_SYSTEM_DATA_DIR`.
fn data_dir_of(command: &Command) -> Option<PathBuf> {
    let args: Vec<_> = command.get_args().map(|arg| arg.to_string_lossy().into_owned()).collect();
    for (i, arg) in args.iter().enumerate() {
        if let Some(dir) = arg.strip_prefix("--data-dir=") {
            return Some(PathBuf::from(dir));
        }
        if arg == "--data-dir" {
            return args.get(i + 1).map(PathBuf::from);
        }
    }
    command.get_envs().find(|(name, _)| *name == "VM_SYSTEM_DATA_DIR").and_then(|(_, value)| value.map(PathBuf::from))
}

pub fn serve_command(home: &Home, extra: &[&str]) -> Command {
    serve_command_on(home, home.db().as_os_str(), extra)
}

/// [`serve_command`] with `--db DB` (another file, or a PostgreSQL URL)
/// instead of `home`'s database.
pub fn serve_command_on(home: &Home, db: &std::ffi::OsStr, extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg("--db")
        .arg(db)
        .arg("--cache-dir")
        .arg(home.dir.path().join("cache"))
        .arg("--worktree-root")
        .arg(home.dir.path())
        .args(extra)
        .current_dir(home.dir.path())
        .env("VM_SYSTEM_DATA_DIR", home.data_dir())
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
/// `server_url` (through `VM_SYSTEM_URL`, with its token in
/// `VM_SYSTEM_TOKEN`), with `stdin` piped in when given.
pub fn run_cli(server_url: &str, cwd: &Path, args: &[&str], stdin: Option<&str>) -> CliRun {
    run_command(cli_command(server_url, cwd, args), stdin)
}

/// The command [`run_cli`] runs, for a test to change its environment
/// before [`run_command`]. `VM_SYSTEM_TOKEN` is the token of the harness's
/// daemon at `server_url`, and unset for any other URL.
pub fn cli_command(server_url: &str, cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(cwd).env("VM_SYSTEM_URL", server_url).env_remove("VM_SYSTEM_LOG");
    match TOKENS.lock().unwrap().get(server_url) {
        Some(token) => command.env("VM_SYSTEM_TOKEN", token),
        None => command.env_remove("VM_SYSTEM_TOKEN"),
    };
    command
}

/// Runs a `vm-system` client command, with `stdin` piped in when given.
pub fn run_command(mut command: Command, stdin: Option<&str>) -> CliRun {
    use std::io::{Read, Write};
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("vm-system starts");
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
