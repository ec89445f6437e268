//! vm-testpg: throwaway PostgreSQL clusters for tests and benches, made with
//! the server's own `initdb` and `pg_ctl` on a temporary directory and a free
//! port, and removed again when the cluster or the process holding it ends.
//!
//! Layout:
//! - [`Cluster`]: start one, create databases in it, get their URLs; stop
//!   and restart its server, as an outage would.
//! - [`shared`]: the one cluster of a test process, started on first use;
//!   `None` after a loud warning when the server binaries are absent, a
//!   panic instead under `CI=true`. [`dedicated`]: the same for a cluster
//!   of one test's own (one it may stop).
//! - [`Binaries`]: where `initdb`, `pg_ctl` and `psql` are.
//! - [`SmallDisk`]: a small tmpfs, for the other outage of a store: a full
//!   disk (root only; skipped loudly elsewhere, a panic under `CI=true`).
//!
//! PostgreSQL refuses to run as root, so as root every server command runs
//! as an unprivileged user (`postgres`, else `nobody`) through `runuser`.
//! Removal does not depend on this process ending well: a small reaper shell
//! waits for its stdin pipe to close (which the kernel does even when the
//! process is killed), then stops the server and deletes the directory.

mod small_disk;

pub use small_disk::SmallDisk;

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The cluster's superuser, trusted on 127.0.0.1 without a password.
pub const SUPERUSER: &str = "postgres";

/// Names a directory holding `initdb`, `pg_ctl` and `psql`, searched before
/// `PATH` and Debian's `/usr/lib/postgresql/<version>/bin`.
pub const BINDIR_ENV: &str = "VM_TEST_PG_BINDIR";

/// Names the unprivileged user that runs the server when this process is
/// root (default: `postgres`, else `nobody`).
pub const USER_ENV: &str = "VM_TEST_PG_USER";

/// Why a cluster could not be started or used.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn error(message: impl Into<String>) -> Error {
    Error(message.into())
}

/// Whether this run must not skip: `CI` is `true` (or `1`).
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The directory of the PostgreSQL server programs.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    const TOOLS: [&'static str; 3] = ["initdb", "pg_ctl", "psql"];

    /// Finds a directory with `initdb`, `pg_ctl` and `psql`: [`BINDIR_ENV`],
    /// then `PATH` (following symlinks to the real directory), then the
    /// newest `/usr/lib/postgresql/*/bin`. `None` when the server is not
    /// installed.
    pub fn locate() -> Option<Binaries> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os(BINDIR_ENV) {
            candidates.push(dir.into());
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if let Ok(real) = dir.join("initdb").canonicalize() {
                    candidates.extend(real.parent().map(Path::to_owned));
                }
            }
        }
        let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        candidates.extend(debian.into_iter().map(|(_, dir)| dir));
        candidates
            .into_iter()
            .find(|dir| Self::TOOLS.iter().all(|tool| dir.join(tool).is_file()))
            .map(|dir| Binaries { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// How a cluster is tuned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep PostgreSQL's durable defaults (`fsync`, `synchronous_commit`,
    /// `full_page_writes` on), as a benchmark wants. Tests leave it off:
    /// the data is thrown away anyway.
    pub durable: bool,
}

/// The unprivileged account that runs the server when we are root.
#[derive(Debug, Clone)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

/// A running PostgreSQL server on `127.0.0.1:<port>`, its data and unix
/// socket in one temporary directory. Dropping it stops the server and
/// removes the directory.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    binaries: Binaries,
    account: Option<Account>,
    /// Closing the reaper's stdin makes it stop the server and remove `dir`.
    reaper: Option<(Child, ChildStdin)>,
    databases: AtomicU32,
}

