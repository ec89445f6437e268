//! One session's `boa_engine::Context`: prepared once with the libraries (in
//! a zygote), configured for a session after the fork, then running jobs in
//! the global scope. It knows no processes or pipes: events go to a sink.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use boa_engine::builtins::promise::PromiseState;
use boa_engine::context::ContextBuilder;
use boa_engine::object::builtins::JsPromise;
use boa_engine::{js_string, Context, JsError, JsNativeError, JsObject, JsResult, JsValue, Source};
use serde_json::{Map, Value};
use vm_domain::event::EventPayload;
use vm_domain::template::Limits;

use super::console::{self, Capture, EventSink};
use super::event_loop::{EventLoop, HostOps, Stopped};
use super::loader::WorktreeLoader;
use super::modules::{self, Host};
use super::{positions, preview, repl_await, web};
use crate::error::{PrepareError, StartError};
use crate::protocol::{BootSpec, LibraryFile, WireEnding, WireJob};

/// Nested calls allowed before a `RangeError`, about as deep as Node goes.
pub const RECURSION_LIMIT: usize = 10_000;
/// Values on boa's operand stack allowed before a `RangeError`.
pub const VALUE_STACK_LIMIT: usize = 1 << 20;
/// Native stack the worker's main thread may grow to (`RLIMIT_STACK`, set
/// when the zygote is started). [`RECURSION_LIMIT`] nested calls, even
/// through Rust built-ins (getters, `map`, `sort`), need about 16 MiB in a
/// debug build; only touched pages are committed.
pub const STACK_BYTES: u64 = 64 << 20;
/// Preview, JSON and exception texts are cut to this many bytes (or to the
/// output limit, when that is smaller).
pub const CLOSING_EVENT_MAX_BYTES: usize = 64 * 1024;
/// The source name of REPL snippets in stacks.
const REPL_SOURCE: &str = "<repl>";

/// What a job ran: the name its stack frames show, and its code.
struct Ran {
    name: String,
    code: Vec<u8>,
    /// A snippet with a top-level `await`, run inside an async function.
    awaited: bool,
}

/// A live engine. Not `Send`: it stays on the thread that built it.
pub struct SessionEngine {
    context: Context,
    capture: Rc<RefCell<Capture>>,
    jobs: Rc<EventLoop>,
    /// The realm's own `JSON.stringify`, taken before user code could replace it.
    stringify: JsObject,
    host: Rc<Host>,
    /// Where `import` may load from; off until a session turns `esm` on.
    loader: Rc<WorktreeLoader>,
    closing_max_bytes: usize,
    wall: Duration,
}

impl SessionEngine {
    /// Builds the engine with boa's limits, console capture and `require`,
    /// then evaluates the libraries in order. A missing library, or one that
    /// throws or defines nothing, is an error that says what to do.
    pub fn prepare(libraries: &[LibraryFile]) -> Result<Self, PrepareError> {
        let failed = |what: &'static str| move |err: JsError| PrepareError::Engine { what, reason: err.to_string() };
        let jobs = Rc::new(EventLoop::new());
        let loader = Rc::new(WorktreeLoader::new());
        let mut context = ContextBuilder::new()
            .job_executor(jobs.clone())
            .host_hooks(jobs.hooks())
            .module_loader(loader.clone())
            .build()
            .map_err(failed("cannot create the engine"))?;
        let limits = context.runtime_limits_mut();
        limits.set_recursion_limit(RECURSION_LIMIT);
        limits.set_stack_size_limit(VALUE_STACK_LIMIT);

        let defaults = Limits::default();
        let capture = Rc::new(RefCell::new(Capture::new(&defaults, true)));
        console::install(capture.clone(), &mut context).map_err(failed("cannot install the console"))?;
        install_web_globals(&mut context).map_err(failed("cannot install the web globals"))?;
        let host = Rc::new(Host::new(capture.clone()));
        modules::install_require(&mut context, host.clone()).map_err(failed("cannot install require"))?;
        let stringify = context
            .intrinsics()
            .objects()
            .json()
            .get(js_string!("stringify"), &mut context)
            .ok()
            .and_then(|f| f.as_object())
            .ok_or_else(|| PrepareError::Engine { what: "cannot prepare JSON", reason: "no JSON.stringify".into() })?;
        let mut engine = Self {
            context,
            capture,
            jobs,
            stringify,
            host,
            loader,
            closing_max_bytes: CLOSING_EVENT_MAX_BYTES,
            wall: Duration::from_millis(defaults.wall_ms),
        };
        for library in libraries {
            engine.load_library(library)?;
        }
        engine.loader.set_libraries(libraries);
        Ok(engine)
    }

