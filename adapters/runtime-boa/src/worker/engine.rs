//! One session's `boa_engine::Context`: prepared once with the libraries (in
//! a zygote), configured for a session after the fork, then running jobs in
//! the global scope. It knows no processes or pipes: events go to a sink.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use boa_engine::context::ContextBuilder;
use boa_engine::job::SimpleJobExecutor;
use boa_engine::{js_string, Context, JsError, JsNativeError, JsObject, JsResult, JsValue, Source};
use serde_json::{Map, Value};
use vm_domain::template::Limits;

use super::console::{self, Capture, EventSink};
use super::loader::WorktreeLoader;
use super::modules::{self, Host};
use super::preview;
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

/// A live engine. Not `Send`: it stays on the thread that built it.
pub struct SessionEngine {
    context: Context,
    capture: Rc<RefCell<Capture>>,
    jobs: Rc<SimpleJobExecutor>,
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
        let jobs = Rc::new(SimpleJobExecutor::new());
        let loader = Rc::new(WorktreeLoader::new());
        let mut context = ContextBuilder::new()
            .job_executor(jobs.clone())
            .module_loader(loader.clone())
            .build()
            .map_err(failed("cannot create the engine"))?;
        let limits = context.runtime_limits_mut();
        limits.set_recursion_limit(RECURSION_LIMIT);
        limits.set_stack_size_limit(VALUE_STACK_LIMIT);

        let defaults = Limits::default();
        let capture = Rc::new(RefCell::new(Capture::new(&defaults, true)));
        console::install(capture.clone(), &mut context).map_err(failed("cannot install the console"))?;
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
        Ok(())
    }

    /// Sends the events of later jobs to `sink` instead: a forked session's
    /// own channel, or nowhere (the keeper's).
    pub fn set_sink(&mut self, sink: Box<dyn EventSink>) {
        self.capture.borrow_mut().set_sink(sink);
    }

    /// Runs one job in the global scope, then its pending promise jobs. Console
    /// events go to the sink as they happen, then the value or exception —
    /// unless a limit stopped the job, which the ending says.
    pub fn run(&mut self, job: WireJob) -> WireEnding {
        self.host.deadline.set(Some(Instant::now() + self.wall));
        let (result, source) = match job {
            WireJob::Eval { source } => {
                let result = self.context.eval(Source::from_bytes(&source).with_path(Path::new(REPL_SOURCE)));
                (result, REPL_SOURCE.to_owned())
            }
            WireJob::RunFile { path, args, env } => self.run_file(&path, args, env),
        };
        let result = self.settle(result);
        let ending = self.finish(result, &source);
        self.host.deadline.set(None);
        ending
    }

    fn run_file(
        &mut self,
        path: &Path,
        args: Map<String, Value>,
        env: BTreeMap<String, String>,
    ) -> (JsResult<JsValue>, String) {
        let name = self.host.shown(path);
        let code = match std::fs::read(path) {
            Ok(code) => code,
            Err(err) => {
                let err = JsNativeError::error().with_message(format!("cannot read {name}: {err}"));
                return (Err(err.into()), name);
            }
        };
        let env = env.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let result = self
            .set_global("__ARGS__", &Value::Object(args))
            .and_then(|()| self.set_global("__ENV__", &Value::Object(env)))
            .and_then(|()| self.context.eval(Source::from_bytes(&code).with_path(Path::new(&name))));
        (result, name)
    }

    fn set_global(&mut self, name: &str, value: &Value) -> JsResult<()> {
        let value = JsValue::from_json(value, &mut self.context)?;
        self.context.global_object().set(js_string!(name), value, true, &mut self.context)?;
        Ok(())
    }

    /// Runs the promise jobs the script queued, unless a limit already
    /// stopped it; then those jobs are dropped instead. The script's own
    /// error, if any, wins over an error from its jobs.
    fn settle(&mut self, result: JsResult<JsValue>) -> JsResult<JsValue> {
        if self.capture.borrow().hit().is_some() {
            self.drop_pending_jobs();
            return result;
        }
        let jobs = self.context.run_jobs();
        if self.capture.borrow().hit().is_some() {
            self.drop_pending_jobs();
        }
        match (result, jobs) {
            (Err(err), _) => Err(err),
            (Ok(_), Err(err)) => Err(err),
            (Ok(value), Ok(())) => Ok(value),
        }
    }

    fn drop_pending_jobs(&mut self) {
        self.jobs.get_cancellation_token().store(true, Ordering::Relaxed);
        let _ = self.context.run_jobs();
    }

    /// Sends the closing value or exception event, unless a limit stopped
    /// the job (or stops it while the value is turned into JSON).
    fn finish(&mut self, result: JsResult<JsValue>, source: &str) -> WireEnding {
        let max = self.closing_max_bytes;
        let closing = match result {
            _ if self.capture.borrow().hit().is_some() => None,
            Ok(value) => {
                Some((preview::value_event(&value, &self.stringify, max, &mut self.context), WireEnding::Completed))
            }
            Err(err) => Some((preview::exception_event(err, source, max, &mut self.context), WireEnding::Threw)),
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
