//! A session, worker side: the keeper forked from a zygote takes the
//! session's boot spec and applies the sandbox and the limits (see
//! [`super::keeper`]); then its live worker runs one job at a time,
//! streaming events, and keeps a checkpoint after each (see
//! [`super::checkpoint`]), until the daemon closes the channel.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use nix::unistd::Pid;
use vm_domain::event::EventPayload;

use super::checkpoint::{self, Checkpoint, Sibling, Taken};
use super::console::EventSink;
use super::engine::SessionEngine;
use super::fetch::{self, FetchLink};
use super::{alloc, keeper, limits};
use crate::error::StartError;
use crate::protocol::{read_frame, write_frame, BootSpec, Reply, Request, WireJob, CONTROL_FORK, EXIT_PROTOCOL};
use crate::sandbox::namespaces::{self, Inherited};
use crate::sandbox::{self, fds, SandboxError};

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

/// Makes the forked keeper the session's: confines it, opens its worktree,
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
    install_fetch(engine, boot.fetch)?;
    limits::apply(&boot.limits)?;
    let in_use = alloc::in_use();
    let allowed = boot.limits.mem_mb.saturating_mul(1024 * 1024) as usize;
    if in_use >= allowed {
        return Err(StartError::MemoryTooSmall { mem_mb: boot.limits.mem_mb, used_mb: in_use.div_ceil(1024 * 1024) });
    }
    Ok(allowed)
}

/// Installs `fetch` and its classes, asking the daemon when `enabled` (see
/// [`fetch`]); the live worker gives it the channel. When they cannot be
/// installed (a library took their names for good) the session does not
/// start, enabled or not: its `fetch` would be the library's, neither the
/// daemon's nor one that says `ERR_FETCH_DISABLED`.
fn install_fetch(engine: &mut SessionEngine, enabled: bool) -> Result<(), StartError> {
    let link = FetchLink::new(enabled);
    fetch::install(link.clone(), engine.context_mut()).map_err(|err| StartError::Fetch(err.to_string()))?;
    engine.set_host_ops(link);
    Ok(())
}

/// Boots a session in the keeper the zygote just forked, then keeps it
/// (see [`keeper::keep`]); never returns. `forked` says whether the
/// keeper's namespaces are ready (see
/// [`crate::sandbox::namespaces::fork_confined`]); the sandbox itself is
/// entered once the boot spec says what to confine it to.
pub fn serve(
    engine: &mut SessionEngine,
    channel: OwnedFd,
    keeper: OwnedFd,
    forked: Result<(), SandboxError>,
    inherited: Inherited,
) -> ! {
    let _ = nix::unistd::setsid();
    limits::reset_signals();
    let channel = UnixStream::from(channel);
    let boot = match read_frame::<Request>(&channel) {
        Ok(Some(Request::Boot(boot))) => boot,
        _ => std::process::exit(EXIT_PROTOCOL),
    };
    let allowed = match start(engine, &channel, &boot, forked, inherited) {
        Ok(allowed) => allowed,
        Err(err) => {
            send(&channel, &Reply::StartFailed(err.to_string()));
            std::process::exit(1);
        }
    };
    alloc::arm(allowed);
    keeper::keep(engine, channel, UnixStream::from(keeper), boot)
}

/// A request as the worker sees it: a fork's descriptors came along.
pub enum Incoming {
    Boot(Box<BootSpec>),
    Run(WireJob),
    /// The new session's channel and stderr pipe.
    Fork(Vec<OwnedFd>),
    Resume,
}

/// Reads the next request; `None` when the daemon closed the channel.
/// Answers to `fetch` requests of a job that is over are dropped.
pub fn next_request(channel: &UnixStream) -> io::Result<Option<Incoming>> {
    loop {
        let request = match read_frame::<Request>(channel)? {
            None => return Ok(None),
            Some(request) => request,
        };
        return Ok(Some(match request {
            Request::Boot(boot) => Incoming::Boot(boot),
            Request::Run(job) => Incoming::Run(job),
            Request::Resume => Incoming::Resume,
            Request::Fork => match fds::receive(channel.as_raw_fd())? {
                Some((CONTROL_FORK, fds)) => Incoming::Fork(fds),
                _ => return Err(io::ErrorKind::InvalidData.into()),
            },
            Request::FetchDone { result, .. } => {
                if result.is_ok() {
                    drop(fetch::body_file(channel)?);
                }
                continue;
            }
        }));
    }
}

/// Serves the session as its live worker, a child of the keeper `keeper`
/// that forked it; never returns.
pub fn live(engine: &mut SessionEngine, channel: UnixStream, boot: Box<BootSpec>, keeper: Pid) -> ! {
    checkpoint::die_with_keeper(keeper);
    limits::reset_signals();
    limits::arm_cpu(boot.limits.cpu_ms);
    let fetch = fetch::link_of(engine.context_mut());
    if let Some(link) = &fetch {
        let Ok(own) = channel.try_clone() else { std::process::exit(EXIT_PROTOCOL) };
        link.set_channel(own);
    }
    let worker = Live { channel, boot, keeper, generation: 0, checkpoint: None, fetch };
    worker.ready();
    worker.serve(engine)
}

/// The live worker of a session.
struct Live {
    channel: UnixStream,
    boot: Box<BootSpec>,
    /// The family's keeper: the parent of every live worker and checkpoint.
    keeper: Pid,
    /// Jobs finished in this session so far (see [`Reply::Checkpoint`]).
    generation: u64,
    checkpoint: Option<Checkpoint>,
    /// `fetch`'s end of the channel, when it is installed.
    fetch: Option<Rc<FetchLink>>,
}

