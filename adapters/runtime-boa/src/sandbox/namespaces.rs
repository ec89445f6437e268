//! Namespaces: each session family's keeper (see [`crate::worker::keeper`])
//! is forked into its own PID, mount, IPC, UTS and cgroup namespaces (and
//! user and network namespaces when the daemon is not root; a root daemon's
//! zygote puts its keepers in one network namespace of their own, see
//! [`isolate_network`]); its live workers and checkpoints share them. The
//! keeper is PID 1 of its PID namespace, so every process the session
//! starts, however it detaches (`setsid`, double fork, `nohup`), dies with
//! it; its network namespace has no interface, so nothing can connect
//! anywhere. Alone this does not stop file access or privilege use: see the
//! other mechanisms.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::SandboxError;
use crate::protocol::SandboxUser;

/// The namespaces every session gets.
const SESSION_NAMESPACES: libc::c_int =
    libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWCGROUP;

/// Moves a root daemon's zygote into a network namespace of its own, with
/// no interface (its loopback is down), before it forks any worker. Its
/// workers share it: making one costs about a millisecond, once per zygote
/// instead of once per session. Nothing in it can reach anything, and
/// sessions cannot reach one another's abstract unix sockets in it either:
/// each worker is its own Landlock domain, scoped against them. An
/// unprivileged daemon's workers get a network namespace each, with their
/// user namespace ([`fork_confined`]).
pub fn isolate_network() -> io::Result<()> {
    // SAFETY: unshare with a flag constant; the zygote is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which side of [`fork_confined`] this is.
pub enum Forked {
    /// The new worker; `ready` says whether its user namespace could be
    /// mapped (it reports a failure once it can talk to the daemon).
    Child {
        ready: Result<(), SandboxError>,
    },
    Parent {
        pid: i32,
    },
}

/// Who the daemon is, taken before forking: a child in a fresh user
/// namespace sees itself as the overflow user until its map is written.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    pub fn current() -> Self {
        Self { uid: nix::unistd::geteuid().as_raw(), gid: nix::unistd::getegid().as_raw() }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Forks the calling process into fresh namespaces: `fork` with namespace
/// flags. A root daemon's child stays in the initial user namespace (it
/// needs its privileges to build the session's mounts, then drops them); an
/// unprivileged daemon's child gets its own user namespace, mapping only the
/// daemon's ids to themselves. The child dies when its parent does.
///
/// The caller must be single-threaded: the child continues on a copy of the
/// caller's stack, like `fork`.
pub fn fork_confined(identity: Identity) -> Result<Forked, SandboxError> {
    let mut flags = SESSION_NAMESPACES;
    if !identity.is_root() {
        flags |= libc::CLONE_NEWUSER | libc::CLONE_NEWNET;
    }
    // SAFETY: a raw clone without a new stack behaves like fork(2); the
    // zygote calling this is single-threaded, so the child may do anything.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match pid {
        -1 => Err(SandboxError::Namespaces(io::Error::last_os_error())),
        0 => {
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
            let ready = if identity.is_root() { Ok(()) } else { map_self(identity).map_err(SandboxError::UserMapping) };
            Ok(Forked::Child { ready })
        }
        pid => Ok(Forked::Parent { pid: pid as i32 }),
    }
}

/// Maps the daemon's uid and gid to themselves in the child's fresh user
/// namespace (the only mapping an unprivileged process may write).
fn map_self(identity: Identity) -> io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/gid_map", format!("{0} {0} 1\n", identity.gid))?;
    std::fs::write("/proc/self/uid_map", format!("{0} {0} 1\n", identity.uid))?;
    Ok(())
}

