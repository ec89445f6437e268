//! The HTTP server loop: accepts TCP connections up to a cap, serves each
//! with hyper under header-read, idle and body-read deadlines, and backs off
//! instead of spinning when the process runs out of file descriptors.
//!
//! It replaces `poem::Server`, whose loop has none of these guards; see
//! `Activity` for what hyper does and does not enforce by itself.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::http::{self, header, HeaderValue, Version};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use vm_domain::DomainError;

use crate::error::{ApiError, TransportError};
use crate::payload::MAX_BODY_BYTES;

/// The connection limits of `serve` (see `vm-system serve --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's header must arrive within this time of its first byte
    /// (or of the connection's start).
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// A request's body must arrive within this time of its header.
    pub body_read_timeout: Duration,
    /// Connections served at once; past it, new ones wait in the backlog.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// The listen backlog asked of the kernel (which caps it at
/// `net.core.somaxconn`): past `max_connections`, new connections wait there.
const LISTEN_BACKLOG: u32 = 4096;

/// Concurrent HTTP/2 streams per connection (RFC 9113 asks for at least 100).
const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Decoded HTTP/2 header list per request, as poem's server allows.
const H2_MAX_HEADER_LIST_BYTES: u32 = 16 << 10;

/// Streams an HTTP/2 client may reset before we answer them (the "rapid
/// reset" guard), as poem's server allows.
const H2_MAX_PENDING_RESETS: usize = 20;

/// The first and the longest pause after an accept failure.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// At most one warning about failing accepts per this period.
const ACCEPT_WARNING_PERIOD: Duration = Duration::from_secs(60);