    /// Makes the prepared engine a session's: its limits, console switch,
    /// strictness, worktree, modules, imports and the sink its events go to.
    /// A worktree that cannot be opened fails the session's start.
    pub fn configure(&mut self, boot: &BootSpec, sink: Box<dyn EventSink>) -> Result<(), StartError> {
        let limits = &boot.limits;
        {
            let mut capture = self.capture.borrow_mut();
            capture.configure(limits, boot.console);
            capture.set_sink(sink);
        }
        self.host
            .set_worktree(&boot.worktree)
            .map_err(|source| StartError::Worktree { path: boot.worktree.clone(), source })?;
        *self.host.enabled.borrow_mut() = boot.modules.clone();
        *self.host.exec_allow.borrow_mut() = boot.exec_allow.clone();
        *self.host.exec_env_allow.borrow_mut() = boot.exec_env_allow.clone();
        self.loader.configure(boot);
        let max_output = usize::try_from(limits.max_output_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
        self.closing_max_bytes = CLOSING_EVENT_MAX_BYTES.min(max_output);
        self.wall = Duration::from_millis(limits.wall_ms);
        self.context.strict(boot.strict);
        web::reset_time_origin();
        Ok(())
    }

    /// The engine's context, for installing host globals (such as `fetch`).
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// Host operations the event loop waits on when nothing else is due.
    pub fn set_host_ops(&mut self, ops: Rc<dyn HostOps>) {
        self.jobs.set_host(ops);
    }

    /// Sends the events of later jobs to `sink` instead: a forked session's
    /// own channel, or nowhere (the keeper's).
    pub fn set_sink(&mut self, sink: Box<dyn EventSink>) {
        self.capture.borrow_mut().set_sink(sink);
    }

    /// Runs one job in the global scope, then its event loop until nothing
    /// is left (see [`EventLoop`]). Console events go to the sink as they
    /// happen, then the value or exception — unless a limit stopped the job,
    /// which the ending says.
    pub fn run(&mut self, job: WireJob) -> WireEnding {
        self.host.deadline.set(Some(Instant::now() + self.wall));
        let (result, ran) = match job {
            WireJob::Eval { source } => {
                let (result, awaited) = self.eval_snippet(&source);
                (result, Ran { name: REPL_SOURCE.to_owned(), code: source.into_bytes(), awaited })
            }
            WireJob::RunFile { path, args, env } => self.run_file(&path, args, env),
        };
        let ending = self.finish(result, &ran);
        self.host.deadline.set(None);
        ending
    }

    /// A REPL snippet; one with a top-level `await` runs in an async
    /// function (see [`repl_await`]) whose promise gives the value; says
    /// whether it did.
    fn eval_snippet(&mut self, source: &str) -> (JsResult<JsValue>, bool) {
        let Some(rewritten) = repl_await::rewrite(source) else {
            let result = self.context.eval(Source::from_bytes(source).with_path(Path::new(REPL_SOURCE)));
            return (self.settle(result), false);
        };
        (self.eval_awaiting(&rewritten), true)
    }

    fn eval_awaiting(&mut self, rewritten: &repl_await::Rewritten) -> JsResult<JsValue> {
        let started = self.context.eval(Source::from_bytes(&rewritten.script).with_path(Path::new(REPL_SOURCE)));
        let promise = match started.map(|value| value.as_object().map(JsPromise::from_object)) {
            Ok(Some(Ok(promise))) => promise,
            Ok(_) => return Err(JsNativeError::typ().with_message("the awaiting snippet gave no promise").into()),
            Err(err) => return self.settle(Err(err)),
        };
        let completion = self.settle_promise(&promise)?;
        match completion.as_object() {
            Some(completion) => completion.get(js_string!("value"), &mut self.context),
            None => Ok(JsValue::undefined()),
        }
    }

    fn run_file(
        &mut self,
        path: &Path,
        args: Map<String, Value>,
        env: BTreeMap<String, String>,
    ) -> (JsResult<JsValue>, Ran) {
        let name = self.host.shown(path);
        let code = match std::fs::read(path) {
            Ok(code) => code,
            Err(err) => {
                let err = JsNativeError::error().with_message(format!("cannot read {name}: {err}"));
                return (Err(err.into()), Ran { name, code: Vec::new(), awaited: false });
            }
        };
        let env = env.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let globals = self
            .set_global("__ARGS__", &Value::Object(args))
            .and_then(|()| self.set_global("__ENV__", &Value::Object(env)));
        let module = self.loader.esm() || path.extension().is_some_and(|ext| ext == "mjs");
        let result = match globals {
            Err(err) => Err(err),
            Ok(()) if module => match self.loader.evaluate_source(path, &name, &code, &mut self.context) {
                Ok(promise) => self.settle_promise(&promise),
                Err(err) => self.settle(Err(err)),
            },
            Ok(()) => {
                let result = self.context.eval(Source::from_bytes(&code).with_path(Path::new(&name)));
                self.settle(result)
            }
        };
        let ran = Ran { name, code, awaited: module };
        (result, ran)
    }

    fn set_global(&mut self, name: &str, value: &Value) -> JsResult<()> {
        let value = JsValue::from_json(value, &mut self.context)?;
        self.context.global_object().set(js_string!(name), value, true, &mut self.context)?;
        Ok(())
    }

    /// Runs the event loop after a script, unless the script threw or a
    /// limit already stopped it: then every pending job is dropped, as a
    /// process would exit. The script's own error wins over its callbacks'.
    fn settle(&mut self, result: JsResult<JsValue>) -> JsResult<JsValue> {
        if result.is_err() || self.capture.borrow().hit().is_some() {
            self.jobs.clear();
            return result;
        }
        match self.run_loop(None) {
            Ok(()) | Err(Stopped::Stopped) => result,
            Err(Stopped::Threw(err)) => Err(err),
        }
    }

    /// Runs the event loop until nothing is left, then reads `promise`: its
    /// value, or its rejection as the job's error. A promise still pending
    /// then can never settle, which is an error too.
    fn settle_promise(&mut self, promise: &JsPromise) -> JsResult<JsValue> {
        match self.run_loop(Some(promise)) {
            Ok(()) => {}
            Err(Stopped::Stopped) => return Ok(JsValue::undefined()),
            Err(Stopped::Threw(err)) => return Err(err),
        }
        match promise.state() {
            PromiseState::Fulfilled(value) => Ok(value),
            PromiseState::Rejected(reason) => Err(JsError::from_opaque(reason)),
            PromiseState::Pending => Err(JsNativeError::error()
                .with_message(
                    "the top-level await never settled: no promise job, timer or host operation was left to \
                     settle it",
                )
                .into()),
        }
    }

    fn run_loop(&mut self, awaited: Option<&JsPromise>) -> Result<(), Stopped> {
        let capture = self.capture.clone();
        let stop = move || capture.borrow().hit().is_some();
        self.jobs.run(&mut self.context, awaited, &stop)
    }

    /// Sends the closing value or exception event, unless a limit stopped
    /// the job (or stops it while the value is turned into JSON).
    fn finish(&mut self, result: JsResult<JsValue>, ran: &Ran) -> WireEnding {
        let max = self.closing_max_bytes;
        let closing = match result {
            _ if self.capture.borrow().hit().is_some() => None,
            Ok(value) => {
                Some((preview::value_event(&value, &self.stringify, max, &mut self.context), WireEnding::Completed))
            }
            Err(err) => {
                let event = match preview::exception_event(err, &ran.name, max, &mut self.context) {
                    EventPayload::Exception { message, stack } => {
                        let code = String::from_utf8_lossy(&ran.code);
                        let stack = positions::fill_unknown(stack, &message, &ran.name, &code, ran.awaited);
                        EventPayload::Exception { message, stack }
                    }
                    other => other,
                };
                Some((event, WireEnding::Threw))
            }
        };
        let mut capture = self.capture.borrow_mut();
        if let Some(hit) = capture.finish() {
            return WireEnding::Limit(hit.into());
        }
        let (event, ending) = closing.expect("a closing event is built whenever no limit was hit");
        capture.close_with(event);
        ending
    }

    fn load_library(&mut self, library: &LibraryFile) -> Result<(), PrepareError> {
        let LibraryFile { name, path, global } = library;
        let code = std::fs::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => PrepareError::LibraryMissing { name: name.clone(), path: path.clone() },
            _ => PrepareError::LibraryUnreadable { name: name.clone(), path: path.clone(), source },
        })?;
        let result = self.context.eval(Source::from_bytes(&code).with_path(path));
        let result = self.settle(result);
        let hit = self.capture.borrow_mut().finish();
        let broken = |why: String| PrepareError::LibraryBroken { name: name.clone(), path: path.clone(), why };
        if let Some(hit) = hit {
            return Err(broken(format!("printed past a limit ({hit:?})")));
        }
        if let Err(err) = result {
            let source = path.display().to_string();
            let (message, _) = preview::describe_error(err, &source, &mut self.context);
            return Err(broken(format!("failed to load: {message}")));
        }
        let defined =
            self.context.global_object().has_property(js_string!(global.as_str()), &mut self.context).unwrap_or(false);
        if !defined {
            return Err(broken(format!("did not define the global `{global}`")));
        }
        Ok(())
    }
}

/// The web globals boa_runtime has (timers, `queueMicrotask`,
/// `structuredClone`, `TextEncoder`/`TextDecoder`, `URL`/`URLSearchParams`,
/// `atob`/`btoa`, `AbortController`/`AbortSignal`) and ours (`crypto`,
/// `performance`).
fn install_web_globals(context: &mut Context) -> JsResult<()> {
    use boa_runtime::extensions::{
        AbortControllerExtension, Base64Extension, EncodingExtension, MicrotaskExtension, StructuredCloneExtension,
        TimeoutExtension, UrlExtension,
    };
    use boa_runtime::RuntimeExtension;
    (
        Base64Extension,
        TimeoutExtension,
        EncodingExtension,
        MicrotaskExtension,
        StructuredCloneExtension,
        UrlExtension,
        AbortControllerExtension,
    )
        .register(None, context)?;
    web::install(context)
}
