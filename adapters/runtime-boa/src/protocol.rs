//! The framed protocol between the daemon and its worker processes, the only
//! thing the host and worker halves share: messages as JSON in frames with a
//! 4-byte little-endian length prefix, read and written whole.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vm_domain::event::EventPayload;
use vm_domain::ports::{Ending, Job, LimitHit, StateAfter};
use vm_domain::template::{Limits, ResolverSettings};

/// The argument that turns any binary linking this crate into a worker:
/// `<exe> __vm-worker zygote`. See [`crate::worker`].
pub const WORKER_ARG: &str = "__vm-worker";

/// A frame larger than this is a protocol error. Events are bounded far
/// below it by the output limits; it only stops a confused peer.
pub const MAX_FRAME_BYTES: usize = 1 << 30;

/// The exit code of a worker stopped by its memory limit (see
/// [`crate::worker::alloc`]).
pub const EXIT_MEMORY_LIMIT: i32 = 87;

/// The exit code of a forked worker that could not rearrange its file
/// descriptors (see [`crate::sandbox::fds`]).
pub const EXIT_DESCRIPTORS: i32 = 88;

/// The exit code of a worker whose daemon broke the protocol (a request out
/// of turn, a frame it cannot read).
pub const EXIT_PROTOCOL: i32 = 2;

/// Control byte on a zygote's socket: fork a session's keeper on the
/// sockets whose descriptors ride along. Also the byte that follows a
/// [`Request::Fork`] on a session's channel, carrying the new session's.
pub const CONTROL_FORK: u8 = b'F';

/// The byte that follows a [`Request::FetchDone`] with a response on a
/// session's channel, carrying with `SCM_RIGHTS` a memory file (`memfd`)
/// that holds the response body: bodies never travel inside frames, so a
/// frame stays small enough to be read whole.
pub const CONTROL_FETCH_BODY: u8 = b'B';

/// A library file for a zygote to evaluate, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryFile {
    /// `<id>-<version>`.
    pub name: String,
    pub path: PathBuf,
    /// The global it must define.
    pub global: String,
}

/// What a zygote prepares before it forks anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZygoteSpec {
    pub libraries: Vec<LibraryFile>,
    /// Fork each session's keeper into its own namespaces (see
    /// [`crate::sandbox`]); off only with `--sandbox=off`.
    pub sandbox: bool,
    /// A root daemon's sandbox user: the zygote makes the user namespaces
    /// of its next session ahead (see [`crate::sandbox::namespaces::Spares`]).
    pub run_as: Option<SandboxUser>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

/// Zygote → daemon, on the zygote's control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZygoteReply {
    /// The libraries are loaded; forks may begin.
    Ready,
    StartFailed(String),
    /// A session's keeper was forked for the last fork request.
    Forked {
        pid: i32,
    },
    ForkFailed(String),
    /// A forked keeper ended (the zygote is its parent and reaps it).
    Exited {
        pid: i32,
        status: ExitStatus,
    },
}

/// What a session worker must know about its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootSpec {
    pub session_id: String,
    pub worktree: PathBuf,
    pub limits: Limits,
    /// `settings.runtime.console`.
    pub console: bool,
    /// `settings.runtime.strict`.
    pub strict: bool,
    /// Native modules `require` may return.
    pub modules: Vec<String>,
    /// Programs the `exec` module may run, from enabled `module` capabilities
    /// named `exec` (`{"allow": [...]}`), each resolved once by the daemon.
    pub exec_allow: Vec<AllowedProgram>,
    /// Variables a script may pass to programs beyond the default ones, from
    /// the same capabilities (`{"env": [...]}`); see
    /// [`vm_domain::sandbox::exec_env_refusal`].
    pub exec_env_allow: Vec<String>,
    /// `settings.runtime.esm`: whether `import` may load anything.
    pub esm: bool,
    /// `settings.resolver`: where imports may resolve.
    pub resolver: ResolverSettings,
    /// The kernel confinement to apply before the first job; `None` only
    /// when the operator chose `--sandbox=off`.
    pub sandbox: Option<SandboxSpec>,
    /// `settings.runtime.checkpoints`: keep a forked copy of the session
    /// before each job (see [`crate::worker::checkpoint`]).
    pub checkpoints: bool,
    /// An enabled `net` capability named `fetch` exists: `fetch` asks the
    /// daemon, which holds the allow-list (see [`crate::net`]). Without it
    /// `fetch` rejects at once with `ERR_FETCH_DISABLED`.
    pub fetch: bool,
}

