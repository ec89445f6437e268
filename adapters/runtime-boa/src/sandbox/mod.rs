//! The kernel's confinement of a session (SPEC §9): whatever code a session
//! runs and whatever its worktree holds, its worker and every program it
//! starts write only inside the worktree, read only it and a short list of
//! host paths, reach no network and no other process, hold no privilege,
//! stay within their caps and die with the session. One module per
//! mechanism, each saying what it adds and what it cannot do alone:
//!
//! - [`namespaces`]: PID, network, mount, IPC, UTS, cgroup (and user)
//!   namespaces per session; nothing outlives it, nothing outside is visible.
//! - [`mounts`]: a fresh read-only root with only what the policy allows.
//! - [`credentials`]: an unprivileged user, no capabilities, `no_new_privs`.
//! - [`landlock`]: file, network and IPC access rules in the kernel.
//! - [`seccomp`]: system calls a session never needs are refused.
//! - [`fds`]: nothing inherited but the worker's own channel.
//!
//! The policy (what a session may touch) comes from the domain
//! ([`vm_domain::sandbox::SandboxPolicy`]); this is the mechanism. Every step
//! fails closed: a session whose confinement cannot be applied does not
//! start, with a [`SandboxError`] saying which step failed.

pub mod credentials;
pub mod fds;
pub mod landlock;
pub mod mounts;
pub mod namespaces;
pub mod seccomp;
pub mod user;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::protocol::{SandboxSpec, SandboxUser};
use namespaces::{Identity, Inherited};

/// How sessions are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// No confinement at all: only with an explicit `--sandbox=off`.
    Off,
    /// Every mechanism, failing closed. `run_as` is the account sessions run
    /// as when the daemon is root (required then, ignored otherwise).
    On { run_as: Option<SandboxUser> },
}

impl SandboxMode {
    pub fn is_on(&self) -> bool {
        matches!(self, Self::On { .. })
    }

    /// The account a root daemon's sessions run as, when the sandbox is on.
    pub fn run_as(&self) -> Option<SandboxUser> {
        match self {
            Self::On { run_as } => *run_as,
            Self::Off => None,
        }
    }
}

