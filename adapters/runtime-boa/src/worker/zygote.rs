//! The zygote: a single-threaded process that evaluates a library set once,
//! then forks a session worker for each socket the daemon hands it (with
//! `SCM_RIGHTS`), reaps its children and reports how each one ended.

use std::collections::HashSet;
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::engine::SessionEngine;
use super::{alloc, session};
use crate::protocol::{read_frame, write_frame, ExitStatus, ZygoteReply, ZygoteSpec, CONTROL_FORK};

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
            let _ = write_frame(&control, &ZygoteReply::StartFailed(reason));
            return 1;
        }
    };
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
    let mut zygote = Zygote { control, children: HashSet::new() };
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
            match receive(zygote.control.as_raw_fd()) {
                Ok(Some((CONTROL_FORK, Some(channel)))) => {
                    if let Some(child) = zygote.fork(channel) {
                        // Only the forked child gets here; it never returns.
                        drop(reaper);
                        session::serve(&mut engine, child);
                    }
                }
                Ok(Some((CONTROL_FORK, None))) => {
                    let reply = ZygoteReply::ForkFailed("no socket came with the fork request".into());
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
}

impl Zygote {
    /// Forks a session worker on `channel`. In the child, returns the
    /// channel; in the zygote, reports the fork and returns `None`.
    fn fork(&mut self, channel: OwnedFd) -> Option<OwnedFd> {
        // SAFETY: the zygote is single-threaded (it runs before `main`, and
        // nothing in it starts a thread), so the child may do anything.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                // The control socket is the zygote's; the child's stdin is nothing.
                if let Ok(null) = std::fs::File::open("/dev/null") {
                    // SAFETY: dup2 onto fd 0 replaces the control socket.
                    unsafe { libc::dup2(null.as_raw_fd(), 0) };
                }
                Some(channel)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(channel);
                self.children.insert(child.as_raw());
                let _ = write_frame(&self.control, &ZygoteReply::Forked { pid: child.as_raw() });
                None
            }
            Err(err) => {
                drop(channel);
                let _ = write_frame(&self.control, &ZygoteReply::ForkFailed(format!("fork failed: {err}")));
                None
            }
        }
    }

    /// Reaps every child that ended and reports it.
    fn reap(&mut self) -> std::io::Result<()> {
        loop {
            let status = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, ExitStatus::Signal(signal as i32)),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(()),
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(err) => return Err(err.into()),
            };
            let (pid, status) = status;
            self.children.remove(&pid.as_raw());
            let reply = ZygoteReply::Exited { pid: pid.as_raw(), status };
            write_frame(&self.control, &reply)?;
            self.control.flush()?;
        }
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

/// One control byte and the descriptor that came with it; `None` at the end
/// of the stream.
fn receive(fd: RawFd) -> nix::Result<Option<(u8, Option<OwnedFd>)>> {
    let mut byte = [0u8; 1];
    let mut space = nix::cmsg_space!(RawFd);
    loop {
        let mut iov = [IoSliceMut::new(&mut byte)];
        let message = match recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(message) => message,
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err),
        };
        if message.bytes == 0 {
            return Ok(None);
        }
        let mut channel = None;
        for cmsg in message.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    // SAFETY: the kernel just gave us this descriptor; we own it.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    if channel.is_none() {
                        channel = Some(owned);
                    }
                }
            }
        }
        return Ok(Some((byte[0], channel)));
    }
}