/// A program the `exec` module may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedProgram {
    /// As the template names it (`git`).
    pub name: String,
    /// Where the daemon's `PATH` found it when the session started, symlinks
    /// resolved; never inside the worktree. `None` when it was not found.
    pub path: Option<PathBuf>,
}

/// What a session worker confines itself to (see [`crate::sandbox`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Host paths the session may read (system directories, the library
    /// cache, resolver roots); only existing ones.
    pub read_only: Vec<PathBuf>,
    /// Device files the session may read and write.
    pub devices: Vec<PathBuf>,
    /// When the daemon runs as root: the unprivileged user and group the
    /// session runs as (`--sandbox-user`).
    pub run_as: Option<SandboxUser>,
}

/// An unprivileged account for sessions of a daemon running as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxUser {
    pub uid: u32,
    pub gid: u32,
}

/// Daemon → a session's keeper (`Boot`), live worker or checkpoint
/// (`Resume`); one request at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// To a session's keeper, once: become this session.
    Boot(Box<BootSpec>),
    Run(WireJob),
    /// Fork this idle session into a new one. One [`CONTROL_FORK`] byte
    /// follows the frame, carrying with `SCM_RIGHTS` the new session's
    /// channel and then its standard error pipe. Answered
    /// [`Reply::Forked`] here and [`Reply::Ready`] on the new channel.
    Fork,
    /// To a checkpoint whose live worker died: become the live worker.
    /// Requests the dead worker never read come before it and are skipped.
    Resume,
    /// The answer to the running job's [`Reply::Fetch`] `id`, sent while
    /// the job runs (several may be in flight, answered in any order). A
    /// response is followed by one [`CONTROL_FETCH_BODY`] byte carrying
    /// its body. One that arrives after its job ended is dropped.
    FetchDone {
        id: u64,
        result: Result<FetchResponse, FetchRefusal>,
        event: EventPayload,
    },
}

/// A request a script made with `fetch`, for the daemon to check and
/// perform. Its `Debug` shows no header value, body or URL credentials:
/// they may be secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub method: String,
    pub url: String,
    /// In order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// Bytes as text: boa's `fetch` takes string bodies only.
    pub body: String,
}

/// The response to a [`FetchRequest`], after any redirects; its body
/// follows the frame (see [`CONTROL_FETCH_BODY`]). Its `Debug` shows no
/// header value (`Set-Cookie` …) or URL credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    pub status: u16,
    /// Where the response came from (the last URL of the redirects).
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Bytes in the body file.
    pub body_len: u64,
}

impl std::fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchRequest")
            .field("method", &self.method)
            .field("url", &crate::net::policy::shown_text(&self.url))
            .field("headers", &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl std::fmt::Debug for FetchResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchResponse")
            .field("status", &self.status)
            .field("url", &crate::net::policy::shown_text(&self.url))
            .field("headers", &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("body_len", &self.body_len)
            .finish()
    }
}

/// Why the daemon did not answer a [`FetchRequest`] with a response: a
/// `code` such as `ERR_HOST_NOT_ALLOWED` and a message for the script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRefusal {
    pub code: String,
    pub message: String,
}

/// [`Job`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireJob {
    Eval { source: String },
    RunFile { path: PathBuf, args: Map<String, Value>, env: BTreeMap<String, String> },
}

impl From<Job> for WireJob {
    fn from(job: Job) -> Self {
        match job {
            Job::Eval { source } => Self::Eval { source },
            Job::RunFile { path, args, env } => Self::RunFile { path, args, env },
        }
    }
}

/// [`LimitHit`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireLimit {
    WallTime { limit_ms: u64 },
    CpuTime { limit_ms: u64 },
    Memory { limit_mb: u64 },
    Events { max_events: u64 },
    Output { max_output_kb: u64 },
}

