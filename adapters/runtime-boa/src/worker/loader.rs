//! `import` for a session (boa's `ModuleLoader`): nothing loads unless the
//! template has `settings.runtime.esm`; then specifiers resolve inside the
//! worktree and `settings.resolver.roots` only, never against the daemon's
//! working directory. The kernel sandbox confines reads too; this is the
//! check that says why.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use boa_engine::module::{ModuleLoader, ModuleRequest, Referrer};
use boa_engine::{js_string, Context, JsError, JsNativeError, JsResult, JsString, Module, Source};

use crate::protocol::BootSpec;

/// Why `import` is refused when the template did not turn ES modules on.
pub const IMPORT_DISABLED: &str = "import is disabled: this template has settings.runtime.esm = false; enable it \
                                   to load ES modules from the worktree";

/// Loads ES modules and JSON modules from the worktree and resolver roots.
/// Refuses everything until [`WorktreeLoader::configure`] turns it on.
#[derive(Default)]
pub struct WorktreeLoader {
    /// `None` while imports are disabled (before the session, or `esm` off).
    scope: RefCell<Option<Scope>>,
    /// Loaded modules by real path and kind, so a file imported twice (from
    /// anywhere) is one module, as the spec requires.
    modules: RefCell<HashMap<(PathBuf, Kind), Module>>,
}

/// Where imports may resolve, all paths canonical.
struct Scope {
    worktree: PathBuf,
    /// Existing `resolver.roots`; relative ones are relative to the worktree.
    roots: Vec<PathBuf>,
    /// Tried in order when a specifier has no extension (`.js`).
    extensions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    JavaScript,
    Json,
}

/// Why a specifier did not resolve to a file.
enum Refusal {
    Disabled,
    Outside,
    NotFound,
}

impl WorktreeLoader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the session's `esm` switch, worktree and resolver settings.
    pub fn configure(&self, boot: &BootSpec) {
        self.modules.borrow_mut().clear();
        if !boot.esm {
            *self.scope.borrow_mut() = None;
            return;
        }
        let worktree = boot.worktree.canonicalize().unwrap_or_else(|_| boot.worktree.clone());
        let roots = boot
            .resolver
            .roots
            .iter()
            .map(|root| worktree.join(root))
            .filter_map(|root| root.canonicalize().ok())
            .filter(|root| root.is_dir())
            .collect();
        let extensions = boot
            .resolver
            .extensions
            .iter()
            .filter(|ext| !ext.is_empty() && !ext.contains('/'))
            .map(|ext| if ext.starts_with('.') { ext.clone() } else { format!(".{ext}") })
            .collect();
        *self.scope.borrow_mut() = Some(Scope { worktree, roots, extensions });
    }

    /// The real path `specifier` names, imported from `referrer`.
    fn resolve(&self, specifier: &str, referrer: Option<&Path>) -> Result<PathBuf, Refusal> {
        let scope = self.scope.borrow();
        let scope = scope.as_ref().ok_or(Refusal::Disabled)?;
        if specifier.is_empty() || specifier.contains('\0') {
            return Err(Refusal::NotFound);
        }
        let given = Path::new(specifier);
        let relative = specifier.starts_with("./") || specifier.starts_with("../") || matches!(specifier, "." | "..");
        let candidates: Vec<PathBuf> = if relative {
            // Scripts are named relative to the worktree (`<repl>`, `src/main.js`);
            // modules by their real path.
            let from = referrer.map_or_else(|| scope.worktree.join("<repl>"), |r| scope.worktree.join(r));
            let dir = from.parent().unwrap_or(&scope.worktree);
            vec![lexical(&dir.join(given))]
        } else if given.is_absolute() {
            vec![lexical(given)]
        } else {
            std::iter::once(&scope.worktree).chain(&scope.roots).map(|base| lexical(&base.join(given))).collect()
        };
        let mut outside = false;
        for candidate in candidates {
            if !scope.contains(&candidate) {
                outside = true;
                continue;
            }
            match scope.find(&candidate) {
                Ok(found) => return Ok(found),
                Err(Refusal::Outside) => outside = true,
                Err(_) => {}
            }
        }
        Err(if outside { Refusal::Outside } else { Refusal::NotFound })
    }

    fn load(&self, referrer: &Referrer, request: &ModuleRequest, context: &mut Context) -> JsResult<Module> {
        let specifier = request.specifier().to_std_string_escaped();
        let mut kind = None;
        for attribute in request.attributes() {
            if attribute.key() == &js_string!("type") {
                kind = match attribute.value().to_std_string_escaped().as_str() {
                    "json" => Some(Kind::Json),
                    other => {
                        let message = format!("cannot import '{specifier}': unsupported module type \"{other}\"");
                        return Err(JsNativeError::typ().with_message(message).into());
                    }
                };
            }
        }
        let path = self.resolve(&specifier, referrer.path()).map_err(|refusal| refusal.error(&specifier, context))?;
        let kind = kind.unwrap_or(match path.extension() {
            Some(ext) if ext == "json" => Kind::Json,
            _ => Kind::JavaScript,
        });
        if let Some(module) = self.modules.borrow().get(&(path.clone(), kind)) {
            return Ok(module.clone());
        }
        let text = self.read(&path).map_err(|refusal| refusal.error(&specifier, context))?;
        let module = match kind {
            Kind::Json => Module::parse_json(JsString::from(text.as_str()), context).map_err(|err| {
                JsNativeError::syntax().with_message(format!("cannot parse JSON module '{specifier}'")).with_cause(err)
            })?,
            Kind::JavaScript => {
                Module::parse(Source::from_bytes(&text).with_path(&path), None, context).map_err(|err| {
                    JsNativeError::syntax().with_message(format!("cannot parse module '{specifier}'")).with_cause(err)
                })?
            }
        };
        self.modules.borrow_mut().insert((path, kind), module.clone());
        Ok(module)
    }

    /// Reads a resolved file, checking again through its open descriptor
    /// that it is still inside (a symlink swapped in after [`Self::resolve`]).
    fn read(&self, path: &Path) -> Result<String, Refusal> {
        let mut file = std::fs::File::open(path).map_err(|_| Refusal::NotFound)?;
        if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            let scope = self.scope.borrow();
            if !scope.as_ref().is_some_and(|scope| scope.contains(&real)) {
                return Err(Refusal::Outside);
            }
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|_| Refusal::NotFound)?;
        Ok(text)
    }
}

