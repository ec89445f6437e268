//! One session worker seen from the daemon: its framed socket, the wall-clock
//! deadline, CPU sampling, and the kill, which is safe to repeat. A worker
//! that dies is an outcome that says why, never an error of the daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{interval_at, sleep_until, Instant};
use vm_domain::event::EventPayload;
use vm_domain::ports::{Ending, LimitHit, Outcome};
use vm_domain::template::Limits;

use crate::error::WorkerError;
use crate::protocol::{encode, BootSpec, ExitStatus, FrameReader, Reply, Request, WireJob, EXIT_MEMORY_LIMIT};
use crate::zygotes::{Exit, ExitWatch, Forked, Zygote};

/// How often a running job's CPU time is sampled.
const CPU_SAMPLE: Duration = Duration::from_millis(10);
/// How long a booting worker may take to answer.
const BOOT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a dead worker's exit status.
const EXIT_REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// What woke a running job's loop.
enum Step {
    Frame(std::io::Result<Option<Reply>>),
    Wall,
    Sample,
}

struct Io {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The worker's CPU time when its last job ended, in nanoseconds.
    cpu_base_ns: u64,
}

pub struct Supervisor {
    pid: i32,
    io: tokio::sync::Mutex<Io>,
    exit: ExitWatch,
    limits: Limits,
    /// Set when the daemon killed the worker (a limit, or close), or once
    /// its death has been reported: its end is then not (or no longer) a
    /// loss.
    killed: AtomicBool,
    /// A job is in flight: its end reports a death, not
    /// [`Supervisor::claim_loss`].
    running: AtomicBool,
    /// The zygote stays up while any of its workers lives: a zygote whose
    /// socket closes takes the daemon for gone and kills its workers.
    _zygote: std::sync::Arc<Zygote>,
}