impl Live {
    fn ready(&self) {
        let pid = nix::unistd::getpid().as_raw();
        send(&self.channel, &Reply::Ready { cpu_ns: limits::cpu_time_ns(), pid });
    }

    fn serve(mut self, engine: &mut SessionEngine) -> ! {
        self.renew_checkpoint();
        loop {
            wait_for_work(&self.channel);
            match next_request(&self.channel) {
                Ok(Some(Incoming::Run(job))) => {
                    limits::arm_cpu(self.boot.limits.cpu_ms);
                    let ending = engine.run(job);
                    if let Some(link) = &self.fetch {
                        link.end_job();
                    }
                    self.generation += 1;
                    send(&self.channel, &Reply::Finished { ending, cpu_ns: limits::cpu_time_ns() });
                    // Off the request's way: the daemon already has its answer.
                    self.renew_checkpoint();
                }
                Ok(Some(Incoming::Fork(fds))) => self.fork(engine, fds),
                Ok(None) => std::process::exit(0),
                Ok(Some(Incoming::Boot(_) | Incoming::Resume)) | Err(_) => std::process::exit(EXIT_PROTOCOL),
            }
        }
    }

    /// Replaces the session's checkpoint with one of the session as it is
    /// now, and tells the daemon. Returns in the live worker, and in a
    /// checkpoint the daemon resumed, which is then the live worker (with a
    /// checkpoint of its own).
    fn renew_checkpoint(&mut self) {
        if !self.boot.checkpoints {
            return;
        }
        let mut resumed = false;
        loop {
            if let Some(previous) = self.checkpoint.take() {
                previous.discard();
            }
            match checkpoint::take(&self.channel, self.keeper) {
                Ok(Taken::Kept(checkpoint)) => {
                    let reply = Reply::Checkpoint { pid: checkpoint.pid(), generation: self.generation };
                    self.checkpoint = Some(checkpoint);
                    send(&self.channel, &reply);
                    break;
                }
                Ok(Taken::Resumed) => resumed = true,
                Err(err) => {
                    send(&self.channel, &Reply::CheckpointFailed(format!("cannot fork a checkpoint: {err}")));
                    break;
                }
            }
        }
        if resumed {
            let pid = nix::unistd::getpid().as_raw();
            send(&self.channel, &Reply::Resumed { pid, generation: self.generation, cpu_ns: limits::cpu_time_ns() });
        }
    }

    /// Forks this idle session into a new one on the channel that came
    /// with the request. The new session's worker keeps this heap, settings
    /// and worktree, and gets its own checkpoint.
    fn fork(&mut self, engine: &mut SessionEngine, fds: Vec<OwnedFd>) {
        let mut fds = fds.into_iter();
        let (Some(channel), Some(stderr)) = (fds.next(), fds.next()) else {
            let reason = "the new session's channel and stderr pipe did not come with the fork request";
            send(&self.channel, &Reply::ForkFailed(reason.into()));
            return;
        };
        match checkpoint::clone_sibling(self.keeper) {
            Ok(Sibling::Child) => {
                if let Some(source) = self.checkpoint.take() {
                    source.forget();
                }
                // SAFETY: dup2 onto the standard error of this process.
                if unsafe { libc::dup2(stderr.as_raw_fd(), 2) } < 0 {
                    std::process::exit(EXIT_PROTOCOL);
                }
                drop(stderr);
                let channel = UnixStream::from(channel);
                let Ok(sink) = channel.try_clone() else { std::process::exit(EXIT_PROTOCOL) };
                engine.set_sink(Box::new(Channel(sink)));
                if let Some(link) = &self.fetch {
                    let Ok(own) = channel.try_clone() else { std::process::exit(EXIT_PROTOCOL) };
                    link.set_channel(own);
                }
                self.channel = channel;
                self.generation = 0;
                self.ready();
                self.renew_checkpoint();
            }
            Ok(Sibling::Parent(pid)) => send(&self.channel, &Reply::Forked { pid: pid.as_raw() }),
            Err(err) => send(&self.channel, &Reply::ForkFailed(format!("cannot fork the session: {err}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use boa_engine::Source;

    use super::*;

    #[test]
    fn fetch_installs_in_a_fresh_engine_enabled_or_not() {
        for enabled in [true, false] {
            let mut engine = SessionEngine::prepare(&[]).expect("an engine");
            install_fetch(&mut engine, enabled).expect("fetch installs");
            assert!(fetch::link_of(engine.context_mut()).is_some());
        }
    }

    #[test]
    fn a_fetch_a_library_took_for_good_stops_the_start_and_says_why() {
        let mut engine = SessionEngine::prepare(&[]).expect("an engine");
        let taken = "Object.defineProperty(globalThis, 'fetch', { value: () => 'mine', writable: false, \
                     configurable: false })";
        engine.context_mut().eval(Source::from_bytes(taken)).expect("the library's code runs");
        let err = install_fetch(&mut engine, true).expect_err("fetch cannot be replaced");
        assert!(matches!(err, StartError::Fetch(_)), "{err:?}");
        assert!(err.to_string().starts_with("fetch could not be installed in the session: "), "{err}");
        assert!(err.to_string().contains("cannot redefine property: fetch"), "the engine's reason: {err}");
        assert!(fetch::link_of(engine.context_mut()).is_none(), "the daemon's link is not kept");
    }
}
