//! `fetch` for a session, performed by the daemon. The worker has no
//! network: boa_runtime's `fetch`, `Request`, `Response` and `Headers` are
//! installed with a [`Fetcher`] that sends each request on the session's
//! channel ([`Reply::Fetch`]) and waits for the daemon's
//! [`Request::FetchDone`], which the event loop reads through [`FetchLink`]
//! (its [`HostOps`]) when nothing else is due. The daemon holds the policy
//! (see [`crate::net`]); a refusal rejects with a `TypeError` whose `code`
//! says why (`ERR_HOST_NOT_ALLOWED` …). Without the capability, `fetch`
//! rejects at once with `ERR_FETCH_DISABLED`; the classes stay.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use boa_engine::native_function::NativeFunction;
use boa_engine::object::builtins::{AlignedVec, JsArrayBuffer, JsPromise};
use boa_engine::object::FunctionObjectBuilder;
use boa_engine::property::PropertyDescriptor;
use boa_engine::{js_string, Context, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue};
use boa_gc::{Finalize, Trace};
use boa_runtime::fetch::headers::JsHeaders;
use boa_runtime::fetch::request::JsRequest;
use boa_runtime::fetch::response::JsResponse;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use vm_domain::event::EventPayload;

use super::console::limit_error;
use super::event_loop::HostOps;
use super::modules::{with_code, Host};
use crate::protocol::{
    read_frame, write_frame, FetchRefusal, FetchRequest, FetchResponse, Reply, Request, CONTROL_FETCH_BODY,
    EXIT_PROTOCOL,
};
use crate::sandbox::fds;

/// What a script is told when its session has no `fetch` capability.
const DISABLED: &str = "fetch is not enabled for this session: add a `net` capability named `fetch` to the \
                        template, with the hosts it may reach (`{\"allow\": [\"api.example.com\"]}`)";

/// A daemon's answer: the response and its body, or why there is none,
/// and the `fetch` event the daemon made of it.
struct Done {
    result: Result<(FetchResponse, Vec<u8>), FetchRefusal>,
    event: EventPayload,
}

/// A request waiting for its answer.
#[derive(Default)]
struct Slot {
    done: Option<Done>,
    waker: Option<Waker>,
}

/// The worker's end of `fetch`: the session's channel (the live worker's;
/// none in the keeper, which must not hold it), the requests in flight and
/// their answers as they arrive.
pub struct FetchLink {
    enabled: bool,
    channel: RefCell<Option<UnixStream>>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, Slot>>,
}

impl FetchLink {
    /// A link of a session with (`enabled`) or without the capability; it
    /// sends nothing until [`FetchLink::set_channel`].
    pub fn new(enabled: bool) -> Rc<Self> {
        Rc::new(Self { enabled, channel: RefCell::new(None), next_id: Cell::new(1), pending: RefCell::default() })
    }

    /// The session's channel from now on: the live worker's, or a forked
    /// session's own. Answers to requests of the previous channel never
    /// come; there are none between jobs.
    pub fn set_channel(&self, channel: UnixStream) {
        *self.channel.borrow_mut() = Some(channel);
        self.pending.borrow_mut().clear();
    }

    /// Forgets every request in flight: the job ended, and answers that
    /// still come are dropped as the next request is read.
    pub fn end_job(&self) {
        self.pending.borrow_mut().clear();
    }

