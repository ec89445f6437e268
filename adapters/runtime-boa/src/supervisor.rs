//! One session seen from the daemon: its framed channel to the live worker,
//! the wall-clock deadline, CPU sampling, cancel, the kill (safe to
//! repeat), and the checkpoint that takes over from a killed or crashed
//! live worker (SPEC §10). A worker that dies is an outcome that says why
//! and what became of the session's state, never an error of the daemon.
//! While a job runs it also performs the job's `fetch` requests (see
//! [`crate::net`]) on tasks of their own, and writes their answers back
//! without ever making the worker's replies wait.

use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recv, MsgFlags};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::time::{interval_at, sleep_until, Instant};
use vm_domain::event::EventPayload;
use vm_domain::ports::{Ending, LimitHit, Outcome, StateAfter};
use vm_domain::template::Limits;

use crate::error::WorkerError;
use crate::family::Family;
use crate::net::job::{Answer, Duplicate, FetchLedger, JobFetches};
use crate::net::FetchPolicy;
use crate::protocol::{
    encode, BootSpec, ExitStatus, FrameReader, Reply, Request, WireJob, CONTROL_FETCH_BODY, CONTROL_FORK,
    EXIT_MEMORY_LIMIT,
};
use crate::zygotes::{log_stderr, send_fds, tokio_stream, Exit, ExitWatch, Forked, Zygote};

/// How often a running job's CPU time is sampled.
const CPU_SAMPLE: Duration = Duration::from_millis(10);
/// How long a booting (or forked) worker may take to answer.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a fork request may take to be answered.
const FORK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a dead worker's exit status.
const EXIT_REPORT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a checkpoint may take to take over.
const RESUME_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the rest of a message cut short by a job's end may take to
/// write: a worker between jobs, or a checkpoint taking over, reads it.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Receives a running job's events, as the port's `LiveEvents` does.
pub type Live<'a> = dyn Fn(EventPayload) + Send + Sync + 'a;

/// What woke a running job's loop.
enum Step {
    Frame(std::io::Result<Option<Reply>>),
    /// A `fetch` was performed (or its task failed); `None` when it was
    /// aborted.
    Fetched(Option<Answer>),
    /// Queued messages went (partly) out to the worker.
    Wrote(std::io::Result<()>),
    Ended,
    Cancel,
    Wall,
    Sample,
}

/// Why a job's live worker was stopped, or found dead.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Cancel,
    Wall,
    Cpu,
    /// It broke the protocol; the daemon stopped it.
    Protocol,
    /// It died on its own; its exit status says why.
    Died,
}

/// What only the task holding the session's [`Io`] may touch.
struct Io {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The live worker's CPU time when its last job ended, in nanoseconds.
    cpu_base_ns: u64,
    /// Jobs finished in the session so far, as its live worker counts them
    /// (see [`Reply::Checkpoint`]).
    generation: u64,
    /// The channel ended: no process holds the worker's end any more.
    at_end: bool,
    /// Messages for the live worker written while a job runs.
    outgoing: Outgoing,
}

/// Messages for the live worker during a job (the answers to its `fetch`
/// requests), written as the worker reads them: the job's loop never waits
/// on a write while the worker may be waiting on its own writes.
#[derive(Default)]
struct Outgoing {
    queue: VecDeque<Message>,
}

/// A frame, and the body file that follows it ([`CONTROL_FETCH_BODY`]).
struct Message {
    frame: Vec<u8>,
    written: usize,
    body: Option<OwnedFd>,
}

impl Message {
    fn started(&self) -> bool {
        self.written > 0
    }
}

impl Outgoing {
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn push(&mut self, answer: Answer) {
        self.queue.push_back(Message { frame: answer.frame, written: 0, body: answer.body });
    }

