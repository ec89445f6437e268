//! A session worker, forked from a zygote: takes its session's boot spec,
//! applies the limits, then runs one job at a time, streaming events, until
//! the daemon closes the channel.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use vm_domain::event::EventPayload;

use super::console::EventSink;
use super::engine::SessionEngine;
use super::{alloc, limits};
use crate::error::StartError;
use crate::protocol::{read_frame, write_frame, BootSpec, Reply, Request};
use crate::sandbox::namespaces::{self, Inherited};
use crate::sandbox::{self, SandboxError};

/// The worker's events, written to the daemon as they happen.
struct Channel(UnixStream);

impl EventSink for Channel {
    fn send(&mut self, event: &EventPayload) {
        send(&self.0, &Reply::Event(event.clone().into()));
    }
}

/// Writes a reply; a daemon that stopped listening ends the worker.
fn send(channel: &UnixStream, reply: &Reply) {
    if write_frame(channel, reply).is_err() {
        std::process::exit(0);
    }
}

/// How long a worker waits for its next job before trimming its memory.
const IDLE_TRIM_AFTER_MS: u16 = 1000;

/// Waits until a request arrives; a worker idle for a while trims its
/// resident memory first (see [`limits::trim_idle`]).
fn wait_for_work(channel: &UnixStream) {
    use std::os::fd::AsFd;

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    namespaces::reap_orphans();
    let mut fds = [PollFd::new(channel.as_fd(), PollFlags::POLLIN)];
    if let Ok(0) = poll(&mut fds, PollTimeout::from(IDLE_TRIM_AFTER_MS)) {
        namespaces::reap_orphans();
        limits::trim_idle();
    }
}

/// Serves one session on `channel`; never returns.
/// Makes the forked worker the session's: confines it, opens its worktree,
/// applies the OS limits and checks that the engine fits in `mem_mb`.
/// Returns the heap bytes the session may use.
fn start(
    engine: &mut SessionEngine,
    channel: &UnixStream,
    boot: &BootSpec,
    forked: Result<(), SandboxError>,
    inherited: Inherited,
) -> Result<usize, StartError> {
    forked?;
    if let Some(spec) = &boot.sandbox {
        sandbox::enter(&boot.worktree, spec, inherited)?;
    }
    let sink = channel.try_clone().map_err(StartError::Channel)?;
    engine.configure(boot, Box::new(Channel(sink)))?;
    limits::apply(&boot.limits)?;
    let in_use = alloc::in_use();
    let allowed = boot.limits.mem_mb.saturating_mul(1024 * 1024) as usize;
    if in_use >= allowed {
        return Err(StartError::MemoryTooSmall { mem_mb: boot.limits.mem_mb, used_mb: in_use.div_ceil(1024 * 1024) });
    }
    Ok(allowed)
}

/// `forked` says whether the worker's namespaces are ready (see
/// [`crate::sandbox::namespaces::fork_confined`]); the sandbox itself is
/// entered once the boot spec says what to confine it to.
pub fn serve(
    engine: &mut SessionEngine,
    channel: OwnedFd,
    forked: Result<(), SandboxError>,
    inherited: Inherited,
) -> ! {
    let _ = nix::unistd::setsid();
    limits::reset_signals();
    let channel = UnixStream::from(channel);
    let boot = match read_frame::<Request>(&channel) {
        Ok(Some(Request::Boot(boot))) => boot,
        _ => std::process::exit(2),
    };
    let allowed = match start(engine, &channel, &boot, forked, inherited) {
        Ok(allowed) => allowed,
        Err(err) => {
            send(&channel, &Reply::StartFailed(err.to_string()));
            std::process::exit(1);
        }
    };
    alloc::arm(allowed);
    limits::arm_cpu(boot.limits.cpu_ms);
    send(&channel, &Reply::Ready { cpu_ns: limits::cpu_time_ns() });
    loop {
        wait_for_work(&channel);
        match read_frame::<Request>(&channel) {
            Ok(Some(Request::Run(job))) => {
                limits::arm_cpu(boot.limits.cpu_ms);
                let ending = engine.run(job);
                send(&channel, &Reply::Finished { ending, cpu_ns: limits::cpu_time_ns() });
            }
            Ok(None) => std::process::exit(0),
            Ok(Some(Request::Boot(_))) | Err(_) => std::process::exit(2),
        }
    }
}
