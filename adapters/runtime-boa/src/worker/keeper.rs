//! A session family's keeper: the process the zygote forks for a session,
//! PID 1 of the session's PID namespace when the sandbox is on. It boots
//! the session as a worker would (see [`super::session`]), forks the first
//! live worker, and from then on only reaps: every process of the family
//! (live workers, checkpoints, the orphans of programs) ends as its child,
//! and each end is reported to the daemon on the keeper channel. It never
//! runs JavaScript after boot, so no job can make it die; when it exits
//! (the daemon closed the keeper channel), the whole family goes with it.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::console::Discard;
use super::engine::SessionEngine;
use super::{limits, session};
use crate::protocol::{write_frame, BootSpec, ExitStatus, KeeperReport, Reply};

/// How long the keeper waits after forking the live worker before it lets
/// go of the code pages it touched while booting (see [`limits::trim_idle`]).
const TRIM_AFTER_MS: u16 = 1000;

/// Becomes the keeper of a booted session: forks the first live worker
/// (which serves the session on `channel`), then reaps and reports on
/// `keeper` until the daemon closes it. Never returns, in either process.
pub fn keep(engine: &mut SessionEngine, channel: UnixStream, keeper: UnixStream, boot: Box<BootSpec>) -> ! {
    // Orphans come here rather than to the host's init when there is no
    // PID namespace (`--sandbox=off`); in one, the keeper is init anyway.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let reaper =
        chld.thread_block().and_then(|()| SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK));
    let reaper = match reaper {
        Ok(reaper) => reaper,
        Err(err) => fail(&channel, &format!("cannot watch the session's processes: {err}")),
    };
    let keeper_pid = nix::unistd::getpid();
    // SAFETY: the keeper is single-threaded (forked from the zygote, which
    // starts no thread), so the child may do anything.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(reaper);
            drop(keeper);
            session::live(engine, channel, boot, keeper_pid)
        }
        Ok(ForkResult::Parent { .. }) => {}
        Err(err) => fail(&channel, &format!("cannot fork the session's live worker: {err}")),
    }
    // The live worker alone speaks on the session's channel.
    engine.set_sink(Box::new(Discard));
    drop(channel);
    drop(boot);
    serve(keeper, reaper)
}

fn fail(channel: &UnixStream, reason: &str) -> ! {
    let _ = write_frame(channel, &Reply::StartFailed(reason.to_owned()));
    std::process::exit(1)
}

/// The keeper's loop: reap and report, until the daemon closes `keeper`.
fn serve(mut keeper: UnixStream, reaper: SignalFd) -> ! {
    let mut trimmed = false;
    loop {
        if report(&keeper).is_err() {
            std::process::exit(0);
        }
        let timeout = if trimmed { PollTimeout::NONE } else { PollTimeout::from(TRIM_AFTER_MS) };
        let (keeper_ready, reaper_ready) = {
            let mut fds =
                [PollFd::new(keeper.as_fd(), PollFlags::POLLIN), PollFd::new(reaper.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    limits::trim_idle();
                    trimmed = true;
                    continue;
                }
                Ok(_) => (fds[0].any().unwrap_or(false), fds[1].any().unwrap_or(false)),
                Err(Errno::EINTR) => continue,
                Err(_) => std::process::exit(0),
            }
        };
        if reaper_ready {
            while let Ok(Some(_)) = reaper.read_signal() {}
        }
        if keeper_ready {
            // The daemon sends nothing: readable means closed.
            let mut byte = [0u8; 64];
            match keeper.read(&mut byte) {
                Ok(0) => std::process::exit(0),
                Ok(_) => {}
                Err(err) if matches!(err.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock) => {}
                Err(_) => std::process::exit(0),
            }
        }
    }
}

/// Reaps every child that ended and reports each to the daemon.
fn report(keeper: &UnixStream) -> std::io::Result<()> {
    while let Some((pid, status)) = reaped()? {
        write_frame(keeper, &KeeperReport::Exited { pid, status })?;
    }
    Ok(())
}

/// One child that ended, reaped; `None` when none has (or there is none).
pub fn reaped() -> nix::Result<Option<(i32, ExitStatus)>> {
    loop {
        return match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => Ok(Some((pid.as_raw(), ExitStatus::Code(code)))),
            Ok(WaitStatus::Signaled(pid, signal, _)) => Ok(Some((pid.as_raw(), ExitStatus::Signal(signal as i32)))),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => Ok(None),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(err) => Err(err),
        };
    }
}