/// Binds `addr` with a backlog of [`LISTEN_BACKLOG`] (tokio's `bind` asks for
/// 1024). Must run inside a tokio runtime.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit,
/// so that `max_connections` is not cut short by the usual soft 1024.
/// Returns the soft limit before and after.
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    #[allow(clippy::useless_conversion)] // `rlim_t` is not `u64` on every target
    let limits = (u64::from(soft), u64::from(soft.max(hard)));
    Ok(limits)
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then stops
/// accepting, lets the connections finish their requests for up to `grace`,
/// closes the rest and returns.
///
/// At most `limits.max_connections` connections are served at once: a slot
/// is taken before `accept`, so past the cap new connections wait in the
/// kernel's backlog. Failing accepts (out of file descriptors, say) pause
/// the loop, 10 ms doubling up to 1 s, with at most a warning a minute.
pub async fn serve(
    listener: TcpListener,
    endpoint: impl Endpoint<Output = Response> + 'static,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let shared = Arc::new(Shared { endpoint: endpoint.boxed(), builder: http_builder(&limits), limits, local });
    let slots = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut slot: Option<OwnedSemaphorePermit> = None;
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    tracing::info!(%local, ?limits, "serving HTTP");

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ended) = connections.join_next() => report(ended),
            taken = slots.clone().acquire_owned(), if slot.is_none() => {
                slot = Some(taken.expect("the connection semaphore is never closed"));
            }
            accepted = listener.accept(), if slot.is_some() => match accepted {
                Ok((stream, remote)) => {
                    backoff.recovered();
                    // Responses are written whole; Nagle would only delay them.
                    let _ = stream.set_nodelay(true);
                    let slot = slot.take().expect("accept runs only with a slot");
                    connections.spawn(serve_connection(stream, remote, shared.clone(), stopping.clone(), slot));
                }
                Err(err) => {
                    if let Some(pause) = backoff.after(&err) {
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                }
            },
        }
    }

    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(grace, async {
        while let Some(ended) = connections.join_next().await {
            report(ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            ?grace,
            "closing the connections still open after the grace period"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// What every connection task shares.
struct Shared {
    endpoint: BoxEndpoint<'static>,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    local: SocketAddr,
}

fn http_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // A backstop only; see `Activity` for why not `header_read_timeout`.
        .header_read_timeout(limits.idle_timeout.saturating_add(limits.header_read_timeout));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_BYTES)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS);
    builder
}

fn report(ended: Result<(), JoinError>) {
    if let Err(err) = ended {
        if err.is_panic() {
            tracing::error!(error = %err, "a connection task panicked");
        }
    }
}

/// Serves one connection until it ends, its [`Activity`] deadline passes, or
/// the server stops (then requests in flight finish and the rest is closed).
/// Holds its slot of `max_connections` until it returns.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new(shared.limits));
    let io = TokioIo::new(WatchedIo { stream, activity: activity.clone() });
    let service = hyper::service::service_fn({
        let shared = shared.clone();
        let activity = activity.clone();
        move |request: http::Request<Incoming>| {
            let in_flight = activity.request_started(request.version());
            let shared = shared.clone();
            async move {
                let response = respond(request, &shared, remote).await;
                let response = http::Response::<BoxBody<Bytes, io::Error>>::from(response);
                Ok::<_, Infallible>(response.map(|body| TrackedBody { body, _in_flight: in_flight }))
            }
        }
    });
    let connection = shared.builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(%remote, error = %err, "connection ended with an error");
                }
                return;
            }
            waited = activity.expired() => {
                // No request is in flight: dropping the connection loses nothing.
                tracing::debug!(%remote, "closing a connection: {waited}");
                return;
            }
            _ = stopping.changed(), if !draining => {
                draining = true;
                if !activity.is_busy() {
                    return;
                }
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Reads the request's body in full (within `body_read_timeout`, up to
/// [`MAX_BODY_BYTES`]) and hands the request to the endpoint.
async fn respond(request: http::Request<Incoming>, shared: &Shared, remote: SocketAddr) -> Response {
    let version = request.version();
    let has_body = !request.body().is_end_stream();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut request = poem::Request::from((
        request,
        LocalAddr(Addr::SocketAddr(shared.local)),
        RemoteAddr(Addr::SocketAddr(remote)),
        http::uri::Scheme::HTTP,
    ));
    if has_body {
        let unread = if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            Some(too_large())
        } else {
            let body = BoxBody::from(request.take_body());
            let limit = shared.limits.body_read_timeout;
            match tokio::time::timeout(limit, Limited::new(body, MAX_BODY_BYTES).collect()).await {
                Ok(Ok(collected)) => {
                    request.set_body(collected.to_bytes());
                    None
                }
                Ok(Err(err)) if err.is::<LengthLimitError>() => Some(too_large()),
                Ok(Err(err)) => {
                    Some(DomainError::InvalidRequest { message: format!("cannot read the request body: {err}") }.into())
                }
                Err(_) => {
                    tracing::debug!(%remote, ?limit, "request body timed out");
                    Some(
                        TransportError::RequestTimeout {
                            message: format!(
                                "the request body did not arrive within {limit:?} of its header (--body-read-timeout)"
                            ),
                        }
                        .into(),
                    )
                }
            }
        };
        if let Some(err) = unread {
            return refuse(request, err, version).await;
        }
    }
    shared.endpoint.get_response(request).await
}

fn too_large() -> ApiError {
    TransportError::PayloadTooLarge.into()
}

/// Answers a request whose body could not be read with the error envelope
/// (and its `X-Request-Id`). An HTTP/1 connection is closed after it: the
/// rest of the body may still be on its way.
async fn refuse(request: poem::Request, err: ApiError, version: Version) -> Response {
    let err = Mutex::new(Some(err));
    let envelope = poem::endpoint::make_sync(move |_| {
        let err = err.lock().ok().and_then(|mut err| err.take()).expect("`stamp` calls its endpoint once");
        err.into_response()
    });
    let mut response = crate::request_id::stamp(envelope, request).await.unwrap_or_else(|err| err.into_response());
    if version < Version::HTTP_2 {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Where a connection stands, which decides its one deadline.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's header, since the connection's start or the
    /// first byte after an idle spell: `header_read_timeout`.
    Head { since: Instant },
    /// Between requests, since the last response was sent: `idle_timeout`.
    Idle { since: Instant },
    /// Requests in flight (several with HTTP/2): no deadline.
    Busy { requests: usize },
}

/// Which deadline closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waited {
    ForHeader,
    Idle,
}