/// Why a session could not be confined, or why this machine cannot confine
/// sessions at all.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the kernel lacks what the sandbox needs: {0}")]
    KernelLacks(String),
    #[error("the daemon runs as root but no unprivileged user was given for sessions (--sandbox-user)")]
    NoSandboxUser,
    #[error("--sandbox-user {0}")]
    SandboxUser(String),
    #[error("cannot fork the session worker into its own namespaces: {0}")]
    Namespaces(#[source] io::Error),
    #[error("cannot map the session's user namespace: {0}")]
    UserMapping(#[source] io::Error),
    #[error("cannot make the session's user namespaces: {0}")]
    UserNamespace(#[source] io::Error),
    #[error("cannot build the session's filesystem ({what}): {source}")]
    Mount { what: &'static str, source: io::Error },
    #[error("cannot drop the session's privileges ({what}): {source}")]
    Credentials { what: &'static str, source: io::Error },
    #[error("cannot apply the Landlock rules: {0}")]
    Landlock(String),
    #[error("cannot install the seccomp filter: {0}")]
    Seccomp(String),
    #[error("cannot close inherited file descriptors: {0}")]
    Descriptors(#[source] io::Error),
}

/// Checks that this kernel and this daemon's privileges allow `mode`; the
/// daemon refuses to start otherwise (unless the operator chose
/// `--sandbox=off`).
pub fn check(mode: SandboxMode) -> Result<(), SandboxError> {
    let SandboxMode::On { run_as } = mode else { return Ok(()) };
    let abi = landlock::kernel_abi().map_err(SandboxError::KernelLacks)?;
    let needed = landlock::REQUIRED_ABI as i64;
    if abi < needed {
        return Err(SandboxError::KernelLacks(format!(
            "Landlock ABI {needed} (signal and abstract unix socket scoping, Linux 6.12); this kernel has ABI {abi}"
        )));
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } < 0 {
        return Err(SandboxError::KernelLacks("seccomp (CONFIG_SECCOMP_FILTER)".into()));
    }
    let identity = Identity::current();
    if identity.is_root() {
        if run_as.is_none() {
            return Err(SandboxError::NoSandboxUser);
        }
    } else {
        let read = |path: &str| std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<i64>().ok());
        if read("/proc/sys/user/max_user_namespaces") == Some(0)
            || read("/proc/sys/kernel/unprivileged_userns_clone") == Some(0)
        {
            return Err(SandboxError::KernelLacks(
                "user namespaces for unprivileged users (sysctl user.max_user_namespaces, \
                 kernel.unprivileged_userns_clone); or run the daemon as root with --sandbox-user"
                    .into(),
            ));
        }
    }
    for path in ["/proc/self/ns/pid", "/proc/self/ns/net", "/proc/self/ns/mnt", "/proc/self/ns/user"] {
        if !Path::new(path).exists() {
            return Err(SandboxError::KernelLacks(format!("namespaces ({path} is missing)")));
        }
    }
    Ok(())
}

/// Confines the calling session worker for good: called once, after its
/// boot spec arrived and before it runs anything. The caller was forked
/// with [`namespaces::fork_confined`] and is single-threaded; `inherited`
/// holds the user namespaces its zygote made ahead (root daemon only).
pub fn enter(worktree: &Path, spec: &SandboxSpec, inherited: Inherited) -> Result<(), SandboxError> {
    let identity = Identity::current();
    refuse_worktree(worktree, spec)?;
    let worktree_dir =
        mounts::open_worktree(worktree).map_err(|source| SandboxError::Mount { what: "open the worktree", source })?;
    mounts::private_proc()?;
    let (user, idmap, session_ns) = if identity.is_root() {
        let user = spec.run_as.ok_or(SandboxError::NoSandboxUser)?;
        let (owner_uid, owner_gid) = mounts::owner(&worktree_dir).map_err(SandboxError::UserNamespace)?;
        let ready_idmap = inherited.idmap_root_owned.filter(|_| (owner_uid, owner_gid) == (0, 0));
        let mut wanted = Vec::new();
        if ready_idmap.is_none() {
            wanted.push(namespaces::idmap_maps(owner_uid, owner_gid, user));
        }
        if inherited.session.is_none() {
            wanted.push(namespaces::session_maps(user));
        }
        let mut made = namespaces::user_namespaces(&wanted).map_err(SandboxError::UserNamespace)?.into_iter();
        let idmap = match ready_idmap {
            Some(fd) => fd,
            None => made.next().expect("an idmap namespace was asked for"),
        };
        let own = match inherited.session {
            Some(fd) => fd,
            None => made.next().expect("a session namespace was asked for"),
        };
        (user, Some(idmap), Some(own))
    } else {
        (SandboxUser { uid: identity.uid, gid: identity.gid }, None, None)
    };
    let home = worktree.display();
    let layout = mounts::Layout {
        worktree,
        worktree_dir: &worktree_dir,
        read_only: &spec.read_only,
        devices: &spec.devices,
        idmap: idmap.as_ref(),
        passwd: format!("session:x:{}:{}:vm-system session:{home}:/usr/sbin/nologin\n", user.uid, user.gid),
        group: format!("session:x:{}:\n", user.gid),
    };
    mounts::enter_new_root(&layout)?;
    drop(idmap);
    drop(worktree_dir);
    if let Some(ns) = session_ns {
        namespaces::enter_user_namespace(&ns).map_err(SandboxError::UserNamespace)?;
        credentials::become_user(user)?;
    }
    credentials::drop_privileges()?;
    landlock::restrict(worktree, &spec.read_only, &spec.devices)?;
    seccomp::install()?;
    credentials::undumpable()
}

/// Refuses a worktree that holds one of the paths a session may only read
/// (`/`, `/usr`, `/etc`, the library cache, ...): mounted read-write, it
/// would hand them over, and with a root daemon as their owner, root.
fn refuse_worktree(worktree: &Path, spec: &SandboxSpec) -> Result<(), SandboxError> {
    let held = spec.read_only.iter().chain(&spec.devices).find(|path| path.starts_with(worktree));
    match held {
        Some(path) => Err(SandboxError::Mount {
            what: "check the worktree",
            source: io::Error::other(format!(
                "the worktree {} holds {}, which sessions may only read; choose a project directory",
                worktree.display(),
                path.display()
            )),
        }),
        None => Ok(()),
    }
}

/// What a program started by a confined worker gets on top of the
/// worker's confinement, made before the fork: see [`confine_program`].
pub struct ProgramConfinement {
    /// A Landlock ruleset that only scopes (see [`landlock::program_scope`]);
    /// `None` outside a sandbox.
    scope: Option<OwnedFd>,
}

impl ProgramConfinement {
    /// What [`confine_program`] takes, in the forked child.
    pub fn scope(&self) -> Option<RawFd> {
        self.scope.as_ref().map(|fd| fd.as_raw_fd())
    }
}

/// Call in the worker before forking a program (see [`confine_program`]);
/// keep what it returns until the program has started.
pub fn prepare_program() -> Result<ProgramConfinement, SandboxError> {
    seccomp::prepare_program_filter();
    if !is_confined() {
        return Ok(ProgramConfinement { scope: None });
    }
    Ok(ProgramConfinement { scope: Some(landlock::program_scope()?) })
}

/// Whether the calling process is confined (`no_new_privs` is set by
/// [`enter`]; it is unset only with `--sandbox=off`).
fn is_confined() -> bool {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 }
}

/// Called in a forked child of a confined worker just before it runs a
/// program, with [`ProgramConfinement::scope`]: the program cannot raise
/// the session's limits (`ulimit -n`, `prlimit`), cannot signal the
/// session's own worker processes (a nested Landlock domain, see
/// [`landlock::program_scope`]), and gets the programs' seccomp filter
/// (see [`seccomp`]). Outside a sandbox (`--sandbox=off`) it does nothing.
/// Only system calls: safe between `fork` and `exec`.
pub fn confine_program(scope: Option<RawFd>) -> io::Result<()> {
    if !is_confined() {
        return Ok(());
    }
    // The limits a program may not raise: its soft limit becomes its hard
    // one too (the worker keeps its hard limits, to re-arm its own).
    for resource in [libc::RLIMIT_NPROC, libc::RLIMIT_NOFILE, libc::RLIMIT_FSIZE, libc::RLIMIT_CORE, libc::RLIMIT_AS] {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit on a struct of ours.
        unsafe {
            if libc::getrlimit(resource, &mut limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            limit.rlim_max = limit.rlim_cur;
            if libc::setrlimit(resource, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    let scope = scope.ok_or_else(|| io::Error::from_raw_os_error(libc::EPERM))?;
    landlock::restrict_to(scope)?;
    seccomp::install_program_filter()
}