impl From<LimitHit> for WireLimit {
    fn from(hit: LimitHit) -> Self {
        match hit {
            LimitHit::WallTime { limit_ms } => Self::WallTime { limit_ms },
            LimitHit::CpuTime { limit_ms } => Self::CpuTime { limit_ms },
            LimitHit::Memory { limit_mb } => Self::Memory { limit_mb },
            LimitHit::Events { max_events } => Self::Events { max_events },
            LimitHit::Output { max_output_kb } => Self::Output { max_output_kb },
        }
    }
}

impl From<WireLimit> for LimitHit {
    fn from(hit: WireLimit) -> Self {
        match hit {
            WireLimit::WallTime { limit_ms } => Self::WallTime { limit_ms },
            WireLimit::CpuTime { limit_ms } => Self::CpuTime { limit_ms },
            WireLimit::Memory { limit_mb } => Self::Memory { limit_mb },
            WireLimit::Events { max_events } => Self::Events { max_events },
            WireLimit::Output { max_output_kb } => Self::Output { max_output_kb },
        }
    }
}

/// How a job ended inside a live worker (a worker that dies cannot say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireEnding {
    Completed,
    Threw,
    /// Stopped in the engine; the worker and its state live on.
    Limit(WireLimit),
}

impl From<WireEnding> for Ending {
    fn from(ending: WireEnding) -> Self {
        match ending {
            WireEnding::Completed => Self::Completed,
            WireEnding::Threw => Self::Threw,
            WireEnding::Limit(hit) => Self::Limit { hit: hit.into(), state: StateAfter::Kept },
        }
    }
}

/// Session worker → daemon: events as they happen, then exactly one
/// `Finished` per `Run`. Pids are as the session sees them (in its PID
/// namespace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// The live worker `pid` is ready (booted, or forked from another
    /// session). `cpu_ns` is its CPU time so far.
    Ready {
        cpu_ns: u64,
        pid: i32,
    },
    StartFailed(String),
    Event(WireEvent),
    /// The job is over; `cpu_ns` is the worker's CPU time at its end.
    Finished {
        ending: WireEnding,
        cpu_ns: u64,
    },
    /// Process `pid` now holds the session as it was after `generation`
    /// jobs, waiting to take over; the previous checkpoint is gone.
    Checkpoint {
        pid: i32,
        generation: u64,
    },
    /// No checkpoint could be taken; the previous one is gone too.
    CheckpointFailed(String),
    /// The new session's live worker of a [`Request::Fork`] is `pid`.
    Forked {
        pid: i32,
    },
    ForkFailed(String),
    /// The checkpoint took over as live worker `pid`, with the session as
    /// it was after `generation` jobs; `cpu_ns` is its CPU time so far.
    Resumed {
        pid: i32,
        generation: u64,
        cpu_ns: u64,
    },
    /// The running job calls `fetch`: the daemon checks `request` against
    /// the session's policy, performs it and answers [`Request::FetchDone`]
    /// with the same `id` (unique within the job).
    Fetch {
        id: u64,
        request: FetchRequest,
    },
    /// The script no longer waits for request `id` (its `AbortSignal`
    /// fired, or the job is ending): the daemon stops it, if it still runs,
    /// and records it. Its [`Request::FetchDone`] may come all the same.
    FetchAbort {
        id: u64,
    },
}

/// A session family's keeper → daemon, on the keeper channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeeperReport {
    /// A child of the keeper (a live worker, a checkpoint, an orphan of
    /// the session) ended; `pid` as the session sees it.
    Exited { pid: i32, status: ExitStatus },
}

/// An event on the wire. A value's JSON form travels as text, since JSON
/// `null` and "no JSON form" would otherwise read back the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireEvent {
    Value { kind: String, preview: String, json_text: Option<String> },
    Other(EventPayload),
}

impl From<EventPayload> for WireEvent {
    fn from(event: EventPayload) -> Self {
        match event {
            EventPayload::Value { kind, preview, json } => {
                Self::Value { kind, preview, json_text: json.map(|j| j.to_string()) }
            }
            other => Self::Other(other),
        }
    }
}

