//! The daemon's side of a zygote: starts the process (cleared environment,
//! a 64 MiB stack limit), hands it the sockets of each session family to
//! fork a keeper on, and routes what it reports: each fork's pid, and how
//! each keeper ended.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{oneshot, watch};

use crate::error::WorkerError;
use crate::protocol::{encode, ExitStatus, FrameReader, ZygoteReply, ZygoteSpec, CONTROL_FORK, WORKER_ARG};
use crate::worker::engine::STACK_BYTES;
use crate::worker::modules::exec::PROGRAM_PATH;

/// How long a zygote may take to evaluate its libraries.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fork may take to be reported.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a worker process ended, as far as the daemon can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Status(ExitStatus),
    /// Its zygote died, so the daemon stopped it (nobody could report
    /// how it ends any more).
    ZygoteGone,
    /// Its family's keeper ended, taking it along, and how the keeper
    /// ended is not known.
    KeeperGone,
}

/// `None` while the process lives.
pub type ExitWatch = watch::Receiver<Option<Exit>>;

/// A forked keeper of a session family, not yet booted.
pub struct Forked {
    /// The keeper's pid.
    pub pid: i32,
    pub exit: ExitWatch,
    /// The session's channel.
    pub channel: tokio::net::UnixStream,
    /// The keeper channel, on which the keeper reports its children's ends.
    pub keeper: tokio::net::UnixStream,
}

type ForkReply = Result<(i32, ExitWatch), WorkerError>;

