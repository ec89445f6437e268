//! The zygote: a single-threaded process that evaluates a library set once,
//! then forks a session's keeper (see [`super::keeper`]) for each set of
//! sockets the daemon hands it (with `SCM_RIGHTS`), reaps its children and
//! reports how each one ended.

use std::collections::HashSet;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{fork, ForkResult, Pid};

use super::engine::SessionEngine;
use super::{alloc, keeper, session};
use crate::protocol::{read_frame, write_frame, ZygoteReply, ZygoteSpec, CONTROL_FORK, EXIT_DESCRIPTORS};
use crate::sandbox::namespaces::{self, Forked, Identity, Inherited, Spares};
use crate::sandbox::{fds, SandboxError};

/// The zygote's life: prepare, report, then fork on request until the
/// daemon closes the socket (the daemon is gone, or no worker of this
/// zygote is left): then its children go with it. Returns the exit code.
pub fn main() -> i32 {
    alloc::start_counting();
    super::limits::reset_signals();
    // Ctrl+C in the daemon's terminal reaches its whole process group; the
    // zygote leaves when the daemon does (its control socket closes).
    // SAFETY: installs the ignore disposition; no handler code runs.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigIgn);
    }
    // SAFETY: the daemon starts the zygote with its control socket as stdin.
    let control = unsafe { UnixStream::from_raw_fd(0) };
    let spec: ZygoteSpec = match read_frame(&control) {
        Ok(Some(spec)) => spec,
        _ => return 2,
    };
    let mut engine = match SessionEngine::prepare(&spec.libraries) {
        Ok(engine) => engine,
        Err(reason) => {
            let _ = write_frame(&control, &ZygoteReply::StartFailed(reason.to_string()));
            return 1;
        }
    };
    let identity = Identity::current();
    if spec.sandbox {
        // Compiled once here, inherited by every worker forked below.
        crate::sandbox::seccomp::prepare();
        if identity.is_root() {
            if let Err(err) = namespaces::isolate_network() {
                let reason =
                    format!("the session's sandbox could not be set up: cannot make a network namespace: {err}");
                let _ = write_frame(&control, &ZygoteReply::StartFailed(reason));
                return 1;
            }
        }
    }
    if write_frame(&control, &ZygoteReply::Ready).is_err() {
        return 0;
    }
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    if chld.thread_block().is_err() {
        return 3;
    }
    let Ok(reaper) = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) else {
        return 3;
    };
    let spares = match spec.run_as {
        Some(user) if spec.sandbox && identity.is_root() => Some(Spares::new(user)),
        _ => None,
    };
    let mut zygote = Zygote { control, children: HashSet::new(), sandbox: spec.sandbox.then_some(identity), spares };
    loop {
        let (control_ready, reaper_ready) = {
            let mut fds = [
                PollFd::new(zygote.control.as_fd(), PollFlags::POLLIN),
                PollFd::new(reaper.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => (fds[0].any().unwrap_or(false), fds[1].any().unwrap_or(false)),
                Err(Errno::EINTR) => continue,
                Err(_) => return zygote.abandon(),
            }
        };
        if reaper_ready {
            while let Ok(Some(_)) = reaper.read_signal() {}
            if zygote.reap().is_err() {
                return zygote.abandon();
            }
        }
        if control_ready {
            match fds::receive(zygote.control.as_raw_fd()) {
                Ok(Some((CONTROL_FORK, fds))) if fds.len() == 3 => {
                    let [channel, stderr, keeper]: [OwnedFd; 3] = fds.try_into().expect("three descriptors");
                    if let Some(confined) = zygote.fork() {
                        // Only the forked child gets here; it never returns.
                        // The zygote's descriptors go before the keeper's
                        // are rearranged, so none is closed twice.
                        drop(reaper);
                        let inherited = zygote.spares.take().map(Spares::hand_over).unwrap_or_default();
                        let has_idmap = inherited.idmap_root_owned.is_some();
                        let extra: Vec<OwnedFd> =
                            [inherited.idmap_root_owned, inherited.session].into_iter().flatten().collect();
                        let kept = match fds::keep_only(channel, keeper, Some(stderr), extra) {
                            Ok(kept) => kept,
                            Err(_) => std::process::exit(EXIT_DESCRIPTORS),
                        };
                        // Back in their places, in the order they were kept.
                        let mut extra = kept.extra.into_iter();
                        let idmap_root_owned = if has_idmap { extra.next() } else { None };
                        let inherited = Inherited { idmap_root_owned, session: extra.next() };
                        session::serve(&mut engine, kept.channel, kept.keeper, confined, inherited);
                    } else if let Some(spares) = zygote.spares.as_mut() {
                        spares.refill();
                    }
                }
                Ok(Some((CONTROL_FORK, _))) => {
                    let reply = ZygoteReply::ForkFailed(
                        "a fork request needs a channel, a stderr pipe and a keeper channel".into(),
                    );
                    let _ = write_frame(&zygote.control, &reply);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return zygote.abandon(),
            }
        }
    }
}

struct Zygote {
    control: UnixStream,
    children: HashSet<i32>,
    /// Who the daemon is, when workers are forked into namespaces of their
    /// own (`None` only with `--sandbox=off`).
    sandbox: Option<Identity>,
    /// A root daemon's user namespaces, made ahead of its sessions.
    spares: Option<Spares>,
}

impl Zygote {
    /// Forks a session's keeper. In the child, returns whether its
    /// namespaces are ready; in the zygote, reports the fork and returns
    /// `None`.
    fn fork(&mut self) -> Option<Result<(), SandboxError>> {
        let forked = match self.sandbox {
            Some(identity) => namespaces::fork_confined(identity),
            // SAFETY: the zygote is single-threaded (it runs before `main`, and
            // nothing in it starts a thread), so the child may do anything.
            None => match unsafe { fork() } {
                Ok(ForkResult::Child) => Ok(Forked::Child { ready: Ok(()) }),
                Ok(ForkResult::Parent { child }) => Ok(Forked::Parent { pid: child.as_raw() }),
                Err(err) => Err(SandboxError::Namespaces(err.into())),
            },
        };
        match forked {
            Ok(Forked::Child { ready }) => Some(ready),
            Ok(Forked::Parent { pid }) => {
                self.children.insert(pid);
                let _ = write_frame(&self.control, &ZygoteReply::Forked { pid });
                None
            }
            Err(err) => {
                let _ = write_frame(&self.control, &ZygoteReply::ForkFailed(format!("fork failed: {err}")));
                None
            }
        }
    }

    /// Reaps every child that ended and reports it.
    fn reap(&mut self) -> std::io::Result<()> {
        while let Some((pid, status)) = keeper::reaped()? {
            self.children.remove(&pid);
            write_frame(&self.control, &ZygoteReply::Exited { pid, status })?;
            self.control.flush()?;
        }
        Ok(())
    }

    /// The daemon is gone: so are the sessions it supervised.
    fn abandon(&mut self) -> i32 {
        for &pid in &self.children {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        0
    }
}