impl From<WireEvent> for EventPayload {
    fn from(event: WireEvent) -> Self {
        match event {
            WireEvent::Value { kind, preview, json_text } => {
                Self::Value { kind, preview, json: json_text.and_then(|text| serde_json::from_str(&text).ok()) }
            }
            WireEvent::Other(other) => other,
        }
    }
}

/// One message as a frame: length prefix and JSON body.
pub fn encode(message: &impl Serialize) -> Vec<u8> {
    let mut frame = vec![0; 4];
    serde_json::to_writer(&mut frame, message).expect("protocol messages always serialise");
    let len = u32::try_from(frame.len() - 4).expect("a frame fits in u32");
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame
}

/// The body length a frame header announces, refused when too large.
pub fn body_len(header: [u8; 4]) -> io::Result<usize> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes is too large")));
    }
    Ok(len)
}

pub fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

/// Writes one frame with a single `write_all`.
pub fn write_frame(mut out: impl Write, message: &impl Serialize) -> io::Result<()> {
    out.write_all(&encode(message))
}

/// Reads one frame; `None` at a clean end of stream (between frames).
pub fn read_frame<T: DeserializeOwned>(mut input: impl Read) -> io::Result<Option<T>> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match input.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let mut body = vec![0; body_len(header)?];
    input.read_exact(&mut body)?;
    decode(&body).map(Some)
}

/// Reads frames from an async stream for the host half. Cancel-safe: bytes
/// read stay buffered when a `select!` drops a pending [`FrameReader::next`].
pub struct FrameReader<R> {
    inner: R,
    buffer: Vec<u8>,
}