    /// Sends `request` to the daemon; the id its answer will carry.
    fn send(&self, request: FetchRequest) -> JsResult<u64> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let channel = self.channel.borrow();
        let Some(channel) = channel.as_ref() else {
            return Err(JsNativeError::error().with_message("fetch has no channel to the daemon").into());
        };
        if write_frame(channel, &Reply::Fetch { id, request }).is_err() {
            // The daemon stopped listening: the session is over.
            std::process::exit(0);
        }
        self.pending.borrow_mut().insert(id, Slot::default());
        Ok(id)
    }

    /// Tells the daemon the script no longer waits for request `id`.
    fn abort(&self, id: u64) {
        if let Some(channel) = self.channel.borrow().as_ref() {
            if write_frame(channel, &Reply::FetchAbort { id }).is_err() {
                std::process::exit(0);
            }
        }
    }

    /// Reads the answers that arrive within `timeout` (`None`: until one
    /// does), and makes their futures ready.
    fn receive(&self, timeout: Option<Duration>) {
        let mut timeout = timeout;
        loop {
            let ready = {
                let channel = self.channel.borrow();
                let Some(channel) = channel.as_ref() else { return };
                let mut fds = [PollFd::new(channel.as_fd(), PollFlags::POLLIN)];
                let wait = match timeout {
                    None => PollTimeout::NONE,
                    Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
                };
                match poll(&mut fds, wait) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(Errno::EINTR) => continue,
                    Err(_) => std::process::exit(0),
                }
            };
            if !ready {
                return;
            }
            self.read_one();
            // Then only what is there already.
            timeout = Some(Duration::ZERO);
        }
    }

    /// Reads one request from the daemon: during a job, only answers come.
    fn read_one(&self) {
        let channel = self.channel.borrow();
        let Some(channel) = channel.as_ref() else { return };
        let (id, result, event) = match read_frame::<Request>(channel) {
            Ok(Some(Request::FetchDone { id, result, event })) => (id, result, event),
            Ok(None) => std::process::exit(0),
            Ok(Some(_)) | Err(_) => std::process::exit(EXIT_PROTOCOL),
        };
        let mut pending = self.pending.borrow_mut();
        let Some(slot) = pending.get_mut(&id) else {
            // Its future was dropped (aborted): only the body file goes.
            if result.is_ok() && body_file(channel).is_err() {
                std::process::exit(EXIT_PROTOCOL);
            }
            return;
        };
        let result = match result {
            Ok(head) => match read_body(channel, &head) {
                Ok(body) => Ok((head, body)),
                Err(_) => std::process::exit(EXIT_PROTOCOL),
            },
            Err(refusal) => Err(refusal),
        };
        slot.done = Some(Done { result, event });
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

impl HostOps for FetchLink {
    fn in_flight(&self) -> usize {
        self.pending.borrow().values().filter(|slot| slot.done.is_none()).count()
    }

    fn wait(&self, timeout: Option<Duration>) {
        self.receive(timeout);
    }
}

/// The body of the response `head`, from the file that follows its
/// [`Request::FetchDone`].
fn read_body(channel: &UnixStream, head: &FetchResponse) -> io::Result<Vec<u8>> {
    let file = body_file(channel)?;
    let len = usize::try_from(head.body_len).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    let mut body = vec![0; len];
    file.read_exact_at(&mut body, 0)?;
    Ok(body)
}

/// The body file that follows a [`Request::FetchDone`] with a response.
/// An answer read between jobs (its job is over) is dropped with it.
pub fn body_file(channel: &UnixStream) -> io::Result<std::fs::File> {
    let (byte, fds) = fds::receive(channel.as_raw_fd())?.ok_or(io::ErrorKind::UnexpectedEof)?;
    match (byte, fds.into_iter().next()) {
        (CONTROL_FETCH_BODY, Some(fd)) => Ok(std::fs::File::from(fd)),
        _ => Err(io::ErrorKind::InvalidData.into()),
    }
}

/// The future of one request: ready with its answer, or with `None` when
/// its abort signal fired. Dropped unanswered (aborted, or the job ends
/// first), it tells the daemon to stop the request.
struct Answer {
    link: Rc<FetchLink>,
    id: u64,
    signal: Option<JsObject>,
    answered: bool,
}

impl Future for Answer {
    type Output = Option<Done>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Done>> {
        // Answers that already came, without waiting: the event loop waits
        // (see `HostOps::wait`) only when nothing else is due.
        self.link.receive(Some(Duration::ZERO));
        let mut pending = self.link.pending.borrow_mut();
        let Some(slot) = pending.get_mut(&self.id) else { return Poll::Ready(None) };
        if let Some(done) = slot.done.take() {
            pending.remove(&self.id);
            drop(pending);
            self.answered = true;
            return Poll::Ready(Some(done));
        }
        if is_aborted(self.signal.as_ref()) {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        let in_flight = self.link.pending.borrow_mut().remove(&self.id).is_some();
        if !self.answered && in_flight {
            self.link.abort(self.id);
        }
    }
}

fn is_aborted(signal: Option<&JsObject>) -> bool {
    signal
        .and_then(|signal| signal.downcast_ref::<boa_runtime::abort::JsAbortSignal>().map(|s| s.is_aborted()))
        .unwrap_or(false)
}

/// boa_runtime's fetch backend: asks the daemon through the link.
#[derive(Trace, Finalize, boa_engine::JsData)]
pub struct Fetcher {
    /// Holds no JavaScript values: nothing to trace.
    #[unsafe_ignore_trace]
    link: Rc<FetchLink>,
}

impl boa_runtime::fetch::Fetcher for Fetcher {
    async fn fetch(
        self: Rc<Self>,
        request: JsRequest,
        signal: Option<JsObject>,
        context: &RefCell<&mut Context>,
    ) -> JsResult<JsResponse> {
        if !self.link.enabled {
            return Err(coded_type_error("ERR_FETCH_DISABLED", DISABLED, &mut context.borrow_mut()));
        }
        let request = request.into_inner();
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        // A string body's type, as the Fetch standard extracts it.
        if !request.body().is_empty() && !request.headers().contains_key(http::header::CONTENT_TYPE) {
            headers.push(("content-type".into(), "text/plain;charset=UTF-8".into()));
        }
        let wire = FetchRequest {
            method: request.method().as_str().to_owned(),
            url: request.uri().to_string(),
            headers,
            body: String::from_utf8_lossy(request.body()).into_owned(),
        };
        let id = self.link.send(wire)?;
        let answered = Answer { link: self.link.clone(), id, signal: signal.clone(), answered: false }.await;
        let Done { result, event } = match answered {
            Some(done) => done,
            None => {
                let context = &mut context.borrow_mut();
                let reason = signal
                    .as_ref()
                    .and_then(|s| {
                        s.downcast_ref::<boa_runtime::abort::JsAbortSignal>().map(|s| s.abort_reason(context))
                    })
                    .unwrap_or_else(|| js_string!("AbortError").into());
                return Err(JsError::from_opaque(reason));
            }
        };
        let context = &mut context.borrow_mut();
        // The daemon recorded the request; it counts against the job's events.
        Host::of(context).capture.borrow_mut().record(event).map_err(limit_error)?;
        let (head, body) = match result {
            Ok(answer) => answer,
            Err(FetchRefusal { code, message }) => return Err(coded_type_error(&code, &message, context)),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = http::StatusCode::from_u16(head.status).map_err(|err| {
            coded_type_error("ERR_FETCH_FAILED", &format!("the response cannot be read: {err}"), context)
        })?;
        for (name, value) in &head.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes());
            let value = http::HeaderValue::from_bytes(value.as_bytes());
            if let (Ok(name), Ok(value)) = (name, value) {
                response.headers_mut().append(name, value);
            }
        }
        Ok(JsResponse::basic(JsString::from(head.url.as_str()), response))
    }
}

/// A `TypeError` with a `code` property, as Node's network errors have.
fn coded_type_error(code: &str, message: &str, context: &mut Context) -> JsError {
    with_code(JsNativeError::typ().with_message(message.to_owned()), code, context)
}

/// Installs `fetch`, `Request`, `Response` and `Headers`, asking the
/// daemon through `link`, and keeps the link where [`link_of`] finds it.
/// Adds what boa's classes lack: `fetch` takes any object that is not a
/// `Request` (a `URL`) as its string and refuses what is not an absolute
/// URL with `ERR_INVALID_URL`; `Request` has `url`, `method` and
/// `headers`; `Response` has `arrayBuffer()`.
pub fn install(link: Rc<FetchLink>, context: &mut Context) -> JsResult<()> {
    boa_runtime::fetch::register(Fetcher { link: link.clone() }, None, context)?;
    let global = context.global_object();
    let original = global
        .get(js_string!("fetch"), context)?
        .as_object()
        .ok_or_else(|| JsNativeError::error().with_message("fetch is not registered"))?;
    let fetch = NativeFunction::from_copy_closure_with_captures(checked_fetch, original);
    let fetch = FunctionObjectBuilder::new(context.realm(), fetch).name(js_string!("fetch")).length(1).build();
    global.set(js_string!("fetch"), fetch, true, context)?;

    let response = prototype_of::<JsResponse>(context)?;
    define_method(&response, "arrayBuffer", array_buffer, context)?;
    let request = prototype_of::<JsRequest>(context)?;
    define_getter(&request, "url", request_url, context)?;
    define_getter(&request, "method", request_method, context)?;
    define_getter(&request, "headers", request_headers, context)?;
    context.insert_data(link);
    Ok(())
}

/// The link [`install`] installed in `context`.
pub fn link_of(context: &Context) -> Option<Rc<FetchLink>> {
    context.get_data::<Rc<FetchLink>>().cloned()
}

fn prototype_of<C: boa_engine::class::Class>(context: &Context) -> JsResult<JsObject> {
    let class = context
        .get_global_class::<C>()
        .ok_or_else(|| JsNativeError::error().with_message(format!("{} is not registered", C::NAME)))?;
    Ok(class.prototype())
}

fn define_method(
    prototype: &JsObject,
    name: &'static str,
    function: fn(&JsValue, &[JsValue], &mut Context) -> JsResult<JsValue>,
    context: &mut Context,
) -> JsResult<()> {
    let function = FunctionObjectBuilder::new(context.realm(), NativeFunction::from_fn_ptr(function))
        .name(JsString::from(name))
        .length(0)
        .build();
    let property = PropertyDescriptor::builder().value(function).writable(true).enumerable(false).configurable(true);
    prototype.define_property_or_throw(JsString::from(name), property, context)?;
    Ok(())
}

fn define_getter(
    prototype: &JsObject,
    name: &'static str,
    getter: fn(&JsValue, &[JsValue], &mut Context) -> JsResult<JsValue>,
    context: &mut Context,
) -> JsResult<()> {
    let getter = FunctionObjectBuilder::new(context.realm(), NativeFunction::from_fn_ptr(getter))
        .name(JsString::from(format!("get {name}")))
        .length(0)
        .build();
    let property = PropertyDescriptor::builder().get(getter).enumerable(true).configurable(true);
    prototype.define_property_or_throw(JsString::from(name), property, context)?;
    Ok(())
}

/// `fetch(resource, init)` in front of boa's: a resource that is not a
/// `Request` is taken as its string, which must be an absolute URL.
fn checked_fetch(_: &JsValue, args: &[JsValue], original: &JsObject, context: &mut Context) -> JsResult<JsValue> {
    let resource = args.first().cloned().unwrap_or_default();
    let is_request = resource.as_object().is_some_and(|object| object.downcast_ref::<JsRequest>().is_some());
    let resource = if is_request {
        resource
    } else {
        let text = resource.to_string(context)?.to_std_string_escaped();
        match url::Url::parse(&text) {
            Ok(url) => JsString::from(url.as_str()).into(),
            Err(err) => {
                let error =
                    coded_type_error("ERR_INVALID_URL", &format!("Failed to parse URL from {text}: {err}"), context);
                return Ok(JsPromise::reject(error, context)?.into());
            }
        }
    };
    let init = args.get(1).cloned().unwrap_or_default();
    original.call(&JsValue::undefined(), &[resource, init], context)
}

/// The `Request` that `this` is, for its getters.
fn this_request<T>(this: &JsValue, read: impl FnOnce(&JsRequest) -> T) -> JsResult<T> {
    this.as_object()
        .and_then(|object| object.downcast_ref::<JsRequest>().map(|request| read(&request)))
        .ok_or_else(|| JsNativeError::typ().with_message("not a Request").into())
}

fn request_url(this: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    this_request(this, |request| JsString::from(request.uri().to_string()).into())
}

fn request_method(this: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    this_request(this, |request| JsString::from(request.inner().method().as_str()).into())
}

fn request_headers(this: &JsValue, _: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let headers = this_request(this, |request| JsHeaders::from_http(request.inner().headers().clone()))?;
    Ok(<JsHeaders as boa_engine::class::Class>::from_data(headers, context)?.into())
}

/// `Response.prototype.arrayBuffer()`: the body, in a new `ArrayBuffer`.
fn array_buffer(this: &JsValue, _: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let body = this
        .as_object()
        .and_then(|object| object.downcast_ref::<JsResponse>().map(|response| response.body()))
        .ok_or_else(|| JsNativeError::typ().with_message("Response.prototype.arrayBuffer requires a Response"))?;
    let buffer = JsArrayBuffer::from_byte_block(AlignedVec::from_iter(0, body.iter().copied()), context)?;
    Ok(JsPromise::resolve(buffer, context)?.into())
}
