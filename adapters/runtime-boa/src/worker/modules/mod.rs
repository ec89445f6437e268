//! Native modules, reached from JavaScript with `require(name)` only when the
//! template enabled them. Like deno's ops: small typed functions whose errors
//! become JavaScript exceptions. One file per module; [`Host`] is what they share.

pub mod database;
pub mod exec;
pub mod fs;

use std::cell::{Cell, RefCell};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use boa_engine::native_function::NativeFunction;
use boa_engine::{js_string, Context, JsArgs, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue};

use super::console::Capture;

/// What native modules need from the session, kept in the context's host
/// data (no JavaScript values in it, so the collector need not see it).
pub struct Host {
    /// The session worktree, canonical.
    pub worktree: RefCell<PathBuf>,
    /// Modules `require` may return.
    pub enabled: RefCell<Vec<String>>,
    /// Programs `exec` may run.
    pub exec_allow: RefCell<Vec<String>>,
    /// Output budget of the job in progress (`exec` output counts).
    pub capture: Rc<RefCell<Capture>>,
    /// When the job in progress must end (its `wall_ms`).
    pub deadline: Cell<Option<Instant>>,
    /// The `database` module's open connection.
    pub database: RefCell<Option<database::Open>>,
}

impl Host {
    pub fn new(capture: Rc<RefCell<Capture>>) -> Self {
        Self {
            worktree: RefCell::new(PathBuf::from("/nonexistent")),
            enabled: RefCell::new(Vec::new()),
            exec_allow: RefCell::new(Vec::new()),
            capture,
            deadline: Cell::new(None),
            database: RefCell::new(None),
        }
    }

    /// The host of `context`; installed by [`install_require`].
    pub fn of(context: &Context) -> Rc<Host> {
        context.get_data::<Rc<Host>>().cloned().expect("the host is installed with require, before any script runs")
    }

    /// Resolves a path given to a module inside the worktree: relative to it
    /// (or absolute but inside it), `..` folded lexically, and the deepest
    /// existing ancestor, symlinks followed, still inside. The result is the
    /// real location, or the lexical one for a path that does not exist yet.
    pub fn confine(&self, raw: &str) -> Result<PathBuf, String> {
        let root = self.worktree.borrow().clone();
        if raw.is_empty() {
            return Err("the path is empty".into());
        }
        if raw.contains('\0') {
            return Err("the path contains a NUL byte".into());
        }
        let given = Path::new(raw);
        let joined = if given.is_absolute() { given.to_path_buf() } else { root.join(given) };
        let mut lexical = PathBuf::new();
        for component in joined.components() {
            match component {
                Component::ParentDir => {
                    if !lexical.pop() {
                        return Err("the path leaves the worktree".into());
                    }
                }
                Component::CurDir => {}
                other => lexical.push(other),
            }
        }
        if !lexical.starts_with(&root) {
            return Err(if given.is_absolute() {
                "absolute paths must lie inside the worktree; use a path relative to it".into()
            } else {
                "the path leaves the worktree".into()
            });
        }
        // The deepest part that exists, with symlinks resolved, must stay inside.
        let mut existing = lexical.as_path();
        let mut rest = Vec::new();
        loop {
            match existing.symlink_metadata() {
                Ok(_) => break,
                Err(_) => {
                    rest.push(existing.file_name().map(|n| n.to_owned()));
                    existing = match existing.parent() {
                        Some(parent) => parent,
                        None => return Err("the path has no existing parent".into()),
                    };
                }
            }
        }
        let real = existing.canonicalize().map_err(|err| {
            if existing.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                "the path is a symlink that leads outside the worktree".to_owned()
            } else {
                format!("cannot resolve the path ({err})")
            }
        })?;
        if !real.starts_with(&root) {
            return Err("the path resolves (through a symlink) outside the worktree".into());
        }
        let mut resolved = real;
        for name in rest.into_iter().rev() {
            match name {
                Some(name) => resolved.push(name),
                None => return Err("the path names no file".into()),
            }
        }
        Ok(resolved)
    }

    /// `path` as the user should read it: relative to the worktree.
    pub fn shown(&self, path: &Path) -> String {
        let root = self.worktree.borrow();
        match path.strip_prefix(&*root) {
            Ok(relative) if relative.as_os_str().is_empty() => ".".into(),
            Ok(relative) => relative.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }
}

/// Installs `require` and the host data. Modules are built on first
/// `require` and cached, so `require('fs') === require('fs')`.
pub fn install_require(context: &mut Context, host: Rc<Host>) -> JsResult<()> {
    context.insert_data(host);
    let cache = JsObject::with_null_proto();
    let require = NativeFunction::from_copy_closure_with_captures(require, cache);
    context.register_global_builtin_callable(js_string!("require"), 1, require)
}

fn require(_: &JsValue, args: &[JsValue], cache: &JsObject, context: &mut Context) -> JsResult<JsValue> {
    let name = args.get_or_undefined(0).to_string(context)?.to_std_string_escaped();
    let key = JsString::from(name.as_str());
    let cached = cache.get(key.clone(), context)?;
    if !cached.is_undefined() {
        return Ok(cached);
    }
    let enabled = Host::of(context).enabled.borrow().contains(&name);
    if !enabled {
        let hint = if ["fs", "exec", "database"].contains(&name.as_str()) {
            format!("add it to the template's modules to use it (`vm-system template add-module --name {name}`)")
        } else {
            "native modules are database, exec and fs; libraries are globals, not modules".to_owned()
        };
        let message = format!("module \"{name}\" is not enabled for this template; {hint}");
        return Err(coded(message, "ERR_MODULE_NOT_ENABLED", context));
    }
    let module = match name.as_str() {
        "fs" => fs::module(context),
        "exec" => exec::module(context),
        "database" => database::module(context),
        other => {
            return Err(coded(format!("module \"{other}\" has no implementation"), "ERR_MODULE_NOT_ENABLED", context))
        }
    };
    cache.set(key, module.clone(), false, context)?;
    Ok(module.into())
}

/// An `Error` with a Node-like `code` property (`ENOENT`, `ERR_ACCESS_DENIED`).
pub fn coded(message: impl Into<String>, code: &str, context: &mut Context) -> JsError {
    let object = JsNativeError::error().with_message(message.into()).into_opaque(context);
    let _ = object.set(js_string!("code"), JsString::from(code), false, context);
    JsError::from_opaque(object.into())
}

/// The `code` Node gives an I/O error of this kind.
pub fn io_code(err: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::NotFound => "ENOENT",
        K::AlreadyExists => "EEXIST",
        K::PermissionDenied => "EACCES",
        K::NotADirectory => "ENOTDIR",
        K::IsADirectory => "EISDIR",
        K::DirectoryNotEmpty => "ENOTEMPTY",
        K::FileTooLarge => "EFBIG",
        K::InvalidInput => "EINVAL",
        _ => "EIO",
    }
}

/// A required string argument, or a `TypeError` naming the function.
pub fn string_arg(args: &[JsValue], index: usize, what: &str, context: &mut Context) -> JsResult<String> {
    match args.get(index) {
        Some(value) if value.is_string() => Ok(value.to_string(context)?.to_std_string_escaped()),
        _ => Err(JsNativeError::typ().with_message(format!("{what} must be a string")).into()),
    }
}