/// A live zygote process.
pub struct Zygote {
    control: OwnedWriteHalf,
    /// Fork requests awaiting their `Forked`, in order. A std `Mutex`: never
    /// held across an `.await`.
    pending: Arc<Mutex<VecDeque<oneshot::Sender<ForkReply>>>>,
    alive: Arc<AtomicBool>,
    /// One fork request on the wire at a time.
    forking: tokio::sync::Mutex<()>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Zygote {
    /// Starts `program` as a zygote that evaluates `spec`'s libraries, and
    /// waits until it is ready (or says why it is not).
    pub async fn start(program: &Path, spec: &ZygoteSpec) -> Result<Self, WorkerError> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(WorkerError::Channel)?;
        let mut command = tokio::process::Command::new(program);
        let name = std::env::current_exe().ok().and_then(|p| p.file_name().map(|n| n.to_owned()));
        command
            .arg0(name.unwrap_or_else(|| "vm-system".into()))
            .arg(WORKER_ARG)
            .arg("zygote")
            .env_clear()
            .env("PATH", PROGRAM_PATH)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: the closure only calls setrlimit and close_range, which
        // are async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // Whatever the daemon's launcher left open stays out.
                crate::sandbox::fds::cloexec_from_3()?;
                let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                if libc::getrlimit(libc::RLIMIT_STACK, &mut limit) == 0 {
                    let wanted = STACK_BYTES as libc::rlim_t;
                    if limit.rlim_max == libc::RLIM_INFINITY || limit.rlim_max >= wanted {
                        limit.rlim_cur = limit.rlim_cur.max(wanted);
                        if limit.rlim_cur == libc::RLIM_INFINITY {
                            limit.rlim_cur = wanted;
                        }
                        libc::setrlimit(libc::RLIMIT_STACK, &limit);
                    }
                }
                Ok(())
            });
        }
        let mut child =
            command.spawn().map_err(|source| WorkerError::Spawn { program: program.to_path_buf(), source })?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(stderr, "zygote".to_owned()));
        }
        ours.set_nonblocking(true).map_err(WorkerError::Channel)?;
        let stream = tokio::net::UnixStream::from_std(ours).map_err(WorkerError::Channel)?;
        let (read, mut control) = stream.into_split();
        let mut reader = FrameReader::new(read);
        control.write_all(&encode(spec)).await.map_err(WorkerError::Unreachable)?;
        match tokio::time::timeout(BOOT_TIMEOUT, reader.next::<ZygoteReply>()).await {
            Ok(Ok(Some(ZygoteReply::Ready))) => {}
            Ok(Ok(Some(ZygoteReply::StartFailed(reason)))) => return Err(WorkerError::Refused(reason)),
            Ok(Ok(_)) | Ok(Err(_)) => {
                let status = child.wait().await.map(|s| s.to_string()).unwrap_or_default();
                return Err(WorkerError::Ended(format!("preparing the engine ({status})")));
            }
            Err(_) => return Err(WorkerError::TimedOut { what: "prepare the engine", within: BOOT_TIMEOUT }),
        }
        let pending: Arc<Mutex<VecDeque<oneshot::Sender<ForkReply>>>> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(route(reader, child, pending.clone(), alive.clone()));
        Ok(Self { control, pending, alive, forking: tokio::sync::Mutex::new(()) })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Forks the keeper of a new session family, connected to a fresh
    /// session channel and keeper channel; what its processes write to
    /// their standard error is logged with `session`.
    pub async fn fork(&self, session: &str) -> Result<Forked, WorkerError> {
        let _one_at_a_time = self.forking.lock().await;
        if !self.is_alive() {
            return Err(WorkerError::ZygoteGone);
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(WorkerError::Channel)?;
        let (keeper, keeper_theirs) = std::os::unix::net::UnixStream::pair().map_err(WorkerError::Channel)?;
        let (stderr_read, stderr_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| WorkerError::Channel(e.into()))?;
        let (reply, answer) = oneshot::channel();
        locked(&self.pending).push_back(reply);
        let fds = [theirs.as_raw_fd(), stderr_write.as_raw_fd(), keeper_theirs.as_raw_fd()];
        if let Err(err) = send_fds(self.control.as_ref(), CONTROL_FORK, &fds).await {
            locked(&self.pending).pop_back();
            return Err(WorkerError::Unreachable(err));
        }
        drop(theirs);
        drop(stderr_write);
        drop(keeper_theirs);
        if let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr_read) {
            let span = tracing::error_span!(parent: None, "worker", session_id = session);
            tokio::spawn(tracing::Instrument::instrument(log_stderr(pipe, session.to_owned()), span));
        }
        let (pid, exit) = match tokio::time::timeout(FORK_TIMEOUT, answer).await {
            Ok(Ok(reply)) => reply?,
            Ok(Err(_)) => return Err(WorkerError::ZygoteGone),
            Err(_) => return Err(WorkerError::TimedOut { what: "fork", within: FORK_TIMEOUT }),
        };
        let channel = tokio_stream(ours)?;
        let keeper = tokio_stream(keeper)?;
        Ok(Forked { pid, exit, channel, keeper })
    }
}

/// A std socket as a tokio one.
pub(crate) fn tokio_stream(stream: std::os::unix::net::UnixStream) -> Result<tokio::net::UnixStream, WorkerError> {
    stream.set_nonblocking(true).map_err(WorkerError::Channel)?;
    tokio::net::UnixStream::from_std(stream).map_err(WorkerError::Channel)
}

/// Sends one control `byte` with `fds` (`SCM_RIGHTS`) on `stream`.
pub(crate) async fn send_fds(stream: &tokio::net::UnixStream, byte: u8, fds: &[i32]) -> io::Result<()> {
    let raw = stream.as_raw_fd();
    stream
        .async_io(Interest::WRITABLE, || {
            let rights = [ControlMessage::ScmRights(fds)];
            let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
            sendmsg::<()>(raw, &[IoSlice::new(&[byte])], cmsgs, MsgFlags::MSG_NOSIGNAL, None).map_err(io::Error::from)
        })
        .await
        .map(|_| ())
}