impl std::fmt::Display for Waited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waited::ForHeader => "no complete request header in time",
            Waited::Idle => "idle for too long",
        })
    }
}

/// A connection's [`Phase`], updated by its IO and its requests, which
/// yields the connection's one deadline. A std `Mutex`: nothing awaits
/// while it is held.
///
/// Why not hyper's timers alone (read in hyper 1.12, `src/proto/h1/`):
/// - `http1::Builder::header_read_timeout` arms its timer in
///   `Conn::poll_read_head`, which runs at the connection's start and again
///   as soon as the previous response is written (`State::idle` sets
///   `notify_read` when the timeout is configured). So it measures "end of
///   the previous response → end of the next header": idle time and header
///   time together. Set to `header_read_timeout` alone, it would close every
///   keep-alive connection after `header_read_timeout` of idleness, making
///   `idle_timeout` meaningless. hyper's HTTP/1 has no idle timeout of its own.
/// - hyper-util's auto builder first sniffs the protocol (`read_version`)
///   with no timer at all: a client that sends one byte and stops is held
///   forever.
/// - HTTP/2 has no header timeout (h2 buffers partial header blocks) and no
///   idle timeout.
///
/// So the header deadline runs from the connection's start, or from the
/// first byte after an idle spell; the idle deadline from the end of the
/// last response; none while a request is in flight (a long execution is not
/// idleness). hyper's header timer stays armed at `idle_timeout +
/// header_read_timeout` as a backstop for what this record cannot see (bytes
/// of a pipelined request read while the previous one was in flight). The
/// body deadline is enforced by [`respond`], which reads each body in full
/// before the endpoint runs.
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