/// Clears [`Supervisor::running`] however a job ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Supervisor {
    /// Sends the session's boot spec to a forked worker and waits until it
    /// is ready. A worker that fails to boot is killed.
    pub async fn boot(forked: Forked, spec: BootSpec, zygote: std::sync::Arc<Zygote>) -> Result<Self, WorkerError> {
        let Forked { pid, exit, channel } = forked;
        let (read, writer) = channel.into_split();
        let limits = spec.limits;
        let supervisor = Self {
            pid,
            io: tokio::sync::Mutex::new(Io { reader: FrameReader::new(read), writer, cpu_base_ns: 0 }),
            exit,
            limits,
            killed: AtomicBool::new(false),
            running: AtomicBool::new(false),
            _zygote: zygote,
        };
        let answer = {
            let mut io = supervisor.io.lock().await;
            if let Err(err) = io.writer.write_all(&encode(&Request::Boot(Box::new(spec)))).await {
                Err(WorkerError::Unreachable(err))
            } else {
                match tokio::time::timeout(BOOT_TIMEOUT, io.reader.next::<Reply>()).await {
                    Ok(Ok(Some(Reply::Ready { cpu_ns }))) => {
                        io.cpu_base_ns = cpu_ns;
                        Ok(())
                    }
                    Ok(Ok(Some(Reply::StartFailed(reason)))) => Err(WorkerError::Refused(reason)),
                    Ok(Ok(Some(_))) => Err(WorkerError::Protocol("it answered out of turn")),
                    Ok(Ok(None)) | Ok(Err(_)) => Err(WorkerError::Refused(describe(
                        supervisor.exit_status(EXIT_REPORT_TIMEOUT).await,
                        "while starting",
                    ))),
                    Err(_) => Err(WorkerError::TimedOut { what: "start", within: BOOT_TIMEOUT }),
                }
            }
        };
        match answer {
            Ok(()) => Ok(supervisor),
            Err(reason) => {
                supervisor.kill();
                Err(reason)
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Why the worker is gone, when it ended on its own (crashed, killed
    /// from outside) while no job ran; `None` while it lives, when the
    /// daemon killed it, when a job reports its death, or when the loss was
    /// claimed before: the first caller reports it, and only that one.
    pub fn claim_loss(&self) -> Option<String> {
        let exit = (*self.exit.borrow())?;
        if self.running.load(Ordering::Acquire) {
            return None;
        }
        self.killed.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).ok()?;
        Some(describe(Some(exit), "while idle"))
    }

    /// Resolves when the worker has ended, however it ended (at once when it
    /// already has), or when nobody can say any more (the zygote's router
    /// stopped with the daemon's async runtime).
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            let _ = exit.wait_for(Option::is_some).await;
        }
    }

    pub fn is_alive(&self) -> bool {
        self.exit.borrow().is_none() && !self.killed.load(Ordering::Acquire)
    }

    /// Kills the worker's process group; harmless when it is already gone.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        if self.exit.borrow().is_none() {
            let _ = kill(Pid::from_raw(-self.pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }

    /// Runs one job: events as they come, the end when the worker says so —
    /// or the wall-clock or CPU limit, on which the worker is killed, or its
    /// death, which says what happened.
    pub async fn run(&self, job: WireJob) -> Outcome {
        let mut io = self.io.lock().await;
        let mut events = Vec::new();
        self.running.store(true, Ordering::Release);
        let _running = Running(&self.running);
        let exit = *self.exit.borrow();
        if let Some(exit) = exit {
            // Died while idle: perhaps already reported as a loss, but this
            // job did not run either way.
            self.killed.store(true, Ordering::Release);
            return Outcome { events, ending: Ending::Crashed { reason: describe(Some(exit), "while idle") } };
        }
        if io.writer.write_all(&encode(&Request::Run(job))).await.is_err() {
            return self.died(events).await;
        }
        let started = Instant::now();
        let wall = sleep_until(started + Duration::from_millis(self.limits.wall_ms));
        tokio::pin!(wall);
        let mut sample = interval_at(started + CPU_SAMPLE, CPU_SAMPLE);
        let cpu_budget_ns = self.limits.cpu_ms.saturating_mul(1_000_000);
        let cpu_base_ns = io.cpu_base_ns;
        loop {
            let step = tokio::select! {
                biased;
                frame = io.reader.next::<Reply>() => Step::Frame(frame),
                () = &mut wall => Step::Wall,
                _ = sample.tick() => Step::Sample,
            };
            match step {
                Step::Frame(Ok(Some(Reply::Event(event)))) => events.push(event.into()),
                Step::Frame(Ok(Some(Reply::Finished { ending, cpu_ns }))) => {
                    io.cpu_base_ns = cpu_ns;
                    return Outcome { events, ending: ending.into() };
                }
                Step::Frame(Ok(Some(_))) => {
                    self.kill();
                    let reason = "the worker process broke the protocol and was stopped".to_owned();
                    return Outcome { events, ending: Ending::Crashed { reason } };
                }
                Step::Frame(Ok(None) | Err(_)) => return self.died(events).await,
                Step::Wall => {
                    let hit = LimitHit::WallTime { limit_ms: self.limits.wall_ms };
                    return self.stop(&mut io, events, hit).await;
                }
                Step::Sample => {
                    if cpu_time_ns(self.pid).is_some_and(|used| used.saturating_sub(cpu_base_ns) > cpu_budget_ns) {
                        let hit = LimitHit::CpuTime { limit_ms: self.limits.cpu_ms };
                        return self.stop(&mut io, events, hit).await;
                    }
                }
            }
        }
    }

    /// Kills the worker for `hit`, keeping the events it sent before.
    async fn stop(&self, io: &mut Io, mut events: Vec<EventPayload>, hit: LimitHit) -> Outcome {
        self.kill();
        while let Ok(Ok(Some(Reply::Event(event)))) =
            tokio::time::timeout(Duration::from_millis(100), io.reader.next::<Reply>()).await
        {
            events.push(event.into());
        }
        Outcome { events, ending: Ending::Limit { hit, runtime_lost: true } }
    }

    /// The worker's socket closed mid-job: it died. Its exit status says
    /// whether a limit did it.
    async fn died(&self, events: Vec<EventPayload>) -> Outcome {
        let exit = self.exit_status(EXIT_REPORT_TIMEOUT).await;
        self.killed.store(true, Ordering::Release);
        let ending = match exit {
            Some(Exit::Status(ExitStatus::Code(EXIT_MEMORY_LIMIT))) => {
                Ending::Limit { hit: LimitHit::Memory { limit_mb: self.limits.mem_mb }, runtime_lost: true }
            }
            Some(Exit::Status(ExitStatus::Signal(libc::SIGXCPU))) => {
                Ending::Limit { hit: LimitHit::CpuTime { limit_ms: self.limits.cpu_ms }, runtime_lost: true }
            }
            other => Ending::Crashed { reason: describe(other, "while running the job") },
        };
        Outcome { events, ending }
    }

    async fn exit_status(&self, within: Duration) -> Option<Exit> {
        let mut exit = self.exit.clone();
        let status = match tokio::time::timeout(within, exit.wait_for(Option::is_some)).await {
            Ok(Ok(status)) => *status,
            _ => None,
        };
        status
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.kill();
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
        None => format!("the worker process ended {when}; its exit status is unknown"),
    }
}

/// CPU time (user and system) a process has used, from `/proc/<pid>/stat`.
fn cpu_time_ns(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * (1_000_000_000 / clock_ticks()))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}