/// User namespaces with the given maps (`inside outside count` lines for
/// uids, then gids), one each, made by short-lived helper processes that
/// all start at once, and kept by their descriptors. Used by a root worker,
/// which may write any map: for the worktree's idmapped mount, and for the
/// session's own user namespace.
pub fn user_namespaces(maps: &[(String, String)]) -> io::Result<Vec<OwnedFd>> {
    let mut helpers = Vec::new();
    let mut result = Ok(());
    for _ in maps {
        match helper() {
            Ok(helper) => helpers.push(helper),
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    let mut namespaces = Vec::new();
    if result.is_ok() {
        for ((uid_map, gid_map), (pid, ready)) in maps.iter().zip(&helpers) {
            match map_helper(*pid, ready, uid_map, gid_map) {
                Ok(ns) => namespaces.push(ns),
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
    }
    // Not waited for here: the keeper, PID 1 of the session, reaps them
    // with the other orphans (see [`crate::worker::keeper`]).
    for (pid, _) in &helpers {
        let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
    }
    result.map(|()| namespaces)
}

/// Forks a helper that moves into a new user namespace, says so on the
/// returned pipe, and waits to be killed (or for its parent to die: a
/// zygote killed while it makes namespaces leaves none behind).
fn helper() -> io::Result<(nix::unistd::Pid, OwnedFd)> {
    let (ready_read, ready_write) = nix::unistd::pipe()?;
    let parent = nix::unistd::getpid();
    // SAFETY: the worker calling this is single-threaded; the child only
    // makes syscalls and waits to be killed.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            drop(ready_read);
            // SAFETY: prctl, unshare and write with valid arguments, then
            // wait to be killed.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                if nix::unistd::getppid() != parent {
                    libc::_exit(0);
                }
                let code = if libc::unshare(libc::CLONE_NEWUSER) == 0 { 0u8 } else { 1u8 };
                libc::write(ready_write.as_raw_fd(), (&code as *const u8).cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        nix::unistd::ForkResult::Parent { child } => Ok((child, ready_read)),
    }
}

/// Writes the maps of a helper's user namespace once it is in it, and
/// keeps the namespace by its descriptor.
fn map_helper(pid: nix::unistd::Pid, ready: &OwnedFd, uid_map: &str, gid_map: &str) -> io::Result<OwnedFd> {
    let mut byte = [1u8; 1];
    let read = nix::unistd::read(ready, &mut byte)?;
    if read != 1 || byte[0] != 0 {
        return Err(io::Error::other("the helper could not make a user namespace"));
    }
    let proc = format!("/proc/{}", pid.as_raw());
    std::fs::write(format!("{proc}/uid_map"), uid_map)?;
    std::fs::write(format!("{proc}/gid_map"), gid_map)?;
    let ns = std::fs::File::open(format!("{proc}/ns/user"))?;
    Ok(OwnedFd::from(ns))
}

/// Moves the calling process into the user namespace `ns` (it must have
/// the rights to: the root worker made it).
pub fn enter_user_namespace(ns: &OwnedFd) -> io::Result<()> {
    // SAFETY: setns with a namespace descriptor we own.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWUSER) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps every child of the calling process that has ended, without
/// waiting: a live worker's programs.
pub fn reap_orphans() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// User namespaces a root daemon's zygote makes ahead of the sessions that
/// need them, so that making them (a helper process each) is not on the way
/// of a session's start: the idmap of worktrees owned by root, kept for
/// every worker, and the next session's own user namespace, handed to one
/// worker each and made anew after every fork.
pub struct Spares {
    user: SandboxUser,
    idmap_root_owned: Option<OwnedFd>,
    next_session: Option<OwnedFd>,
}

/// What a worker got from its zygote's [`Spares`].
#[derive(Default)]
pub struct Inherited {
    /// Maps uid and gid 0 (a worktree owned by root) to the sandbox user.
    pub idmap_root_owned: Option<OwnedFd>,
    /// Maps the sandbox user to itself; this worker's alone.
    pub session: Option<OwnedFd>,
}

impl Spares {
    pub fn new(user: SandboxUser) -> Self {
        let mut spares = Self { user, idmap_root_owned: None, next_session: None };
        if let Ok(mut made) = user_namespaces(&[idmap_maps(0, 0, user), session_maps(user)]) {
            spares.next_session = made.pop();
            spares.idmap_root_owned = made.pop();
        }
        spares
    }

    /// In the forked worker: what it takes along (the zygote keeps its own).
    pub fn hand_over(self) -> Inherited {
        Inherited { idmap_root_owned: self.idmap_root_owned, session: self.next_session }
    }

    /// In the zygote after a fork: the handed-over namespace is the
    /// worker's; make the next one. A failure leaves the worker to make its
    /// own.
    pub fn refill(&mut self) {
        self.next_session = user_namespaces(&[session_maps(self.user)]).ok().and_then(|mut made| made.pop());
    }
}

/// The maps of an idmapped worktree owned by `owner_uid:owner_gid`.
pub fn idmap_maps(owner_uid: u32, owner_gid: u32, user: SandboxUser) -> (String, String) {
    (format!("{owner_uid} {} 1\n", user.uid), format!("{owner_gid} {} 1\n", user.gid))
}

/// The maps of a session's own user namespace: its user, as itself.
pub fn session_maps(user: SandboxUser) -> (String, String) {
    (format!("{0} {0} 1\n", user.uid), format!("{0} {0} 1\n", user.gid))
}