impl<R: tokio::io::AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, buffer: Vec::with_capacity(8 * 1024) }
    }

    /// The next message; `None` at a clean end of stream.
    pub async fn next<T: DeserializeOwned>(&mut self) -> io::Result<Option<T>> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(message) = self.buffered() {
                return message.map(Some);
            }
            if self.inner.read_buf(&mut self.buffer).await? == 0 {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(io::ErrorKind::UnexpectedEof.into()),
                };
            }
        }
    }

    /// The stream it reads.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R> FrameReader<R> {
    /// The next message among the bytes already read, without reading.
    pub fn buffered<T: DeserializeOwned>(&mut self) -> Option<io::Result<T>> {
        if self.buffer.len() < 4 {
            return None;
        }
        let header = [self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]];
        let end = match body_len(header) {
            Ok(len) => 4 + len,
            Err(err) => return Some(Err(err)),
        };
        if self.buffer.len() < end {
            self.buffer.reserve(end - self.buffer.len());
            return None;
        }
        let message = decode(&self.buffer[4..end]);
        self.buffer.drain(..end);
        Some(message)
    }

    /// Adds bytes read from the stream by other means (see
    /// [`crate::supervisor`], which drains a dead worker's channel).
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Drops what is buffered: a frame its writer died while writing.
    pub fn discard(&mut self) {
        self.buffer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_clean_end_is_none() {
        let mut buffer = Vec::new();
        let messages = [
            Reply::Ready { cpu_ns: 5, pid: 2 },
            Reply::Event(EventPayload::Stdout { text: "out".into() }.into()),
            Reply::Event(
                EventPayload::Value { kind: "null".into(), preview: "null".into(), json: Some(Value::Null) }.into(),
            ),
            Reply::Finished { ending: WireEnding::Limit(WireLimit::Events { max_events: 3 }), cpu_ns: 9 },
        ];
        for message in &messages {
            write_frame(&mut buffer, message).unwrap();
        }
        let mut input = &buffer[..];
        for message in messages {
            assert_eq!(read_frame::<Reply>(&mut input).unwrap(), Some(message));
        }
        let null = EventPayload::Value { kind: "null".into(), preview: "null".into(), json: Some(Value::Null) };
        let back: EventPayload = WireEvent::from(null.clone()).into();
        assert_eq!(back, null, "JSON null survives the wire");
        assert_eq!(read_frame::<Reply>(&mut input).unwrap(), None);
    }

    #[test]
    fn fetch_requests_and_their_answers_round_trip() {
        let request = Reply::Fetch {
            id: 7,
            request: FetchRequest {
                method: "POST".into(),
                url: "http://api.example.com/a".into(),
                headers: vec![("x-a".into(), "1".into()), ("x-a".into(), "2".into())],
                body: "{\"a\":1}".into(),
            },
        };
        let event = EventPayload::Fetch {
            method: "POST".into(),
            url: "http://api.example.com/a".into(),
            final_url: None,
            status: None,
            bytes: 0,
            ms: 4,
            code: Some("ERR_HOST_NOT_ALLOWED".into()),
            error: Some("not listed".into()),
        };
        let refused = Request::FetchDone {
            id: 7,
            result: Err(FetchRefusal { code: "ERR_HOST_NOT_ALLOWED".into(), message: "not listed".into() }),
            event: event.clone(),
        };
        let answered = Request::FetchDone {
            id: 8,
            result: Ok(FetchResponse {
                status: 200,
                url: "http://api.example.com/b".into(),
                headers: vec![("content-type".into(), "text/plain".into())],
                body_len: 5,
            }),
            event,
        };
        let secret = Reply::Fetch {
            id: 9,
            request: FetchRequest {
                method: "GET".into(),
                url: "http://user:s3cret@api.example.com/".into(),
                headers: vec![("authorization".into(), "Bearer s3cret".into())],
                body: "s3cret".into(),
            },
        };
        let shown = format!("{secret:?}");
        assert!(!shown.contains("s3cret") && shown.contains("authorization"), "{shown}");
        assert_eq!(read_frame::<Reply>(&encode(&request)[..]).unwrap(), Some(request));
        for message in [refused, answered] {
            assert_eq!(read_frame::<Request>(&encode(&message)[..]).unwrap(), Some(message));
        }
    }

    #[tokio::test]
    async fn the_async_reader_reads_frames_split_anywhere() {
        let mut bytes = encode(&Reply::Ready { cpu_ns: 1, pid: 2 });
        bytes.extend(encode(&Reply::StartFailed("no".into())));
        let (mut tx, rx) = tokio::io::duplex(3);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in bytes.chunks(3) {
                tx.write_all(piece).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(rx);
        assert_eq!(reader.next::<Reply>().await.unwrap(), Some(Reply::Ready { cpu_ns: 1, pid: 2 }));
        assert_eq!(reader.next::<Reply>().await.unwrap(), Some(Reply::StartFailed("no".into())));
        writer.await.unwrap();
        assert_eq!(reader.next::<Reply>().await.unwrap(), None);
    }

    #[test]
    fn bytes_read_from_elsewhere_give_their_whole_frames_and_a_cut_one_is_dropped() {
        let mut bytes = encode(&Reply::Checkpoint { pid: 3, generation: 1 });
        let cut = encode(&Reply::Event(EventPayload::Stdout { text: "cut".into() }.into()));
        bytes.extend(&cut[..cut.len() - 2]);
        let mut reader = FrameReader::new(tokio::io::empty());
        reader.extend(&bytes);
        assert_eq!(reader.buffered::<Reply>().unwrap().unwrap(), Reply::Checkpoint { pid: 3, generation: 1 });
        assert!(reader.buffered::<Reply>().is_none(), "the cut frame waits for the rest");
        reader.discard();
        reader.extend(&encode(&Reply::Resumed { pid: 4, generation: 1, cpu_ns: 7 }));
        assert_eq!(reader.buffered::<Reply>().unwrap().unwrap(), Reply::Resumed { pid: 4, generation: 1, cpu_ns: 7 });
    }

    #[test]
    fn a_frame_cut_short_or_too_large_is_an_error() {
        let frame = encode(&Reply::StartFailed("x".into()));
        assert!(read_frame::<Reply>(&frame[..frame.len() - 1]).is_err());
        assert!(read_frame::<Reply>(&frame[..2]).is_err());
        assert!(body_len((MAX_FRAME_BYTES as u32 + 1).to_le_bytes()).is_err());
    }
}