impl Cluster {
    /// Runs `initdb` on a new temporary directory and starts the server with
    /// `pg_ctl` on a free port, listening on 127.0.0.1 and a unix socket in
    /// that directory, with trust authentication for [`SUPERUSER`].
    pub fn start(options: Options) -> Result<Cluster, Error> {
        let binaries = Binaries::locate().ok_or_else(|| {
            error("the PostgreSQL server programs (initdb, pg_ctl) are not installed; on Debian: apt-get install postgresql")
        })?;
        let account = if is_root() { Some(unprivileged_account()?) } else { None };
        // The server's user must be able to reach the directory: as root,
        // use /tmp rather than a TMPDIR that may sit in root's home.
        let parent = if account.is_some() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let temp = tempfile::Builder::new()
            .prefix("vm-testpg-")
            .tempdir_in(&parent)
            .map_err(|e| error(format!("cannot create a temporary directory in {}: {e}", parent.display())))?;
        let dir = temp.path().to_owned();
        if let Some(account) = &account {
            chown(&dir, Some(account.uid), Some(account.gid))
                .map_err(|e| error(format!("cannot hand {} to user {}: {e}", dir.display(), account.name)))?;
        }
        let mut cluster = Cluster { dir, port: 0, binaries, account, reaper: None, databases: AtomicU32::new(0) };
        cluster.init(options)?;
        cluster.spawn_reaper()?;
        // From here on the reaper owns the directory's removal.
        let _ = temp.keep();
        cluster.serve()?;
        Ok(cluster)
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the data directory, the unix socket and
    /// `server.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of `database` as [`SUPERUSER`] over TCP.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database with a name unique in this cluster and
    /// returns its URL.
    pub fn create_database(&self) -> Result<String, Error> {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("vm_test_{n}");
        self.sql(&format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Runs one SQL command in the `postgres` database with `psql`.
    pub fn sql(&self, command: &str) -> Result<String, Error> {
        self.sql_in("postgres", command)
    }

    /// Runs one SQL command in `database` (a name, or a URL of this
    /// cluster as [`Cluster::create_database`] returns) with `psql`.
    pub fn sql_in(&self, database: &str, command: &str) -> Result<String, Error> {
        let database = database.rsplit('/').next().unwrap_or(database);
        let output = Command::new(self.binaries.tool("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", SUPERUSER, "-d"])
            .arg(database)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(command)
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| error(format!("cannot run psql: {e}")))?;
        check(&output, &format!("psql -c {command:?}"))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Stops the server (`pg_ctl stop -m fast`: open transactions are
    /// rolled back and clients disconnected) and waits until it is down.
    /// The data directory stays, for [`Cluster::restart`].
    pub fn stop(&self) -> Result<(), Error> {
        let output = self
            .server_command(&self.binaries.tool("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .output()
            .map_err(|e| error(format!("cannot run pg_ctl: {e}")))?;
        check(&output, "pg_ctl stop")
    }

    /// Starts a stopped server again on the same port and data directory,
    /// and waits until it accepts connections.
    pub fn restart(&self) -> Result<(), Error> {
        let output = self.pg_ctl_start(self.port)?;
        if output.status.success() {
            return Ok(());
        }
        Err(error(format!(
            "pg_ctl start failed on port {}: {}\nserver log:\n{}",
            self.port,
            String::from_utf8_lossy(&output.stderr).trim(),
            self.log_tail()
        )))
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.dir.join("server.log")) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command for a server program, run as the unprivileged account when
    /// we are root, from the cluster directory (which that account can read).
    fn server_command(&self, program: &Path) -> Command {
        let mut command = match &self.account {
            None => Command::new(program),
            Some(account) => {
                let mut command = Command::new(runuser());
                command.args(["-u", &account.name, "--"]).arg(program);
                command
            }
        };
        command.current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    fn init(&self, options: Options) -> Result<(), Error> {
        let output = self
            .server_command(&self.binaries.tool("initdb"))
            .arg("-D")
            .arg(self.data())
            .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            .output()
            .map_err(|e| error(format!("cannot run initdb: {e}")))?;
        check(&output, "initdb")?;
        let mut conf = format!(
            "\n# vm-testpg\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nmax_connections = 300\n",
            self.dir.display()
        );
        if !options.durable {
            conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .and_then(|mut file| file.write_all(conf.as_bytes()))
            .map_err(|e| error(format!("cannot write postgresql.conf: {e}")))
    }

    /// Starts the reaper: a shell that ignores signals, waits for EOF on its
    /// stdin, then stops the server and removes the directory. Its own
    /// process group keeps a terminal's Ctrl+C from reaching it.
    fn spawn_reaper(&mut self) -> Result<(), Error> {
        const SCRIPT: &str = r#"trap '' INT TERM HUP
while read -r _; do :; done
"$0" stop -D "$1" -m immediate -w >/dev/null 2>&1
rm -rf "$2""#;
        let mut child = self
            .server_command(Path::new("/bin/sh"))
            .arg("-c")
            .arg(SCRIPT)
            .arg(self.binaries.tool("pg_ctl"))
            .arg(self.data())
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| error(format!("cannot start the cluster's reaper: {e}")))?;
        let stdin = child.stdin.take().expect("stdin was piped");
        self.reaper = Some((child, stdin));
        Ok(())
    }

    /// `pg_ctl start` on a free port; retried on a new port when another
    /// process took the port in between.
    fn serve(&mut self) -> Result<(), Error> {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port()?;
            let output = self.pg_ctl_start(port)?;
            if output.status.success() {
                self.port = port;
                return Ok(());
            }
            let log = self.log_tail();
            if attempt == ATTEMPTS || !log.contains("could not bind") {
                return Err(error(format!(
                    "pg_ctl start failed on port {port}: {}\nserver log:\n{log}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
        }
        unreachable!("the last attempt returns")
    }

    /// `pg_ctl start` on `port`, waiting until the server accepts
    /// connections; its log goes to `server.log`.
    fn pg_ctl_start(&self, port: u16) -> Result<Output, Error> {
        self.server_command(&self.binaries.tool("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {port}"))
            .arg("start")
            .output()
            .map_err(|e| error(format!("cannot run pg_ctl: {e}")))
    }
}

impl Drop for Cluster {
    /// Closes the reaper's stdin and waits until it has stopped the server
    /// and removed the directory.
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.reaper.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// The cluster shared by every test of this process, started on first use
/// with [`Options::default`] and removed when the process exits.
///
/// When the server programs are missing this returns `None` after printing
/// a warning past the test harness's output capture, or panics if
/// [`required`] (`CI=true`). A cluster that fails to start is a panic.
pub fn shared() -> Option<&'static Cluster> {
    static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if !installed() {
                return None;
            }
            Some(
                Cluster::start(Options::default()).unwrap_or_else(|e| panic!("cannot start a PostgreSQL cluster: {e}")),
            )
        })
        .as_ref()
}

/// A cluster of the caller's own, for a test that stops and restarts its
/// server: `None` after the same loud warning as [`shared`] when the server
/// programs are missing, a panic when [`required`] (`CI=true`) or when the
/// cluster fails to start.
pub fn dedicated(options: Options) -> Option<Cluster> {
    if !installed() {
        return None;
    }
    Some(Cluster::start(options).unwrap_or_else(|e| panic!("cannot start a PostgreSQL cluster: {e}")))
}

/// Whether the server programs are here; when not, warns (or panics under
/// `CI=true`).
fn installed() -> bool {
    if Binaries::locate().is_some() {
        return true;
    }
    assert!(
        !required(),
        "CI=true but the PostgreSQL server programs (initdb, pg_ctl, psql) are not installed: \
         .ci/run must apt-get install postgresql"
    );
    warn_skipping();
    false
}

/// A new database in the [`shared`] cluster; `None` when PostgreSQL tests
/// are skipped on this machine.
pub fn fresh_database_url() -> Option<String> {
    let cluster = shared()?;
    Some(
        cluster
            .create_database()
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}\n{}", cluster.log_tail())),
    )
}

/// Written to the real stderr, which libtest does not capture, so the
/// warning shows even though the skipped tests pass.
fn warn_skipping() {
    let banner = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{banner}\n!! PostgreSQL server programs (initdb, pg_ctl, psql) not found: the PostgreSQL\n\
         !! tests of this binary are SKIPPED. Install Debian's `postgresql` package or set\n\
         !! {BINDIR_ENV}. Under CI=true this is a failure.\n{banner}\n"
    );
}

fn check(output: &Output, what: &str) -> Result<(), Error> {
    if output.status.success() {
        return Ok(());
    }
    Err(error(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        String::from_utf8_lossy(&output.stdout).trim()
    )))
}

fn free_port() -> Result<u16, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| error(format!("cannot find a free port: {e}")))
}

fn is_root() -> bool {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

fn runuser() -> PathBuf {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("runuser"))
}

/// [`USER_ENV`], else `postgres`, else `nobody`, from `/etc/passwd`.
fn unprivileged_account() -> Result<Account, Error> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| error(format!("cannot read /etc/passwd: {e}")))?;
    let lookup = |wanted: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || fields[0] != wanted {
                return None;
            }
            Some(Account { name: wanted.to_owned(), uid: fields[2].parse().ok()?, gid: fields[3].parse().ok()? })
        })
    };
    let names = match std::env::var(USER_ENV) {
        Ok(name) => vec![name],
        Err(_) => vec!["postgres".to_owned(), "nobody".to_owned()],
    };
    names.iter().find_map(|name| lookup(name)).filter(|account| account.uid != 0).ok_or_else(|| {
        error(format!("running as root, and no unprivileged user to run PostgreSQL as (tried {names:?})"))
    })
}