impl Activity {
    fn new(limits: ConnectionLimits) -> Self {
        Self { state: Mutex::new(ActivityState::new(limits, Instant::now())), changed: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bytes_arrived(&self) {
        let moved = self.lock().bytes_arrived(Instant::now());
        if moved {
            self.changed.notify_waiters();
        }
    }

    /// hyper parsed a request header; the request counts as in flight until
    /// the returned guard (held by the response body) is dropped.
    fn request_started(self: &Arc<Self>, version: Version) -> InFlight {
        self.lock().request_started(version);
        InFlight(self.clone())
    }

    fn request_finished(&self) {
        self.lock().request_finished(Instant::now());
        self.changed.notify_waiters();
    }

    fn is_busy(&self) -> bool {
        matches!(self.lock().phase, Phase::Busy { .. })
    }

    /// Resolves once the connection is past its deadline.
    async fn expired(&self) -> Waited {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the phase is read, so no change is missed.
            changed.as_mut().enable();
            let deadline = self.lock().deadline();
            match deadline {
                None => changed.await,
                Some((deadline, waited)) if deadline <= Instant::now() => return waited,
                Some((deadline, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// The state machine behind [`Activity`], with the clock passed in.
#[derive(Debug)]
struct ActivityState {
    limits: ConnectionLimits,
    phase: Phase,
    /// HTTP/2 frames (pings, window updates) arrive while idle: for HTTP/2
    /// bytes do not start a header deadline, only the idle deadline applies.
    http2: bool,
}

impl ActivityState {
    fn new(limits: ConnectionLimits, now: Instant) -> Self {
        Self { limits, phase: Phase::Head { since: now }, http2: false }
    }

    /// Bytes came in: after an idle spell, the next header's clock starts.
    /// Says whether the phase changed.
    fn bytes_arrived(&mut self, now: Instant) -> bool {
        let starts_a_header = matches!(self.phase, Phase::Idle { .. }) && !self.http2;
        if starts_a_header {
            self.phase = Phase::Head { since: now };
        }
        starts_a_header
    }

    fn request_started(&mut self, version: Version) {
        self.http2 |= version == Version::HTTP_2;
        self.phase = match self.phase {
            Phase::Busy { requests } => Phase::Busy { requests: requests + 1 },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy { requests: 1 },
        };
    }

    fn request_finished(&mut self, now: Instant) {
        self.phase = match self.phase {
            Phase::Busy { requests } if requests > 1 => Phase::Busy { requests: requests - 1 },
            _ => Phase::Idle { since: now },
        };
    }

    /// The current deadline and what it is for; `None` while busy (or for a
    /// timeout too large to represent).
    fn deadline(&self) -> Option<(Instant, Waited)> {
        match self.phase {
            Phase::Head { since } => Some((since.checked_add(self.limits.header_read_timeout)?, Waited::ForHeader)),
            Phase::Idle { since } => Some((since.checked_add(self.limits.idle_timeout)?, Waited::Idle)),
            Phase::Busy { .. } => None,
        }
    }
}

/// One request in flight on its connection.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that keeps its request in flight until hyper drops it:
/// once written in full, or when the connection fails.
struct TrackedBody {
    body: BoxBody<Bytes, io::Error>,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, telling its [`Activity`] when bytes arrive.
struct WatchedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The pause after failed accepts: none for errors about one connection (it
/// was reset before we took it), 10 ms doubling up to 1 s for the others
/// (out of file descriptors or memory), which would fail again at once.
#[derive(Debug, Default)]
struct AcceptBackoff {
    /// The current pause; `None` outside an episode of failures.
    pause: Option<Duration>,
    /// Failed accepts in the current episode.
    failures: u64,
    /// Whether the current episode was logged as a warning.
    warned: bool,
    last_warning: Option<std::time::Instant>,
}

impl AcceptBackoff {
    /// How long to wait after `err` before the next accept, if at all.
    /// Warns when an episode starts, at most once per
    /// [`ACCEPT_WARNING_PERIOD`]: at the limit, episodes come and go with
    /// every connection that closes.
    fn after(&mut self, err: &io::Error) -> Option<Duration> {
        if is_about_one_connection(err) {
            tracing::debug!(error = %err, "a connection failed before it was accepted");
            return None;
        }
        self.failures += 1;
        let pause = match self.pause {
            Some(pause) => pause.saturating_mul(2).min(BACKOFF_MAX),
            None => {
                self.warned = self.last_warning.is_none_or(|at| at.elapsed() >= ACCEPT_WARNING_PERIOD);
                if self.warned {
                    self.last_warning = Some(std::time::Instant::now());
                    let hint = if is_out_of_descriptors(err) {
                        "; raise the open-file limit (ulimit -n) or lower --max-connections"
                    } else {
                        ""
                    };
                    tracing::warn!(error = %err, "cannot accept connections, retrying with back-off{hint}");
                }
                BACKOFF_MIN
            }
        };
        self.pause = Some(pause);
        Some(pause)
    }

    /// An accept succeeded: the episode, if any, is over.
    fn recovered(&mut self) {
        if self.pause.take().is_some() {
            if self.warned {
                tracing::info!(failed_accepts = self.failures, "accepting connections again");
            } else {
                tracing::debug!(failed_accepts = self.failures, "accepting connections again");
            }
        }
        self.failures = 0;
    }
}

fn is_out_of_descriptors(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Errors `accept(2)` reports about the pending connection, not the listener.
fn is_about_one_connection(err: &io::Error) -> bool {
    use io::ErrorKind as K;
    matches!(err.kind(), K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock)
        || matches!(
            err.raw_os_error(),
            Some(
                libc::EPROTO
                    | libc::EPERM
                    | libc::ENETDOWN
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::ENONET
                    | libc::EHOSTUNREACH
                    | libc::EOPNOTSUPP
                    | libc::ENETUNREACH
            )
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn running_out_of_descriptors_backs_off_doubling_up_to_a_second() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<_> = (0..10).map(|_| backoff.after(&os(libc::EMFILE)).unwrap().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert!(backoff.warned);
        backoff.recovered();
        assert_eq!(backoff.after(&os(libc::ENFILE)), Some(BACKOFF_MIN), "a new episode starts over");
        assert!(!backoff.warned, "one warning a minute at most");
        for code in [libc::ENOBUFS, libc::ENOMEM] {
            assert!(backoff.after(&os(code)).is_some(), "errno {code} backs off");
        }
    }

    #[test]
    fn a_connection_aborted_before_accept_is_retried_at_once() {
        let mut backoff = AcceptBackoff::default();
        for code in [libc::ECONNABORTED, libc::EINTR, libc::EPROTO, libc::ECONNRESET] {
            assert_eq!(backoff.after(&os(code)), None, "errno {code}");
        }
        assert_eq!(backoff.failures, 0);
    }

    #[test]
    fn deadlines_follow_the_phase_of_the_connection() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ConnectionLimits::default()
        };
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut state = ActivityState::new(limits, start);
        assert_eq!(state.deadline(), Some((at(10), Waited::ForHeader)), "from the connection's start");
        assert!(!state.bytes_arrived(at(1)));
        assert_eq!(state.deadline(), Some((at(10), Waited::ForHeader)), "not from each byte");

        state.request_started(Version::HTTP_11);
        assert_eq!(state.deadline(), None, "no deadline while a request is in flight");
        assert!(!state.bytes_arrived(at(50)), "body bytes do not start a header deadline");
        assert_eq!(state.deadline(), None);

        state.request_finished(at(100));
        assert_eq!(state.deadline(), Some((at(160), Waited::Idle)));
        assert!(state.bytes_arrived(at(130)));
        assert_eq!(state.deadline(), Some((at(140), Waited::ForHeader)), "from the next request's first byte");
    }

    #[test]
    fn http2_connections_only_have_an_idle_deadline_between_requests() {
        let start = Instant::now();
        let mut state = ActivityState::new(ConnectionLimits::default(), start);
        state.request_started(Version::HTTP_2);
        state.request_started(Version::HTTP_2);
        state.request_finished(start + Duration::from_secs(1));
        assert_eq!(state.deadline(), None, "one stream still in flight");
        state.request_finished(start + Duration::from_secs(2));
        let idle = state.deadline();
        assert!(!state.bytes_arrived(start + Duration::from_secs(3)), "a ping does not start a header deadline");
        assert_eq!(state.deadline(), idle);
        assert_eq!(idle, Some((start + Duration::from_secs(62), Waited::Idle)));
    }

    #[test]
    fn an_absurd_timeout_means_no_deadline_rather_than_a_panic() {
        let limits = ConnectionLimits { header_read_timeout: Duration::MAX, ..ConnectionLimits::default() };
        assert_eq!(ActivityState::new(limits, Instant::now()).deadline(), None);
    }

    #[tokio::test]
    async fn expiry_waits_out_a_request_in_flight() {
        let limits = ConnectionLimits { idle_timeout: Duration::from_millis(50), ..ConnectionLimits::default() };
        let activity = Arc::new(Activity::new(limits));
        let request = activity.request_started(Version::HTTP_11);
        let busy = tokio::time::timeout(Duration::from_millis(300), activity.expired()).await;
        assert!(busy.is_err(), "a connection busy for 300 ms is not idle");
        let done = Instant::now();
        drop(request);
        assert_eq!(activity.expired().await, Waited::Idle);
        assert!(done.elapsed() >= limits.idle_timeout);
    }
}