impl Refusal {
    /// The exception an import rejects with: the rule, the specifier and a
    /// Node-like `code`.
    fn error(self, specifier: &str, context: &mut Context) -> JsError {
        let (error, code) = match self {
            Self::Disabled => (JsNativeError::typ().with_message(IMPORT_DISABLED), "ERR_IMPORT_DISABLED"),
            Self::Outside => (
                JsNativeError::error().with_message(format!(
                    "import '{specifier}' denied: it resolves outside the worktree and settings.resolver.roots"
                )),
                "ERR_ACCESS_DENIED",
            ),
            Self::NotFound => (
                JsNativeError::error().with_message(format!("cannot find module '{specifier}'")),
                "ERR_MODULE_NOT_FOUND",
            ),
        };
        let object = error.into_opaque(context);
        let _ = object.set(js_string!("code"), JsString::from(code), false, context);
        JsError::from_opaque(object.into())
    }
}

impl Scope {
    fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.worktree) || self.roots.iter().any(|root| path.starts_with(root))
    }

    /// The file `candidate` names, as is or with one of the extensions when it
    /// has none, symlinks resolved; `Outside` when the real file is not inside.
    fn find(&self, candidate: &Path) -> Result<PathBuf, Refusal> {
        let mut tries = vec![candidate.to_path_buf()];
        if candidate.extension().is_none() {
            tries.extend(self.extensions.iter().map(|ext| {
                let mut name = candidate.as_os_str().to_owned();
                name.push(ext);
                PathBuf::from(name)
            }));
        }
        for path in tries {
            if !path.is_file() {
                // In the sandbox a link's outside target does not exist at
                // all; the link still says where it leads.
                if self.leaves_through_a_symlink(&path) {
                    return Err(Refusal::Outside);
                }
                continue;
            }
            let real = path.canonicalize().map_err(|_| Refusal::NotFound)?;
            return if self.contains(&real) { Ok(real) } else { Err(Refusal::Outside) };
        }
        Err(Refusal::NotFound)
    }
}

impl Scope {
    /// Whether `path`, or a directory on its way, is a symlink whose target
    /// (read, not followed) lies outside the worktree and the roots.
    fn leaves_through_a_symlink(&self, path: &Path) -> bool {
        path.ancestors().take_while(|p| self.contains(p)).any(|p| {
            let Ok(target) = std::fs::read_link(p) else { return false };
            let target = match p.parent() {
                Some(parent) if target.is_relative() => parent.join(target),
                _ => target,
            };
            !self.contains(&lexical(&target))
        })
    }
}

/// `path` absolute with `.` and `..` folded (without touching the disk).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl ModuleLoader for WorktreeLoader {
    fn load_imported_module(
        self: Rc<Self>,
        referrer: Referrer,
        request: ModuleRequest,
        context: &RefCell<&mut Context>,
    ) -> impl std::future::Future<Output = JsResult<Module>> {
        let result = self.load(&referrer, &request, &mut context.borrow_mut());
        async { result }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_folds_dots_and_stays_absolute() {
        assert_eq!(lexical(Path::new("/a/b/../c/./d.js")), PathBuf::from("/a/c/d.js"));
        assert_eq!(lexical(Path::new("/a/../../etc/passwd")), PathBuf::from("/etc/passwd"));
    }
}
