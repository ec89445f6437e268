//! The worker half: one session's `boa_engine::Context` with its limits,
//! console capture, libraries and `require`, running jobs in the global
//! scope. It knows no threads, channels or async; the host decides where it lives.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use boa_engine::context::ContextBuilder;
use boa_engine::job::SimpleJobExecutor;
use boa_engine::native_function::NativeFunction;
use boa_engine::{js_string, Context, JsArgs, JsError, JsNativeError, JsObject, JsResult, JsValue, Source};
use serde_json::{Map, Value};
use vm_domain::catalog::{LibraryRef, ModuleName};
use vm_domain::ports::{Ending, Job, Outcome, RuntimeError, RuntimeSpec};

use crate::console::{self, Capture};
use crate::library_cache::library_file;
use crate::preview;

/// Nested calls allowed before a `RangeError`, about as deep as Node goes.
pub const RECURSION_LIMIT: usize = 10_000;
/// Values on boa's operand stack allowed before a `RangeError`.
pub const VALUE_STACK_LIMIT: usize = 1 << 20;
/// Native stack for the engine's thread. [`RECURSION_LIMIT`] nested calls,
/// even when each goes through a Rust built-in (getters, `map`, `sort`),
/// need about 16 MiB in a debug build; only touched pages are committed.
/// Source nested thousands of levels deep can still overflow boa's parser.
pub const THREAD_STACK_BYTES: usize = 64 << 20;
/// Preview, JSON and exception texts are cut to this many bytes (or to the
/// output limit, when that is smaller).
pub const CLOSING_EVENT_MAX_BYTES: usize = 64 * 1024;
/// The source name of REPL snippets in stacks.
const REPL_SOURCE: &str = "<repl>";

/// A live engine for one session. Not `Send`: it stays on the thread that
/// built it.
pub struct SessionEngine {
    context: Context,
    capture: Rc<RefCell<Capture>>,
    jobs: Rc<SimpleJobExecutor>,
    /// The realm's own `JSON.stringify`, taken before user code could replace it.
    stringify: JsObject,
    worktree: PathBuf,
    closing_max_bytes: usize,
}