    /// Writes some of the first message: cancel-safe, as what was written
    /// is accounted for before the next `.await`.
    async fn write_some(&mut self, writer: &OwnedWriteHalf) -> std::io::Result<()> {
        let Some(message) = self.queue.front_mut() else { return Ok(()) };
        if message.written < message.frame.len() {
            writer.writable().await?;
            match writer.try_write(&message.frame[message.written..]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => message.written += n,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) => return Err(err),
            }
        } else if let Some(body) = &message.body {
            send_fds(writer.as_ref(), CONTROL_FETCH_BODY, &[body.as_raw_fd()]).await?;
            message.body = None;
        }
        if message.written == message.frame.len() && message.body.is_none() {
            self.queue.pop_front();
        }
        Ok(())
    }

    /// Finishes a message the worker began to receive, so that whoever
    /// reads the channel next finds whole messages, and drops the others:
    /// they answer a job that is over.
    async fn finish_started(&mut self, writer: &OwnedWriteHalf) -> std::io::Result<()> {
        self.queue.truncate(1);
        if self.queue.front().is_some_and(|m| !m.started()) {
            self.queue.clear();
        }
        let flush = async {
            while !self.queue.is_empty() {
                self.write_some(writer).await?;
            }
            Ok(())
        };
        match tokio::time::timeout(FLUSH_TIMEOUT, flush).await {
            Ok(result) => result,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// A process of the session: its pid as the daemon sees it, and its end.
#[derive(Clone)]
struct Worker {
    host_pid: i32,
    exit: ExitWatch,
}

/// The session's processes.
struct Processes {
    live: Worker,
    /// The checkpoint waiting to take over, as the session numbers it.
    checkpoint: Option<i32>,
}

/// What the watch of an idle session does next (see
/// [`Supervisor::recover_idle`]).
pub enum Idle {
    /// The session goes on (its checkpoint took over, or someone else
    /// dealt with the death): watch its live worker again.
    Watch,
    /// The session is over; someone else reports it.
    Over,
    /// The worker died while idle and nothing could take over; the session
    /// is over and this says what happened, for whoever reports losses.
    Lost(String),
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct Supervisor {
    family: Arc<Family>,
    io: tokio::sync::Mutex<Io>,
    limits: Limits,
    /// `settings.runtime.checkpoints`.
    checkpoints: bool,
    /// What the session's `fetch` may reach; `None` without the capability.
    fetch: Option<Arc<FetchPolicy>>,
    /// A std `Mutex`: only held to read or replace, never across an
    /// `.await`, so that the pids are there while a job holds `io`.
    processes: Mutex<Processes>,
    /// The running job's cancel signal; `None` while idle. A std `Mutex`,
    /// as `processes`.
    job: Mutex<Option<Arc<Notify>>>,
    /// Set once the session is over (closed, or its state lost); the one
    /// who sets it stops its processes and says why.
    over: AtomicBool,
}

/// Clears [`Supervisor::job`] however a job ends.
struct Running<'a>(&'a Mutex<Option<Arc<Notify>>>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        *locked(self.0) = None;
    }
}

impl Supervisor {
    /// Sends the session's boot spec to a forked keeper and waits until its
    /// live worker is ready. A keeper that fails to boot is killed. The
    /// session's `fetch` requests are performed under `fetch`.
    pub async fn boot(
        forked: Forked,
        spec: BootSpec,
        zygote: Arc<Zygote>,
        fetch: Option<Arc<FetchPolicy>>,
    ) -> Result<Self, WorkerError> {
        let Forked { pid: keeper, exit, channel, keeper: keeper_channel } = forked;
        let family = Arc::new(Family::start(keeper, exit, keeper_channel, zygote));
        let (read, mut writer) = channel.into_split();
        let mut reader = FrameReader::new(read);
        let (limits, checkpoints) = (spec.limits, spec.checkpoints);
        writer.write_all(&encode(&Request::Boot(Box::new(spec)))).await.map_err(WorkerError::Unreachable)?;
        let (cpu_ns, pid) = match tokio::time::timeout(BOOT_TIMEOUT, reader.next::<Reply>()).await {
            Ok(Ok(Some(Reply::Ready { cpu_ns, pid }))) => (cpu_ns, pid),
            Ok(Ok(Some(Reply::StartFailed(reason)))) => return Err(WorkerError::Refused(reason)),
            Ok(Ok(Some(_))) => return Err(WorkerError::Protocol("it answered out of turn")),
            Ok(Ok(None)) | Ok(Err(_)) => {
                let mut keeper_exit = family.keeper_exit_watch();
                let exit = wait_exit(&mut keeper_exit, EXIT_REPORT_TIMEOUT).await;
                return Err(WorkerError::Refused(describe(exit, "while starting")));
            }
            Err(_) => return Err(WorkerError::TimedOut { what: "start", within: BOOT_TIMEOUT }),
        };
        let io =
            Io { reader, writer, cpu_base_ns: cpu_ns, generation: 0, at_end: false, outgoing: Outgoing::default() };
        Self::joined(family, io, limits, checkpoints, fetch, pid)
    }

    /// A session of `family` whose live worker `pid` is ready on `io`.
    fn joined(
        family: Arc<Family>,
        io: Io,
        limits: Limits,
        checkpoints: bool,
        fetch: Option<Arc<FetchPolicy>>,
        pid: i32,
    ) -> Result<Self, WorkerError> {
        let exit = family.watch(pid);
        let host_pid = family.host_pid(pid).ok_or(WorkerError::Protocol("its live worker cannot be found"))?;
        family.join();
        Ok(Self {
            family,
            io: tokio::sync::Mutex::new(io),
            limits,
            checkpoints,
            fetch,
            processes: Mutex::new(Processes { live: Worker { host_pid, exit }, checkpoint: None }),
            job: Mutex::new(None),
            over: AtomicBool::new(false),
        })
    }

    fn live(&self) -> Worker {
        locked(&self.processes).live.clone()
    }

    fn note_checkpoint(&self, pid: Option<i32>) {
        locked(&self.processes).checkpoint = pid;
    }

    /// The live worker's pid, as the daemon sees it, while it lives.
    pub fn worker_pid(&self) -> Option<i32> {
        let processes = locked(&self.processes);
        let alive = !self.over.load(Ordering::Acquire) && processes.live.exit.borrow().is_none();
        alive.then_some(processes.live.host_pid)
    }

    /// Whether a checkpoint waits to take over from the live worker.
    pub fn has_checkpoint(&self) -> bool {
        !self.over.load(Ordering::Acquire) && locked(&self.processes).checkpoint.is_some()
    }

    /// Whether the session goes on: not closed, and its state not lost.
    pub fn is_alive(&self) -> bool {
        !self.over.load(Ordering::Acquire)
    }

    /// Stops the running job, whatever it does: its [`Supervisor::run`]
    /// ends [`Ending::Cancelled`]. Returns whether a job was running.
    pub fn cancel(&self) -> bool {
        match &*locked(&self.job) {
            Some(cancel) => {
                cancel.notify_one();
                true
            }
            None => false,
        }
    }

    /// Ends the session: kills its live worker and checkpoint, and the
    /// family's keeper with them when it was the family's last session.
    /// Harmless when it is already over.
    pub fn close(&self) {
        self.end();
    }

    /// Ends the session, if nobody did before; returns whether this call did.
    fn end(&self) -> bool {
        if self.over.swap(true, Ordering::AcqRel) {
            return false;
        }
        let (live, checkpoint) = {
            let processes = locked(&self.processes);
            (processes.live.clone(), processes.checkpoint)
        };
        stop_process(&live);
        if let Some(host_pid) = checkpoint.and_then(|pid| self.family.host_pid(pid)) {
            let _ = kill(Pid::from_raw(host_pid), Signal::SIGKILL);
        }
        self.family.leave();
        true
    }

    /// Resolves with `true` when the session's live worker (as of this
    /// call) has ended, at once when it already has; `false` when nobody
    /// can say any more (the router stopped with the daemon's runtime).
    pub fn live_ended(&self) -> impl Future<Output = bool> + Send + 'static {
        let mut exit = self.live().exit;
        async move { exit.wait_for(Option::is_some).await.is_ok() }
    }

    /// Called when the live worker ended while no job ran (see
    /// [`Supervisor::live_ended`]): its checkpoint takes over, silently.
    pub async fn recover_idle(&self) -> Idle {
        let mut io = self.io.lock().await;
        if self.over.load(Ordering::Acquire) {
            return Idle::Over;
        }
        let Some(exit) = *self.live().exit.borrow() else { return Idle::Watch };
        if !self.recover(&mut io, false, None).await.is_lost() {
            return Idle::Watch;
        }
        match self.end() {
            true => Idle::Lost(describe(Some(exit), "while idle")),
            false => Idle::Over,
        }
    }

    /// Runs one job: events to `live` as they come, the end when the worker
    /// says so — or the wall-clock or CPU limit, or a cancel, on which the
    /// live worker is killed, or its death, which says what happened. A
    /// killed or dead worker's checkpoint takes over when there is one.
    pub async fn run(&self, job: WireJob, live: &Live<'_>) -> Outcome {
        let mut io = self.io.lock().await;
        let cancel = Arc::new(Notify::new());
        *locked(&self.job) = Some(cancel.clone());
        let _running = Running(&self.job);
        let lost = |reason: String| Outcome {
            events: Vec::new(),
            ending: Ending::Crashed { reason, state: StateAfter::Lost },
        };
        if self.over.load(Ordering::Acquire) {
            return lost("the session's runtime was closed".into());
        }
        let idle_death = *self.live().exit.borrow();
        if let Some(exit) = idle_death {
            // Died while idle, before its watch had the checkpoint take
            // over: this job has not run yet either way.
            if self.recover(&mut io, false, None).await.is_lost() {
                self.end();
                return lost(describe(Some(exit), "while idle"));
            }
        }
        io.outgoing = Outgoing::default();
        if io.writer.write_all(&encode(&Request::Run(job))).await.is_err() {
            return self.stop(&mut io, Stop::Died, live).await;
        }
        let started = Instant::now();
        let ledger = FetchLedger::default();
        let wall = started + Duration::from_millis(self.limits.wall_ms);
        let mut fetches = JobFetches::new(self.fetch.clone(), wall);
        let outcome = self.follow(&mut io, started, &cancel, &mut fetches, &ledger, live).await;
        // Every request the daemon made is on record, echoed or not.
        for event in ledger.take().into_iter().chain(fetches.abandon()) {
            live(event);
        }
        outcome
    }

    /// Follows a job the live worker started at `started` until it ends,
    /// performing its `fetch` requests; events go to `live`, the worker's
    /// through `ledger` (see [`FetchLedger`]).
    async fn follow(
        &self,
        io: &mut Io,
        started: Instant,
        cancel: &Notify,
        fetches: &mut JobFetches,
        ledger: &FetchLedger,
        live: &Live<'_>,
    ) -> Outcome {
        let mut ended = self.live().exit;
        let wall = sleep_until(started + Duration::from_millis(self.limits.wall_ms));
        tokio::pin!(wall);
        let mut sample = interval_at(started + CPU_SAMPLE, CPU_SAMPLE);
        let cpu_budget_ns = self.limits.cpu_ms.saturating_mul(1_000_000);
        let (cpu_base_ns, host_pid) = (io.cpu_base_ns, self.live().host_pid);
        let forward = |event: EventPayload| ledger.forward(event, live);
        loop {
            let step = {
                let Io { reader, writer, outgoing, .. } = &mut *io;
                tokio::select! {
                    biased;
                    frame = reader.next::<Reply>() => Step::Frame(frame),
                    Some(done) = fetches.tasks.join_next_with_id(), if !fetches.tasks.is_empty() => {
                        Step::Fetched(fetches.finished(done))
                    }
                    wrote = outgoing.write_some(writer), if !outgoing.is_empty() => Step::Wrote(wrote),
                    _ = ended.wait_for(Option::is_some) => Step::Ended,
                    () = cancel.notified() => Step::Cancel,
                    () = &mut wall => Step::Wall,
                    _ = sample.tick() => Step::Sample,
                }
            };
            let stop = match step {
                Step::Frame(Ok(Some(Reply::Event(event)))) => {
                    forward(event.into());
                    continue;
                }
                Step::Frame(Ok(Some(Reply::Fetch { id, request }))) => match fetches.request(id, request) {
                    Ok(Some(answer)) => {
                        ledger.expect(answer.event.clone());
                        io.outgoing.push(answer);
                        continue;
                    }
                    Ok(None) => continue,
                    Err(Duplicate) => Stop::Protocol,
                },
                Step::Frame(Ok(Some(Reply::FetchAbort { id }))) => {
                    if let Some(event) = fetches.abort(id) {
                        live(event);
                    }
                    continue;
                }
                Step::Fetched(Some(answer)) => {
                    ledger.expect(answer.event.clone());
                    io.outgoing.push(answer);
                    continue;
                }
                Step::Fetched(None) => continue,
                Step::Wrote(Ok(())) => continue,
                Step::Wrote(Err(err)) => {
                    // Its end of the channel is gone: its death is on its way
                    // (the channel's end, or its exit).
                    tracing::debug!("cannot write a fetch answer to the worker: {err}");
                    io.outgoing = Outgoing::default();
                    continue;
                }
                Step::Frame(Ok(Some(Reply::Finished { ending, cpu_ns }))) => {
                    io.cpu_base_ns = cpu_ns;
                    io.generation += 1;
                    let Io { writer, outgoing, .. } = &mut *io;
                    if let Err(err) = outgoing.finish_started(writer).await {
                        tracing::warn!("cannot finish a fetch answer to the worker after its job: {err}");
                        self.end();
                        let reason = "the worker process stopped reading its channel and was stopped".to_owned();
                        return Outcome {
                            events: Vec::new(),
                            ending: Ending::Crashed { reason, state: StateAfter::Lost },
                        };
                    }
                    return Outcome { events: Vec::new(), ending: ending.into() };
                }
                Step::Frame(Ok(Some(Reply::Checkpoint { pid, .. }))) => {
                    self.note_checkpoint(Some(pid));
                    continue;
                }
                Step::Frame(Ok(Some(Reply::CheckpointFailed(reason)))) => {
                    tracing::warn!("no checkpoint before this job: {reason}");
                    self.note_checkpoint(None);
                    continue;
                }
                Step::Frame(Err(err)) if err.kind() != std::io::ErrorKind::InvalidData => {
                    // The channel broke under the reader (reset by a killed
                    // worker, or cut mid-frame): that is a death, which its
                    // exit status explains, not a protocol breach.
                    tracing::debug!("the worker's channel broke: {err}");
                    io.at_end = true;
                    Stop::Died
                }
                Step::Frame(Ok(Some(_)) | Err(_)) => Stop::Protocol,
                Step::Frame(Ok(None)) => {
                    io.at_end = true;
                    Stop::Died
                }
                Step::Ended => Stop::Died,
                Step::Cancel => Stop::Cancel,
                Step::Wall => Stop::Wall,
                Step::Sample => match crate::proc_stat::cpu_time_ns(host_pid) {
                    Some(used) if used.saturating_sub(cpu_base_ns) > cpu_budget_ns => Stop::Cpu,
                    _ => continue,
                },
            };
            return self.stop(io, stop, &forward).await;
        }
    }

    /// Ends a job for `stop`: kills the live worker unless it died on its
    /// own, hands on the events it sent before, and has the checkpoint take
    /// over.
    async fn stop(&self, io: &mut Io, stop: Stop, live: &Live<'_>) -> Outcome {
        let mut worker = self.live();
        if !matches!(stop, Stop::Died) {
            stop_process(&worker);
        }
        let exit = wait_exit(&mut worker.exit, EXIT_REPORT_TIMEOUT).await;
        let state = self.recover(io, true, Some(live)).await;
        let limit = |hit| Ending::Limit { hit, state };
        let ending = match stop {
            Stop::Cancel => Ending::Cancelled { state },
            Stop::Wall => limit(LimitHit::WallTime { limit_ms: self.limits.wall_ms }),
            Stop::Cpu => limit(LimitHit::CpuTime { limit_ms: self.limits.cpu_ms }),
            Stop::Protocol => {
                Ending::Crashed { reason: "the worker process broke the protocol and was stopped".into(), state }
            }
            Stop::Died => match exit {
                Some(Exit::Status(ExitStatus::Code(EXIT_MEMORY_LIMIT))) => {
                    limit(LimitHit::Memory { limit_mb: self.limits.mem_mb })
                }
                Some(Exit::Status(ExitStatus::Signal(libc::SIGXCPU))) => {
                    limit(LimitHit::CpuTime { limit_ms: self.limits.cpu_ms })
                }
                other => Ending::Crashed { reason: describe(other, "while running the job"), state },
            },
        };
        if state.is_lost() {
            self.end();
        }
        Outcome { events: Vec::new(), ending }
    }

    /// The live worker is dead: takes what it left in the channel (events
    /// go to `live`), then has the checkpoint take over. `running` says a
    /// job was running: a checkpoint taken after it finished keeps its
    /// result. A checkpoint older than the last job the daemon saw finish
    /// cannot stand in for the session: its state is lost then.
    async fn recover(&self, io: &mut Io, running: bool, live: Option<&Live<'_>>) -> StateAfter {
        self.drain(io, live);
        if !self.checkpoints || io.at_end || self.over.load(Ordering::Acquire) {
            return StateAfter::Lost;
        }
        // The checkpoint reads what the dead worker did not: whole messages.
        let Io { writer, outgoing, .. } = &mut *io;
        if outgoing.finish_started(writer).await.is_err() {
            return StateAfter::Lost;
        }
        if io.writer.write_all(&encode(&Request::Resume)).await.is_err() {
            return StateAfter::Lost;
        }
        let answer = tokio::time::timeout(RESUME_TIMEOUT, async {
            loop {
                match io.reader.next::<Reply>().await {
                    Ok(Some(Reply::Resumed { pid, generation, cpu_ns })) => return Some((pid, generation, cpu_ns)),
                    Ok(Some(Reply::Checkpoint { pid, .. })) => self.note_checkpoint(Some(pid)),
                    Ok(Some(Reply::CheckpointFailed(reason))) => {
                        tracing::warn!("the resumed session has no checkpoint: {reason}");
                        self.note_checkpoint(None);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        io.at_end = true;
                        return None;
                    }
                    Err(_) => return None,
                }
            }
        })
        .await;
        let Ok(Some((pid, generation, cpu_ns))) = answer else { return StateAfter::Lost };
        let Some(host_pid) = self.family.host_pid(pid) else { return StateAfter::Lost };
        let exit = self.family.watch(pid);
        locked(&self.processes).live = Worker { host_pid, exit };
        if generation < io.generation {
            // Taken before a job the daemon saw finish: the worker died
            // before its checkpoint after that job replaced this one. Its
            // state is not the session's; the caller ends the session.
            return StateAfter::Lost;
        }
        let finished = generation > io.generation;
        io.cpu_base_ns = cpu_ns;
        io.generation = generation;
        match running && finished {
            true => StateAfter::Kept,
            false => StateAfter::RolledBack,
        }
    }

    /// Reads, without waiting, what the dead live worker left in the
    /// channel: its whole frames are taken, a frame it died writing is
    /// dropped. Nobody else writes to the channel until `Resume`.
    fn drain(&self, io: &mut Io, live: Option<&Live<'_>>) {
        let fd = io.reader.get_ref().as_ref().as_raw_fd();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match recv(fd, &mut chunk, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    io.at_end = true;
                    break;
                }
                Ok(n) => io.reader.extend(&chunk[..n]),
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        while let Some(frame) = io.reader.buffered::<Reply>() {
            match frame {
                Ok(Reply::Event(event)) => {
                    if let Some(live) = live {
                        live(event.into());
                    }
                }
                Ok(Reply::Checkpoint { pid, .. }) => self.note_checkpoint(Some(pid)),
                Ok(Reply::CheckpointFailed(_)) => self.note_checkpoint(None),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        io.reader.discard();
    }

    /// Forks this idle session into a new session of the same family, with
    /// a copy of its heap: the new session's [`Supervisor`]. What the new
    /// session's processes write to their standard error is logged with
    /// `session`.
    pub async fn fork(&self, session: &str) -> Result<Supervisor, WorkerError> {
        let mut io = self.io.lock().await;
        if self.over.load(Ordering::Acquire) {
            return Err(WorkerError::Refused("the session to fork is closed".into()));
        }
        let idle_death = *self.live().exit.borrow();
        if let Some(exit) = idle_death {
            if self.recover(&mut io, false, None).await.is_lost() {
                self.end();
                return Err(WorkerError::Refused(describe(Some(exit), "while idle")));
            }
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(WorkerError::Channel)?;
        let (stderr_read, stderr_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| WorkerError::Channel(e.into()))?;
        io.writer.write_all(&encode(&Request::Fork)).await.map_err(WorkerError::Unreachable)?;
        send_fds(io.writer.as_ref(), CONTROL_FORK, &[theirs.as_raw_fd(), stderr_write.as_raw_fd()])
            .await
            .map_err(WorkerError::Unreachable)?;
        drop(theirs);
        drop(stderr_write);
        if let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr_read) {
            let span = tracing::error_span!(parent: None, "worker", session_id = session);
            tokio::spawn(tracing::Instrument::instrument(log_stderr(pipe, session.to_owned()), span));
        }
        let mut ended = self.live().exit;
        let forked = tokio::time::timeout(FORK_TIMEOUT, async {
            loop {
                tokio::select! {
                    biased;
                    frame = io.reader.next::<Reply>() => match frame {
                        Ok(Some(Reply::Forked { pid })) => return Ok(pid),
                        Ok(Some(Reply::ForkFailed(reason))) => return Err(WorkerError::Refused(reason)),
                        Ok(Some(Reply::Checkpoint { pid, .. })) => self.note_checkpoint(Some(pid)),
                        Ok(Some(Reply::CheckpointFailed(_))) => self.note_checkpoint(None),
                        Ok(Some(_)) => return Err(WorkerError::Protocol("it answered a fork out of turn")),
                        Ok(None) | Err(_) => return Err(WorkerError::Ended("forking the session".into())),
                    },
                    _ = ended.wait_for(Option::is_some) => {
                        return Err(WorkerError::Ended("forking the session".into()));
                    }
                }
            }
        })
        .await;
        let pid = forked.map_err(|_| WorkerError::TimedOut { what: "fork", within: FORK_TIMEOUT })??;
        drop(io);
        let (read, writer) = tokio_stream(ours)?.into_split();
        let mut reader = FrameReader::new(read);
        let mut exit = self.family.watch(pid);
        let ready = tokio::time::timeout(BOOT_TIMEOUT, async {
            tokio::select! {
                biased;
                frame = reader.next::<Reply>() => match frame {
                    Ok(Some(Reply::Ready { cpu_ns, .. })) => Ok(cpu_ns),
                    Ok(Some(_)) => Err(WorkerError::Protocol("it answered out of turn")),
                    Ok(None) | Err(_) => Err(WorkerError::Ended("starting as a fork".into())),
                },
                _ = exit.wait_for(Option::is_some) => Err(WorkerError::Ended("starting as a fork".into())),
            }
        })
        .await;
        let cpu_ns = ready.map_err(|_| WorkerError::TimedOut { what: "start", within: BOOT_TIMEOUT })??;
        let io =
            Io { reader, writer, cpu_base_ns: cpu_ns, generation: 0, at_end: false, outgoing: Outgoing::default() };
        Self::joined(self.family.clone(), io, self.limits, self.checkpoints, self.fetch.clone(), pid)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.end();
    }
}

/// Kills a process of the session; harmless once it is known to be gone.
fn stop_process(worker: &Worker) {
    if worker.exit.borrow().is_none() {
        let _ = kill(Pid::from_raw(worker.host_pid), Signal::SIGKILL);
    }
}

/// How a process ended, once reported within `within`.
async fn wait_exit(exit: &mut ExitWatch, within: Duration) -> Option<Exit> {
    match tokio::time::timeout(within, exit.wait_for(Option::is_some)).await {
        Ok(Ok(status)) => *status,
        _ => None,
    }
}

/// What a worker's end means, for `last_error` and the `system` event.
pub fn describe(exit: Option<Exit>, when: &str) -> String {
    match exit {
        Some(Exit::Status(ExitStatus::Code(EXIT_MEMORY_LIMIT))) => {
            format!("the worker process ran out of its memory limit {when}")
        }
        Some(Exit::Status(ExitStatus::Code(code))) => format!("the worker process exited with code {code} {when}"),
        Some(Exit::Status(ExitStatus::Signal(libc::SIGKILL))) => format!(
            "the worker process was killed by SIGKILL (signal 9) {when}, from outside the daemon or by the \
             kernel's out-of-memory killer"
        ),
        Some(Exit::Status(ExitStatus::Signal(signal))) => {
            let name =
                Signal::try_from(signal).map_or_else(|_| "an unknown signal".to_owned(), |s| s.as_str().to_owned());
            format!("the worker process died of {name} (signal {signal}) {when}")
        }
        Some(Exit::ZygoteGone) => format!("the worker process was stopped {when} because its zygote process died"),
        Some(Exit::KeeperGone) => {
            format!("the worker process was stopped {when} because its session's keeper process died")
        }
        None => format!("the worker process ended {when}; its exit status is unknown"),
    }
}
