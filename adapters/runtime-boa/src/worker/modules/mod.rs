//! Native modules, reached from JavaScript with `require(name)` only when the
//! template enabled them. Like deno's ops: small typed functions whose errors
//! become JavaScript exceptions. One file per module; [`Host`] is what they share.

pub mod database;
pub mod exec;
pub mod fs;

use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use boa_engine::native_function::NativeFunction;
use boa_engine::{js_string, Context, JsArgs, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::console::Capture;
use crate::protocol::AllowedProgram;

/// How often an `openat2` that the kernel asks to retry (`EAGAIN`: a rename
/// raced the lookup; `EINTR`) is tried before it is reported.
const RESOLVE_ATTEMPTS: usize = 128;

/// What native modules need from the session, kept in the context's host
/// data (no JavaScript values in it, so the collector need not see it).
pub struct Host {
    /// The session worktree, canonical: what paths are shown relative to.
    /// Never used to open anything; see [`Host::open_beneath`].
    pub worktree: RefCell<PathBuf>,
    /// The worktree directory, opened `O_PATH` at configure time. Every path a
    /// module opens is resolved by the kernel beneath it, or why it could not
    /// be opened.
    root: RefCell<Result<OwnedFd, String>>,
    /// Modules `require` may return.
    pub enabled: RefCell<Vec<String>>,
    /// Programs `exec` may run.
    pub exec_allow: RefCell<Vec<AllowedProgram>>,
    /// Environment variables a program `exec` runs may be given.
    pub exec_env_allow: RefCell<Vec<String>>,
    /// Output budget of the job in progress (`exec` output counts).
    pub capture: Rc<RefCell<Capture>>,
    /// When the job in progress must end (its `wall_ms`).
    pub deadline: Cell<Option<Instant>>,
    /// The `database` module's open connection.
    pub database: RefCell<Option<database::Open>>,
}

/// Why a module cannot use a path.
#[derive(Debug)]
pub enum PathError {
    /// The path leads outside the worktree, or names something confinement
    /// cannot vouch for: `ERR_ACCESS_DENIED`, with the reason.
    Denied(String),
    /// An ordinary I/O error (a missing file, not a directory …): Node's code.
    Io(io::Error),
}

impl PathError {
    /// The error of a failed `*at` call or `openat2` resolution. `EXDEV` and
    /// `ELOOP` are what `RESOLVE_BENEATH` and `RESOLVE_NO_MAGICLINKS` answer.
    pub fn of_errno(errno: Errno) -> Self {
        match errno {
            Errno::EXDEV => Self::Denied(
                "the path leads outside the worktree (through `..`, an absolute symlink or a symlink pointing out)"
                    .into(),
            ),
            Errno::ELOOP => {
                Self::Denied("the path goes through a /proc magic link or through too many symlinks".into())
            }
            other => Self::Io(io::Error::from_raw_os_error(other as i32)),
        }
    }
}

impl Host {
    pub fn new(capture: Rc<RefCell<Capture>>) -> Self {
        Self {
            worktree: RefCell::new(PathBuf::from("/nonexistent")),
            root: RefCell::new(Err("no session is configured yet".into())),
            enabled: RefCell::new(Vec::new()),
            exec_allow: RefCell::new(Vec::new()),
            exec_env_allow: RefCell::new(Vec::new()),
            capture,
            deadline: Cell::new(None),
            database: RefCell::new(None),
        }
    }

    /// The host of `context`; installed by [`install_require`].
    pub fn of(context: &Context) -> Rc<Host> {
        context.get_data::<Rc<Host>>().cloned().expect("the host is installed with require, before any script runs")
    }

    /// Makes `path` (canonical) the session's worktree and opens it
    /// (`O_PATH | O_DIRECTORY | O_CLOEXEC`). On an error, modules refuse
    /// every path with that reason until a later call succeeds.
    pub fn set_worktree(&self, path: &Path) -> io::Result<()> {
        *self.worktree.borrow_mut() = path.to_path_buf();
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match nix::fcntl::open(path, flags, Mode::empty()) {
            Ok(directory) => {
                *self.root.borrow_mut() = Ok(directory);
                Ok(())
            }
            Err(errno) => {
                let err = io::Error::from(errno);
                *self.root.borrow_mut() = Err(format!("the worktree '{}' cannot be opened ({err})", path.display()));
                Err(err)
            }
        }
    }

    /// A path given to a module, made relative to the worktree and folded
    /// lexically: relative paths as they are, absolute ones only when they lie
    /// inside the worktree; `.` dropped, `..` folded, and refused when it
    /// climbs above the worktree. The result has only normal components (it
    /// is empty for the worktree itself). Symlinks are left to the kernel.
    pub fn relative(&self, raw: &str) -> Result<PathBuf, PathError> {
        if raw.is_empty() {
            return Err(PathError::Denied("the path is empty".into()));
        }
        if raw.contains('\0') {
            return Err(PathError::Denied("the path contains a NUL byte".into()));
        }
        let given = Path::new(raw);
        let root = self.worktree.borrow().clone();
        let mut folded = PathBuf::new();
        for component in given.components() {
            match component {
                Component::ParentDir => {
                    if !folded.pop() {
                        return Err(PathError::Denied("the path leaves the worktree".into()));
                    }
                }
                Component::CurDir => {}
                other => folded.push(other),
            }
        }
        if !given.is_absolute() {
            return Ok(folded);
        }
        match folded.strip_prefix(&root) {
            Ok(inside) => Ok(inside.to_path_buf()),
            Err(_) => {
                Err(PathError::Denied("absolute paths must lie inside the worktree; use a path relative to it".into()))
            }
        }
    }

    /// Opens `raw` (see [`Host::relative`]) with `flags` (and `mode` when they
    /// create), resolved by the kernel beneath the worktree directory
    /// (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`): `..` and
    /// symlinks may move around inside the worktree but never out of it, and
    /// what is checked is what is opened.
    pub fn open_beneath(&self, raw: &str, flags: OFlag, mode: Mode) -> Result<OwnedFd, PathError> {
        let relative = self.relative(raw)?;
        self.open_relative(&relative, flags, mode)
    }

    /// [`Host::open_beneath`] for a path already made relative.
    pub fn open_relative(&self, relative: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd, PathError> {
        let root = self.root.borrow();
        let root = root.as_ref().map_err(|reason| PathError::Denied(reason.clone()))?;
        let relative = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
        resolve_beneath(root, relative, flags | OFlag::O_CLOEXEC, mode)
    }

    /// The directory holding `raw`'s last component, opened `O_PATH` beneath
    /// the worktree, with that name and the whole relative path. For `*at`
    /// calls (`mkdirat`, `unlinkat`) on the name itself, which is never `.`,
    /// `..` or a path.
    pub fn open_parent(&self, raw: &str) -> Result<(OwnedFd, OsString, PathBuf), PathError> {
        let relative = self.relative(raw)?;
        let Some(name) = relative.file_name().map(|n| n.to_os_string()) else {
            return Err(PathError::Denied("the path names the worktree itself, not an entry in it".into()));
        };
        let parent = relative.parent().unwrap_or(Path::new(""));
        let directory = self.open_relative(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
        Ok((directory, name, relative))
    }

    /// Checks a path given to a module the way [`Host::open_beneath`] would
    /// resolve it and returns where it is (worktree joined with the relative
    /// path; a path that does not exist yet is checked as far as it exists).
    /// A check, not an open: whoever uses the result opens it again by name,
    /// so prefer [`Host::open_beneath`]; `exec` uses this for a working
    /// directory, which the kernel sandbox confines as well.
    pub fn confine(&self, raw: &str) -> Result<PathBuf, String> {
        let relative = self.relative(raw).map_err(reason_of)?;
        match self.open_relative(&relative, OFlag::O_PATH, Mode::empty()) {
            Ok(_) | Err(PathError::Io(_)) => Ok(self.worktree.borrow().join(relative)),
            Err(PathError::Denied(reason)) => Err(reason),
        }
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

/// `openat2(directory, relative, { flags, mode, RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS })`, retried while the kernel asks to.
pub fn resolve_beneath(directory: impl AsFd, relative: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd, PathError> {
    let creates = flags.intersects(OFlag::O_CREAT | OFlag::O_TMPFILE);
    let how = OpenHow::new()
        .flags(flags)
        .mode(if creates { mode } else { Mode::empty() })
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut attempts = 0;
    loop {
        match nix::fcntl::openat2(directory.as_fd(), relative, how) {
            Ok(fd) => return Ok(fd),
            Err(Errno::EAGAIN | Errno::EINTR) if attempts < RESOLVE_ATTEMPTS => attempts += 1,
            Err(errno) => return Err(PathError::of_errno(errno)),
        }
    }
}

fn reason_of(err: PathError) -> String {
    match err {
        PathError::Denied(reason) => reason,
        PathError::Io(err) => err.to_string(),
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
    with_code(JsNativeError::error().with_message(message.into()), code, context)
}

/// `error` (a `TypeError`, an `Error`…) with a Node-like `code` property.
pub fn with_code(error: JsNativeError, code: &str, context: &mut Context) -> JsError {
    let object = error.into_opaque(context);
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