impl SessionEngine {
    /// Builds the engine: limits, console capture, `require`, then the
    /// libraries in order. A library missing from `cache_dir`, or one that
    /// throws, is a `StartFailed` whose message says what to do.
    pub fn start(spec: &RuntimeSpec, cache_dir: &Path) -> Result<Self, RuntimeError> {
        let failed = |what: &str, err: JsError| RuntimeError::StartFailed(format!("{what}: {err}"));
        let jobs = Rc::new(SimpleJobExecutor::new());
        let mut context = ContextBuilder::new()
            .job_executor(jobs.clone())
            .build()
            .map_err(|e| failed("cannot create the engine", e))?;
        let limits = context.runtime_limits_mut();
        limits.set_recursion_limit(RECURSION_LIMIT);
        limits.set_stack_size_limit(VALUE_STACK_LIMIT);

        let settings = &spec.settings;
        let capture = Rc::new(RefCell::new(Capture::new(&settings.limits, settings.runtime.console)));
        console::install(capture.clone(), &mut context).map_err(|e| failed("cannot install the console", e))?;
        install_require(&mut context, &spec.modules).map_err(|e| failed("cannot install require", e))?;
        let stringify = context
            .intrinsics()
            .objects()
            .json()
            .get(js_string!("stringify"), &mut context)
            .ok()
            .and_then(|f| f.as_object())
            .ok_or_else(|| RuntimeError::StartFailed("the engine has no JSON.stringify".into()))?;

        let max_output = usize::try_from(settings.limits.max_output_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
        let mut engine = Self {
            context,
            capture,
            jobs,
            stringify,
            worktree: spec.worktree.as_path().to_path_buf(),
            closing_max_bytes: CLOSING_EVENT_MAX_BYTES.min(max_output),
        };
        for library in &spec.libraries {
            engine.load_library(cache_dir, library)?;
        }
        engine.context.strict(settings.runtime.strict);
        Ok(engine)
    }

    /// Runs one job in the global scope, then its pending promise jobs, and
    /// reports console events followed by a value or an exception — or, when
    /// a limit stopped it, the events up to the limit.
    pub fn run(&mut self, job: Job) -> Outcome {
        let (result, source) = match job {
            Job::Eval { source } => {
                let result = self.context.eval(Source::from_bytes(&source).with_path(Path::new(REPL_SOURCE)));
                (result, REPL_SOURCE.to_owned())
            }
            Job::RunFile { path, args, env } => self.run_file(&path, args, env),
        };
        let result = self.settle(result);
        self.finish(result, &source)
    }

    fn run_file(
        &mut self,
        path: &Path,
        args: Map<String, Value>,
        env: BTreeMap<String, String>,
    ) -> (JsResult<JsValue>, String) {
        let name = path.strip_prefix(&self.worktree).unwrap_or(path).display().to_string();
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

    /// Builds the closing value or exception event, unless a limit stopped
    /// the job (or stops it while the value is turned into JSON).
    fn finish(&mut self, result: JsResult<JsValue>, source: &str) -> Outcome {
        let max = self.closing_max_bytes;
        let closing = match result {
            _ if self.capture.borrow().hit().is_some() => None,
            Ok(value) => {
                Some((preview::value_event(&value, &self.stringify, max, &mut self.context), Ending::Completed))
            }
            Err(err) => Some((preview::exception_event(err, source, max, &mut self.context), Ending::Threw)),
        };
        let (mut events, hit) = self.capture.borrow_mut().finish();
        if let Some(hit) = hit {
            let ending = Ending::Limit { hit, runtime_lost: false };
            return Outcome { events, ending };
        }
        let (event, ending) = closing.expect("a closing event is built whenever no limit was hit");
        events.push(event);
        Outcome { events, ending }
    }

    fn load_library(&mut self, cache_dir: &Path, library: &LibraryRef) -> Result<(), RuntimeError> {
        let path = library_file(cache_dir, library);
        let code = std::fs::read(&path).map_err(|err| {
            RuntimeError::StartFailed(match err.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "library {library} is not in the cache at {}; run `vm-system libs download`",
                    path.display()
                ),
                _ => format!("cannot read library {library} at {}: {err}", path.display()),
            })
        })?;
        let result = self.context.eval(Source::from_bytes(&code).with_path(&path));
        let result = self.settle(result);
        let (_, hit) = self.capture.borrow_mut().finish();
        let broken = |why: String| {
            RuntimeError::StartFailed(format!(
                "library {library} ({}) {why}; run `vm-system libs download` to fetch it again",
                path.display()
            ))
        };
        if let Some(hit) = hit {
            return Err(broken(format!("printed past a limit ({hit:?})")));
        }
        if let Err(err) = result {
            let source = path.display().to_string();
            let (message, _) = preview::describe_error(err, &source, &mut self.context);
            return Err(broken(format!("failed to load: {message}")));
        }
        let global = library.info().global;
        let defined = self.context.global_object().has_property(js_string!(global), &mut self.context).unwrap_or(false);
        if !defined {
            return Err(broken(format!("did not define the global `{global}`")));
        }
        Ok(())
    }
}

/// The native modules a template enabled, for `require`.
struct EnabledModules(Vec<String>);

fn install_require(context: &mut Context, modules: &[ModuleName]) -> JsResult<()> {
    context.insert_data(EnabledModules(modules.iter().map(|m| m.as_str().to_owned()).collect()));
    context.register_global_builtin_callable(js_string!("require"), 1, NativeFunction::from_fn_ptr(require))
}

/// `require(name)`: no native module is available yet, so every call throws;
/// the message says whether the template enabled the module at all.
fn require(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let name = args.get_or_undefined(0).to_string(context)?.to_std_string_escaped();
    let enabled = context.get_data::<EnabledModules>().is_some_and(|m| m.0.contains(&name));
    let message = if enabled {
        format!("native module \"{name}\" is not available yet")
    } else {
        format!("module \"{name}\" is not enabled for this template")
    };
    Err(JsNativeError::error().with_message(message).into())
}