/// Reads what the zygote reports until it ends: hands each fork its pid and
/// exit watch, and fills in exits. When the zygote is gone, every worker it
/// still had is killed and marked so: a worker nobody can reap is not kept.
async fn route(
    mut reader: FrameReader<tokio::net::unix::OwnedReadHalf>,
    mut child: tokio::process::Child,
    pending: Arc<Mutex<VecDeque<oneshot::Sender<ForkReply>>>>,
    alive: Arc<AtomicBool>,
) {
    let mut exits: HashMap<i32, watch::Sender<Option<Exit>>> = HashMap::new();
    while let Ok(Some(reply)) = reader.next::<ZygoteReply>().await {
        match reply {
            ZygoteReply::Forked { pid } => {
                let (tx, rx) = watch::channel(None);
                exits.insert(pid, tx);
                if let Some(waiting) = locked(&pending).pop_front() {
                    let _ = waiting.send(Ok((pid, rx)));
                }
            }
            ZygoteReply::ForkFailed(reason) => {
                if let Some(waiting) = locked(&pending).pop_front() {
                    let _ = waiting.send(Err(WorkerError::Refused(reason)));
                }
            }
            ZygoteReply::Exited { pid, status } => {
                if let Some(tx) = exits.remove(&pid) {
                    let _ = tx.send(Some(Exit::Status(status)));
                }
            }
            ZygoteReply::Ready | ZygoteReply::StartFailed(_) => {}
        }
        exits.retain(|_, tx| !tx.is_closed());
    }
    alive.store(false, Ordering::Release);
    for waiting in locked(&pending).drain(..) {
        let _ = waiting.send(Err(WorkerError::ZygoteGone));
    }
    for (pid, tx) in exits {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(-pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = tx.send(Some(Exit::ZygoteGone));
    }
    let _ = child.wait().await;
}

/// Lines a worker may write to its standard error before the rest is
/// dropped: a session must not be able to flood the daemon's log.
const STDERR_MAX_LINES: usize = 200;
/// Longest stderr line logged; the rest is cut.
const STDERR_MAX_LINE_BYTES: usize = 2048;

/// Logs what a worker process writes to its standard error, a line at a
/// time, with whose it is, until the pipe closes.
pub(crate) async fn log_stderr(pipe: impl tokio::io::AsyncRead + Unpin, whose: String) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(pipe).split(b'\n');
    let mut count = 0;
    while let Ok(Some(line)) = lines.next_segment().await {
        count += 1;
        if count > STDERR_MAX_LINES {
            continue;
        }
        let cut = &line[..line.len().min(STDERR_MAX_LINE_BYTES)];
        let text = String::from_utf8_lossy(cut);
        tracing::warn!(target: "vm_runtime_boa::worker", worker = %whose, "{text}");
        if count == STDERR_MAX_LINES {
            tracing::warn!(target: "vm_runtime_boa::worker", worker = %whose, "further standard error output of this worker is dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            locked(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_workers_stderr_is_logged_with_whose_it_is_and_a_flood_is_cut() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || sink.clone()).finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let (read, mut write) = std::os::unix::net::UnixStream::pair().unwrap();
        let flood: String = (0..STDERR_MAX_LINES + 50).map(|i| format!("line {i}\n")).collect();
        write.write_all(format!("hello from a worker\n{}\n", "x".repeat(5000)).as_bytes()).unwrap();
        write.write_all(flood.as_bytes()).unwrap();
        drop(write);
        read.set_nonblocking(true).unwrap();
        log_stderr(tokio::net::UnixStream::from_std(read).unwrap(), "session-42".into()).await;
        let log = String::from_utf8(locked(&captured.0).clone()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines[0].contains("hello from a worker") && lines[0].contains("worker=session-42"), "{log}");
        assert!(lines[1].len() < STDERR_MAX_LINE_BYTES + 200, "a long line is cut");
        assert_eq!(lines.len(), STDERR_MAX_LINES + 1, "the flood stops at the cap, with a note");
        assert!(lines.last().unwrap().contains("further standard error output of this worker is dropped"));
    }
}
