//! `import` for a session (boa's `ModuleLoader`) and files run as ES modules.
//! Nothing loads unless the template has `settings.runtime.esm` (or the file
//! run is `.mjs`); then a specifier names a library of the template (bare
//! name) or a file inside the worktree and `settings.resolver.roots`, never
//! one found through the daemon's working directory. The kernel sandbox
//! confines reads too; this is the check that says why.
//!
//! Rules, in the order they are checked:
//! - `import` is refused (`ERR_IMPORT_DISABLED`) unless `esm` is on or the
//!   importer belongs to the graph of a `.mjs` file being run.
//! - `with { type: "json" }` is the only attribute; a `.json` file needs it.
//! - URLs other than `file:` are refused; absolute paths and `file:` URLs
//!   only with `resolver.allow_absolute_repo_imports`, and then inside only.
//! - `./`, `../` resolve against the importing file; bare names are the
//!   template's libraries (`lodash`, `lodash-4.17.21`), else paths under the
//!   worktree, then each root; `resolver.extensions` are tried when the name
//!   has no extension.
//! - A resolved file whose real path is outside is refused
//!   (`ERR_ACCESS_DENIED`) before it is read.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use boa_engine::builtins::object::OrdinaryObject;
use boa_engine::module::{ModuleLoader, ModuleRequest, Referrer, SyntheticModuleInitializer};
use boa_engine::object::builtins::{JsArray, JsPromise};
use boa_engine::{js_string, Context, JsError, JsNativeError, JsResult, JsString, JsValue, Module, Source};

use vm_domain::template::ResolverSettings;

use super::modules::with_code;
use crate::protocol::{BootSpec, LibraryFile};

/// Why `import` is refused when the template did not turn ES modules on.
/// The error reads `cannot import '<specifier>': ` and then this.
pub const IMPORT_DISABLED: &str = "import is disabled: this template has settings.runtime.esm = false; enable it \
                                   to load ES modules from the worktree";

/// Loads ES modules, JSON modules and the template's libraries.
/// Refuses everything until [`WorktreeLoader::configure`] turns it on.
#[derive(Default)]
pub struct WorktreeLoader {
    /// `None` before the session is configured: every import is refused.
    scope: RefCell<Option<Scope>>,
    /// The template's libraries, importable by bare name.
    libraries: RefCell<Vec<Library>>,
    /// Never borrowed while JavaScript runs (a getter may `import()`).
    map: RefCell<ModuleMap>,
}

/// The modules of the current module graph. A file run as a module starts a
/// new one, so each run sees the files as they are now; REPL `import()`s
/// join the graph of the last run.
#[derive(Default)]
struct ModuleMap {
    /// By real path and kind: a file imported twice (from anywhere) is one
    /// module, as the spec requires.
    files: HashMap<(PathBuf, Kind), Module>,
    /// The real path of each file module, which `./` and `../` resolve against.
    origins: HashMap<Module, PathBuf>,
    /// Library modules by global name.
    libraries: HashMap<String, Module>,
    /// Modules that may import although `esm` is off: a `.mjs` file run and
    /// everything it imported.
    entry_graph: HashSet<Module>,
}

/// A library of the template.
struct Library {
    /// `lodash`: what `import _ from "lodash"` names.
    id: String,
    /// `lodash-4.17.21`, importable too.
    name: String,
    /// `_`: the global the library defined in the zygote.
    global: String,
}

/// Where imports may resolve, all paths canonical.
struct Scope {
    /// `settings.runtime.esm`.
    esm: bool,
    worktree: PathBuf,
    /// Existing `resolver.roots`; relative ones are relative to the worktree.
    roots: Vec<PathBuf>,
    /// Tried in order when a specifier has no extension (`.js`).
    extensions: Vec<String>,
    /// `resolver.allow_absolute_repo_imports`.
    absolute: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    JavaScript,
    Json,
}

/// What a specifier resolved to.
enum Target {
    File(PathBuf),
    /// An index into the libraries.
    Library(usize),
}

/// Why an import failed before any module was made; each names its rule.
#[derive(Debug)]
enum Refusal {
    /// `esm` is off and the importer is not a `.mjs` file's graph.
    Disabled,
    /// An absolute path or `file:` URL without `allow_absolute_repo_imports`.
    Absolute,
    /// A URL with a scheme other than `file:`, or a `file:` URL naming a host.
    Url,
    /// The real path is outside the worktree and the roots.
    Outside,
    /// Nothing there; the paths tried, as shown to the user.
    NotFound { tried: Vec<String> },
    /// A bare name that is no library and no file; the libraries by name.
    UnknownBare { tried: Vec<String>, libraries: Vec<String> },
    /// An attribute other than `type`, or a type other than `json`.
    Attribute { key: String, value: String },
    /// A `.json` file imported without `with { type: "json" }`.
    JsonWithoutAttribute,
    /// The file exists but cannot be read as text.
    Unreadable { shown: String, reason: String },
}

/// The error of an entry file that cannot be read.
fn unreadable(shown: &str, err: &std::io::Error) -> JsError {
    JsNativeError::error().with_message(format!("cannot read {shown}: {err}")).into()
}

impl WorktreeLoader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the session's `esm` switch, worktree and resolver settings, and
    /// starts an empty module graph.
    pub fn configure(&self, boot: &BootSpec) {
        self.set_scope(boot.esm, &boot.worktree, &boot.resolver);
    }

    fn set_scope(&self, esm: bool, worktree: &Path, resolver: &ResolverSettings) {
        *self.map.borrow_mut() = ModuleMap::default();
        let worktree = worktree.canonicalize().unwrap_or_else(|_| worktree.to_path_buf());
        let roots = resolver
            .roots
            .iter()
            .map(|root| worktree.join(root))
            .filter_map(|root| root.canonicalize().ok())
            .filter(|root| root.is_dir())
            .collect();
        let extensions = resolver
            .extensions
            .iter()
            .filter(|ext| !ext.is_empty() && !ext.contains('/'))
            .map(|ext| if ext.starts_with('.') { ext.clone() } else { format!(".{ext}") })
            .collect();
        let absolute = resolver.allow_absolute_repo_imports;
        *self.scope.borrow_mut() = Some(Scope { esm, worktree, roots, extensions, absolute });
    }

    /// Remembers the template's libraries (evaluated as global scripts in
    /// the zygote), so that a bare specifier equal to a library's id
    /// (`"lodash"`) or full name (`"lodash-4.17.21"`) imports it: a module
    /// whose `default` export is the library's global as it is when the
    /// module is first imported, plus a named export for each own enumerable
    /// string key of that value when it is an object or function (so
    /// `import { chunk } from "lodash"` works). The names are fixed at the
    /// first import; later imports in the same graph are the same module.
    pub fn set_libraries(&self, libraries: &[LibraryFile]) {
        *self.libraries.borrow_mut() = libraries
            .iter()
            .map(|library| Library {
                id: library_id(&library.name).to_owned(),
                name: library.name.clone(),
                global: library.global.clone(),
            })
            .collect();
        self.map.borrow_mut().libraries.clear();
    }

    /// Whether the session's template turned ES modules on.
    pub fn esm(&self) -> bool {
        self.scope.borrow().as_ref().is_some_and(|scope| scope.esm)
    }

    /// Parses the file at `path` as an ES module named `shown` (in stacks
    /// and errors; relative to the worktree), makes it the root of a new
    /// module graph, then loads, links and evaluates it. The promise
    /// settles once the module and its imports have run (after the jobs and
    /// timers it waits on); it rejects with the first import refusal, link
    /// or runtime error.
    ///
    /// Its imports are allowed when the template has `esm` on, or when the
    /// file is `.mjs`: then for this file's graph only (REPL `import()`
    /// stays refused). A file of another extension run with `esm` off still
    /// evaluates as a module, but its imports are refused.
    ///
    /// # Errors
    /// An unreadable file (`Error: cannot read <shown>: …`) or a syntax
    /// error (`SyntaxError: <shown>:<line>:<col>: …`).
    pub fn evaluate_file(&self, path: &Path, shown: &str, context: &mut Context) -> JsResult<JsPromise> {
        let code = std::fs::read(path).map_err(|err| unreadable(shown, &err))?;
        self.evaluate_source(path, shown, &code, context)
    }

    /// [`WorktreeLoader::evaluate_file`] for a file whose `code` the caller
    /// already read.
    pub fn evaluate_source(&self, path: &Path, shown: &str, code: &[u8], context: &mut Context) -> JsResult<JsPromise> {
        *self.map.borrow_mut() = ModuleMap::default();
        let real = path.canonicalize().map_err(|err| unreadable(shown, &err))?;
        let module = Module::parse(Source::from_bytes(code).with_path(Path::new(shown)), None, context)
            .map_err(|err| located_syntax_error(shown, &err))?;
        let esm = self.esm();
        {
            let mut map = self.map.borrow_mut();
            map.files.insert((real.clone(), Kind::JavaScript), module.clone());
            map.origins.insert(module.clone(), real);
            if !esm && path.extension().is_some_and(|ext| ext == "mjs") {
                map.entry_graph.insert(module.clone());
            }
        }
        Ok(module.load_link_evaluate(context))
    }

    fn load(&self, referrer: &Referrer, request: &ModuleRequest, context: &mut Context) -> JsResult<Module> {
        let specifier = request.specifier().to_std_string_escaped();
        let refused = |refusal: Refusal, context: &mut Context| refusal.error(&specifier, context);
        let in_entry_graph = match referrer {
            Referrer::Module(module) => self.map.borrow().entry_graph.contains(module),
            Referrer::Script(_) | Referrer::Realm(_) => false,
        };
        let (target, kind) = {
            let scope = self.scope.borrow();
            let scope = match scope.as_ref() {
                Some(scope) if scope.esm || in_entry_graph => scope,
                _ => return Err(refused(Refusal::Disabled, context)),
            };
            let attribute = requested_kind(request).map_err(|refusal| refused(refusal, context))?;
            let target = self.resolve(scope, &specifier, attribute, referrer).map_err(|r| refused(r, context))?;
            let kind = match (&target, attribute) {
                (Target::File(path), None) if path.extension().is_some_and(|ext| ext == "json") => {
                    return Err(refused(Refusal::JsonWithoutAttribute, context));
                }
                (_, kind) => kind.unwrap_or(Kind::JavaScript),
            };
            (target, kind)
        };
        let module = match target {
            Target::Library(index) => self.library_module(index, context)?,
            Target::File(path) => self.file_module(&specifier, path, kind, context)?,
        };
        if in_entry_graph {
            self.map.borrow_mut().entry_graph.insert(module.clone());
        }
        Ok(module)
    }

    /// What `specifier`, imported from `referrer`, names.
    fn resolve(
        &self,
        scope: &Scope,
        specifier: &str,
        attribute: Option<Kind>,
        referrer: &Referrer,
    ) -> Result<Target, Refusal> {
        if specifier.is_empty() || specifier.contains('\0') {
            return Err(Refusal::NotFound { tried: Vec::new() });
        }
        let relative = specifier.starts_with("./") || specifier.starts_with("../") || matches!(specifier, "." | "..");
        let candidates: Vec<PathBuf> = if relative {
            vec![lexical(&self.base_dir(scope, referrer).join(specifier))]
        } else if let Some(scheme) = url_scheme(specifier) {
            if !scheme.eq_ignore_ascii_case("file") {
                return Err(Refusal::Url);
            }
            if !scope.absolute {
                return Err(Refusal::Absolute);
            }
            vec![lexical(&file_url_path(specifier).ok_or(Refusal::Url)?)]
        } else if Path::new(specifier).is_absolute() {
            if !scope.absolute {
                return Err(Refusal::Absolute);
            }
            vec![lexical(Path::new(specifier))]
        } else {
            if attribute.is_none() {
                let libraries = self.libraries.borrow();
                if let Some(index) = libraries.iter().position(|lib| lib.id == specifier || lib.name == specifier) {
                    return Ok(Target::Library(index));
                }
            }
            std::iter::once(&scope.worktree).chain(&scope.roots).map(|base| lexical(&base.join(specifier))).collect()
        };
        let mut outside = false;
        let mut tried = Vec::new();
        for candidate in candidates {
            if !scope.contains(&candidate) {
                outside = true;
                continue;
            }
            match scope.find(&candidate, &mut tried) {
                Found::File(path) => return Ok(Target::File(path)),
                Found::Outside => outside = true,
                Found::Missing => {}
            }
        }
        let tried = tried.iter().map(|path| scope.shown(path)).collect();
        Err(match () {
            () if outside => Refusal::Outside,
            () if relative || Path::new(specifier).is_absolute() || url_scheme(specifier).is_some() => {
                Refusal::NotFound { tried }
            }
            () => Refusal::UnknownBare {
                tried,
                libraries: self.libraries.borrow().iter().map(|l| l.id.clone()).collect(),
            },
        })
    }

    /// The directory `./` means for `referrer`: a module's own, or for a
    /// script (named relative to the worktree: `<repl>`, `src/main.js`) its.
    fn base_dir(&self, scope: &Scope, referrer: &Referrer) -> PathBuf {
        if let Referrer::Module(module) = referrer {
            if let Some(real) = self.map.borrow().origins.get(module) {
                return real.parent().map_or_else(|| scope.worktree.clone(), Path::to_path_buf);
            }
        }
        let from = referrer.path().map_or_else(|| scope.worktree.join("<repl>"), |path| scope.worktree.join(path));
        from.parent().map_or_else(|| scope.worktree.clone(), Path::to_path_buf)
    }

    /// The module of the file at real path `path`, loaded once per graph.
    fn file_module(&self, specifier: &str, path: PathBuf, kind: Kind, context: &mut Context) -> JsResult<Module> {
        if let Some(module) = self.map.borrow().files.get(&(path.clone(), kind)) {
            return Ok(module.clone());
        }
        let read = {
            let scope = self.scope.borrow();
            let scope = scope.as_ref().expect("a module resolved only once the session is configured");
            scope.read(&path).map(|text| (text, scope.shown(&path)))
        };
        let (text, shown) = read.map_err(|refusal| refusal.error(specifier, context))?;
        let module = match kind {
            Kind::Json => Module::parse_json(JsString::from(text.as_str()), context).map_err(|err| {
                let message = err.as_native().map_or_else(|| err.to_string(), |native| native.message().to_owned());
                JsNativeError::syntax().with_message(format!("{shown}: invalid JSON: {message}"))
            })?,
            Kind::JavaScript => Module::parse(Source::from_bytes(&text).with_path(Path::new(&shown)), None, context)
                .map_err(|err| located_syntax_error(&shown, &err))?,
        };
        let mut map = self.map.borrow_mut();
        map.files.insert((path.clone(), kind), module.clone());
        map.origins.insert(module.clone(), path);
        Ok(module)
    }

    /// The module of library `index`, made at its first import in a graph.
    fn library_module(&self, index: usize, context: &mut Context) -> JsResult<Module> {
        let (name, global) = {
            let libraries = self.libraries.borrow();
            let library = &libraries[index];
            (library.name.clone(), library.global.clone())
        };
        if let Some(module) = self.map.borrow().libraries.get(&global) {
            return Ok(module.clone());
        }
        let value = context.global_object().get(JsString::from(global.as_str()), context)?;
        let mut names = vec![js_string!("default")];
        if value.is_object() {
            let keys = OrdinaryObject::keys(&JsValue::undefined(), std::slice::from_ref(&value), context)?;
            let keys = JsArray::from_object(keys.as_object().expect("Object.keys returns an array").clone())?;
            for index in 0..keys.length(context)? {
                if let Some(key) = keys.get(index, context)?.as_string() {
                    if key != js_string!("default") {
                        names.push(key.clone());
                    }
                }
            }
        }
        let steps = SyntheticModuleInitializer::from_copy_closure_with_captures(
            |module, (global, names): &(JsString, Vec<JsString>), context| {
                let value = context.global_object().get(global.clone(), context)?;
                for name in names.iter().skip(1) {
                    let export = match value.as_object() {
                        Some(object) => object.get(name.clone(), context)?,
                        None => JsValue::undefined(),
                    };
                    module.set_export(name, export)?;
                }
                module.set_export(&js_string!("default"), value)
            },
            (JsString::from(global.as_str()), names.clone()),
        );
        let module = Module::synthetic(&names, steps, Some(PathBuf::from(name)), None, context);
        self.map.borrow_mut().libraries.insert(global, module.clone());
        Ok(module)
    }
}

/// The kind `request`'s attributes ask for; `None` without a `type`.
fn requested_kind(request: &ModuleRequest) -> Result<Option<Kind>, Refusal> {
    let mut kind = None;
    for attribute in request.attributes() {
        let key = attribute.key().to_std_string_escaped();
        let value = attribute.value().to_std_string_escaped();
        match (key.as_str(), value.as_str()) {
            ("type", "json") => kind = Some(Kind::Json),
            _ => return Err(Refusal::Attribute { key, value }),
        }
    }
    Ok(kind)
}

/// `lodash` for `lodash-4.17.21`: the name without its `-<version>`.
fn library_id(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((id, version)) if !id.is_empty() && version.starts_with(|c: char| c.is_ascii_digit()) => id,
        _ => name,
    }
}

/// The scheme of a URL specifier (`file`, `https`, `node`), if it is one.
/// A single letter is not a scheme.
fn url_scheme(specifier: &str) -> Option<&str> {
    let (scheme, _) = specifier.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && scheme.len() > 1).then_some(scheme)
}

/// The path of a local `file:` URL (`file:///x`, `file://localhost/x`),
/// percent-decoded, without query or fragment.
fn file_url_path(url: &str) -> Option<PathBuf> {
    let rest = url.get(5..)?.strip_prefix("//")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push(u8::try_from(high * 16 + low).expect("two hex digits make a byte"));
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    let path = PathBuf::from(String::from_utf8(decoded).ok()?);
    (!path.as_os_str().as_encoded_bytes().contains(&0)).then_some(path)
}

/// A module's syntax error as `SyntaxError: <shown>:<line>:<col>: <what>`
/// (boa names no file, and puts the position at the end).
fn located_syntax_error(shown: &str, err: &JsError) -> JsError {
    let message = err.as_native().map_or_else(|| err.to_string(), |native| native.message().to_owned());
    let located = message
        .rsplit_once(" at line ")
        .and_then(|(what, position)| {
            let (line, col) = position.split_once(", col ")?;
            let (line, col) = (line.parse::<u32>().ok()?, col.trim().parse::<u32>().ok()?);
            Some(format!("{shown}:{line}:{col}: {what}"))
        })
        .unwrap_or_else(|| format!("{shown}: {message}"));
    JsNativeError::syntax().with_message(located).into()
}

impl Refusal {
    /// The exception an import rejects with: the specifier, the rule, and a
    /// Node-like `code`.
    fn error(self, specifier: &str, context: &mut Context) -> JsError {
        let denied = |why: &str| JsNativeError::error().with_message(format!("import '{specifier}' denied: {why}"));
        let (error, code) = match self {
            Self::Disabled => (
                JsNativeError::typ().with_message(format!("cannot import '{specifier}': {IMPORT_DISABLED}")),
                "ERR_IMPORT_DISABLED",
            ),
            Self::Absolute => (
                denied(
                    "absolute paths and file: URLs are disabled for this template \
                     (settings.resolver.allow_absolute_repo_imports = false); import relative to the importing \
                     file (./, ../) or by a path under the worktree or settings.resolver.roots",
                ),
                "ERR_ACCESS_DENIED",
            ),
            Self::Url => (
                JsNativeError::typ().with_message(format!(
                    "cannot import '{specifier}': only local files (relative paths, paths under the worktree or \
                     settings.resolver.roots, file:/// URLs when absolute imports are allowed) and the template's \
                     libraries can be imported"
                )),
                "ERR_UNSUPPORTED_ESM_URL_SCHEME",
            ),
            Self::Outside => {
                (denied("it resolves outside the worktree and settings.resolver.roots"), "ERR_ACCESS_DENIED")
            }
            Self::NotFound { tried } => {
                let tried = if tried.is_empty() { String::new() } else { format!(" (tried {})", tried.join(", ")) };
                (
                    JsNativeError::error().with_message(format!("cannot find module '{specifier}'{tried}")),
                    "ERR_MODULE_NOT_FOUND",
                )
            }
            Self::UnknownBare { tried, libraries } => {
                let libraries = if libraries.is_empty() {
                    "this template has no libraries".to_owned()
                } else {
                    format!("this template's libraries: {}", libraries.join(", "))
                };
                (
                    JsNativeError::error().with_message(format!(
                        "cannot find module '{specifier}': it is not a library name ({libraries}) and no file \
                         matched (tried {})",
                        tried.join(", ")
                    )),
                    "ERR_MODULE_NOT_FOUND",
                )
            }
            Self::Attribute { key, value } => (
                JsNativeError::typ().with_message(format!(
                    "cannot import '{specifier}': import attribute {key}: \"{value}\" is not supported (only \
                     type: \"json\")"
                )),
                "ERR_IMPORT_ATTRIBUTE_UNSUPPORTED",
            ),
            Self::JsonWithoutAttribute => (
                JsNativeError::typ().with_message(format!(
                    "cannot import '{specifier}': a JSON module needs the import attribute with {{ type: \"json\" }}"
                )),
                "ERR_IMPORT_ATTRIBUTE_MISSING",
            ),
            Self::Unreadable { shown, reason } => (
                JsNativeError::error().with_message(format!("cannot read module '{specifier}' ({shown}): {reason}")),
                "ERR_MODULE_NOT_FOUND",
            ),
        };
        with_code(error, code, context)
    }
}

/// What a candidate path turned out to be.
enum Found {
    /// The real path of a file inside.
    File(PathBuf),
    Outside,
    Missing,
}

impl Scope {
    fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.worktree) || self.roots.iter().any(|root| path.starts_with(root))
    }

    /// `path` as the user should read it: relative to the worktree, else whole.
    fn shown(&self, path: &Path) -> String {
        match path.strip_prefix(&self.worktree) {
            Ok(relative) if !relative.as_os_str().is_empty() => relative.display().to_string(),
            _ => path.display().to_string(),
        }
    }

    /// The file `candidate` names, as is or with one of the extensions when it
    /// has none, symlinks resolved. Each path looked at is added to `tried`.
    fn find(&self, candidate: &Path, tried: &mut Vec<PathBuf>) -> Found {
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
                    return Found::Outside;
                }
                tried.push(path);
                continue;
            }
            let Ok(real) = path.canonicalize() else {
                tried.push(path);
                continue;
            };
            return if self.contains(&real) { Found::File(real) } else { Found::Outside };
        }
        Found::Missing
    }

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

    /// Reads a resolved file, checking again through its open descriptor
    /// that it is still inside (a symlink swapped in after [`Self::find`]).
    fn read(&self, path: &Path) -> Result<String, Refusal> {
        let unreadable = |err: std::io::Error| Refusal::Unreadable { shown: self.shown(path), reason: err.to_string() };
        let mut file = std::fs::File::open(path).map_err(unreadable)?;
        if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            if !self.contains(&real) {
                return Err(Refusal::Outside);
            }
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(unreadable)?;
        Ok(text)
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
    use boa_engine::builtins::promise::PromiseState;
    use boa_engine::context::ContextBuilder;
    use tempfile::TempDir;

    use super::*;

    /// A worktree, a loader configured for it, and a context using it.
    struct Fixture {
        worktree: TempDir,
        loader: Rc<WorktreeLoader>,
        context: Context,
    }

    /// What [`WorktreeLoader::configure`] takes from a `BootSpec`.
    struct Settings {
        esm: bool,
        resolver: ResolverSettings,
    }

    /// How a module or an import settled: `Ok(value as JSON)` or
    /// `Err((String(error), error.code, error.stack))`.
    type Settled = Result<String, (String, String, String)>;

    impl Fixture {
        fn new(configure: impl FnOnce(&mut Settings)) -> Self {
            let worktree = tempfile::tempdir().expect("a temp worktree");
            let mut settings = Settings { esm: true, resolver: ResolverSettings::default() };
            configure(&mut settings);
            let loader = Rc::new(WorktreeLoader::new());
            let context = ContextBuilder::new().module_loader(loader.clone()).build().expect("a context");
            loader.set_scope(settings.esm, worktree.path(), &settings.resolver);
            Self { worktree, loader, context }
        }

        fn esm() -> Self {
            Self::new(|_| {})
        }

        fn root(&self) -> PathBuf {
            self.worktree.path().canonicalize().expect("a real worktree")
        }

        fn write(&self, path: &str, text: &str) -> PathBuf {
            let file = self.root().join(path);
            std::fs::create_dir_all(file.parent().expect("a parent")).expect("dirs");
            std::fs::write(&file, text).expect("a written file");
            file
        }

        /// Defines `_` and `dayjs` as the zygote's libraries would.
        fn with_libraries(mut self) -> Self {
            self.eval("var _ = function lodash() {}; _.chunk = (xs, n) => [xs.slice(0, n), xs.slice(n)]; _.VERSION = '4.17.21'; var dayjs = () => 'now';");
            self.loader.set_libraries(&[
                LibraryFile {
                    name: "lodash-4.17.21".into(),
                    path: "/cache/lodash-4.17.21.js".into(),
                    global: "_".into(),
                },
                LibraryFile {
                    name: "dayjs-1.11.10".into(),
                    path: "/cache/dayjs-1.11.10.js".into(),
                    global: "dayjs".into(),
                },
            ]);
            self
        }

        fn eval(&mut self, source: &str) -> JsValue {
            self.context.eval(Source::from_bytes(source)).expect("the script runs")
        }

        fn eval_text(&mut self, source: &str) -> String {
            let value = self.eval(source);
            value.to_string(&mut self.context).expect("a string").to_std_string_escaped()
        }

        /// Runs `path` (relative to the worktree) as the entry module; `Ok`
        /// carries `JSON.stringify(globalThis.out)`.
        fn run(&mut self, path: &str) -> Settled {
            let promise =
                self.loader.evaluate_file(&self.root().join(path), path, &mut self.context).map_err(|err| {
                    let reason = err.into_opaque(&mut self.context).expect("a JavaScript error");
                    self.describe(reason)
                })?;
            self.context.run_jobs().expect("the jobs run");
            match promise.state() {
                PromiseState::Fulfilled(_) => Ok(self.eval_text("JSON.stringify(globalThis.out)")),
                PromiseState::Rejected(reason) => Err(self.describe(reason)),
                PromiseState::Pending => panic!("{path} is still pending"),
            }
        }

        /// `call` (a REPL `import(...)` expression) settled; `Ok` carries
        /// the JSON of what it fulfilled with.
        fn import(&mut self, call: &str) -> Settled {
            self.eval(&format!(
                "globalThis.__ok = undefined; globalThis.__err = undefined; \
                 {call}.then(v => {{ globalThis.__ok = JSON.stringify(v) }}, e => {{ globalThis.__err = e }})"
            ));
            self.context.run_jobs().expect("the jobs run");
            if self.eval("globalThis.__err !== undefined").to_boolean() {
                let reason = self.eval("globalThis.__err");
                return Err(self.describe(reason));
            }
            Ok(self.eval_text("globalThis.__ok"))
        }

        fn describe(&mut self, reason: JsValue) -> (String, String, String) {
            let global = self.context.global_object();
            global.set(js_string!("__reason"), reason, true, &mut self.context).expect("a global");
            (
                self.eval_text("String(__reason)"),
                self.eval_text("String(__reason && __reason.code)"),
                self.eval_text("String(__reason && __reason.stack)"),
            )
        }
    }

    /// The message and code of a refusal.
    fn refused(settled: Settled) -> (String, String) {
        let (message, code, _) = settled.expect_err("the import is refused");
        (message, code)
    }

    #[test]
    fn lexical_folds_dots_and_stays_absolute() {
        assert_eq!(lexical(Path::new("/a/b/../c/./d.js")), PathBuf::from("/a/c/d.js"));
        assert_eq!(lexical(Path::new("/a/../../etc/passwd")), PathBuf::from("/etc/passwd"));
    }

    #[test]
    fn library_ids_drop_the_version_and_file_urls_decode() {
        assert_eq!(library_id("lodash-4.17.21"), "lodash");
        assert_eq!(library_id("dayjs"), "dayjs");
        assert_eq!(url_scheme("file:///x"), Some("file"));
        assert_eq!(url_scheme("node:fs"), Some("node"));
        assert_eq!(url_scheme("lodash"), None);
        assert_eq!(url_scheme("c:/x"), None);
        assert_eq!(file_url_path("file:///a/b%20c.js?x#y"), Some(PathBuf::from("/a/b c.js")));
        assert_eq!(file_url_path("file://localhost/a.js"), Some(PathBuf::from("/a.js")));
        assert_eq!(file_url_path("file://host/a.js"), None);
        assert_eq!(file_url_path("file:///a%00.js"), None);
    }

    #[test]
    fn a_module_file_runs_its_nested_static_imports_json_and_libraries() {
        let mut f = Fixture::esm().with_libraries();
        f.write(
            "main.mjs",
            "import { b } from './lib/b.js';\n\
             import data from './data.json' with { type: 'json' };\n\
             import _, { chunk, VERSION } from 'lodash';\n\
             import dayjs from 'dayjs-1.11.10';\n\
             const lazy = await import('./lib/c');\n\
             globalThis.out = [b, data.n, chunk([1, 2, 3], 1), VERSION, typeof _, dayjs(), lazy.c];",
        );
        f.write("lib/b.js", "import { c } from './c.js';\nexport const b = 'b+' + c;");
        f.write("lib/c.js", "export const c = 'c';");
        f.write("data.json", "{\"n\": 7}");
        assert_eq!(f.run("main.mjs"), Ok(r#"["b+c",7,[[1],[2,3]],"4.17.21","function","now","c"]"#.into()));
    }

    #[test]
    fn cycles_link_and_a_file_imported_twice_is_one_module() {
        let mut f = Fixture::esm();
        f.write(
            "a.mjs",
            "import { fromB } from './b.mjs';\n\
             import * as c1 from './shared/c.js';\n\
             import * as c2 from 'shared/c';\n\
             import * as c3 from './shared/../shared/c.js';\n\
             export const fromA = () => 'a';\n\
             globalThis.out = [fromB(), c1 === c2 && c2 === c3, globalThis.evaluations];",
        );
        f.write("b.mjs", "import { fromA } from './a.mjs';\nexport const fromB = () => 'b sees ' + fromA();");
        f.write("shared/c.js", "globalThis.evaluations = (globalThis.evaluations || 0) + 1;\nexport const c = 1;");
        assert_eq!(f.run("a.mjs"), Ok(r#"["b sees a",true,1]"#.into()));
        assert_eq!(
            f.import("Promise.all([import('./shared/c.js'), import('shared/c.js')]).then(([x, y]) => x === y)"),
            Ok("true".into())
        );
        assert_eq!(f.eval_text("evaluations"), "1", "REPL imports join the graph of the last run");
    }

    #[test]
    fn each_run_of_a_file_sees_the_files_as_they_are_now() {
        let mut f = Fixture::esm();
        f.write("main.mjs", "import { v } from './v.js';\nglobalThis.out = v;");
        f.write("v.js", "export const v = 1;");
        assert_eq!(f.run("main.mjs"), Ok("1".into()));
        f.write("v.js", "export const v = 2;");
        assert_eq!(f.run("main.mjs"), Ok("2".into()));
    }

    #[test]
    fn a_library_is_read_when_first_imported_and_named_by_its_id_or_full_name() {
        let mut f = Fixture::esm().with_libraries();
        f.eval("_.later = 'added after the zygote'");
        let call = "Promise.all([import('lodash'), import('lodash-4.17.21')]).then(([a, b]) => [a === b, a.default === _, a.later])";
        assert_eq!(f.import(call), Ok(r#"[true,true,"added after the zygote"]"#.into()));
        f.write("lodash.js", "export const shadow = true;");
        assert_eq!(f.import("import('lodash').then(m => m.shadow === undefined)"), Ok("true".into()));
        assert_eq!(f.import("import('./lodash.js').then(m => m.shadow)"), Ok("true".into()));
    }

    #[test]
    fn a_mjs_file_may_import_with_esm_off_but_the_repl_and_other_files_may_not() {
        let mut f = Fixture::new(|settings| settings.esm = false);
        f.write("main.mjs", "import { b } from './b.js';\nglobalThis.out = [b, (await import('./b.js')).b];");
        f.write("b.js", "import data from './d.json' with { type: 'json' };\nexport const b = data.b;");
        f.write("d.json", "{\"b\": \"bee\"}");
        assert_eq!(f.run("main.mjs"), Ok(r#"["bee","bee"]"#.into()));
        let disabled = format!("TypeError: cannot import './b.js': {IMPORT_DISABLED}");
        assert_eq!(refused(f.import("import('./b.js')")), (disabled.clone(), "ERR_IMPORT_DISABLED".into()));
        f.write("plain.js", "import { b } from './b.js';\nglobalThis.out = b;");
        assert_eq!(refused(f.run("plain.js")), (disabled, "ERR_IMPORT_DISABLED".into()));
    }

    #[test]
    fn every_refusal_names_the_specifier_and_its_rule() {
        let mut f = Fixture::esm().with_libraries();
        let outside = tempfile::tempdir().expect("a directory outside");
        std::fs::write(outside.path().join("secret.js"), "export const s = 'secret';").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.js"), f.root().join("link.js")).unwrap();
        f.write("data.json", "{}");
        f.write("bad.json", "{ nope");
        let root = f.root();
        let secret = outside.path().join("secret.js");
        let cases: Vec<(String, &str, String)> = vec![
            (
                "import('../x.js')".into(),
                "ERR_ACCESS_DENIED",
                "Error: import '../x.js' denied: it resolves outside the worktree and settings.resolver.roots".into(),
            ),
            (
                "import('./link.js')".into(),
                "ERR_ACCESS_DENIED",
                "Error: import './link.js' denied: it resolves outside the worktree and settings.resolver.roots".into(),
            ),
            (
                format!("import('{}')", secret.display()),
                "ERR_ACCESS_DENIED",
                format!("Error: import '{}' denied: absolute paths and file: URLs are disabled", secret.display()),
            ),
            (
                format!("import('{}/data.json', {{ with: {{ type: 'json' }} }})", root.display()),
                "ERR_ACCESS_DENIED",
                format!("Error: import '{}/data.json' denied: absolute paths and file: URLs are disabled", root.display()),
            ),
            (
                "import('file:///etc/passwd')".into(),
                "ERR_ACCESS_DENIED",
                "Error: import 'file:///etc/passwd' denied: absolute paths and file: URLs are disabled for this template (settings.resolver.allow_absolute_repo_imports = false)".into(),
            ),
            (
                "import('https://example.com/x.js')".into(),
                "ERR_UNSUPPORTED_ESM_URL_SCHEME",
                "TypeError: cannot import 'https://example.com/x.js': only local files".into(),
            ),
            ("import('node:fs')".into(), "ERR_UNSUPPORTED_ESM_URL_SCHEME", "TypeError: cannot import 'node:fs': only local files".into()),
            (
                "import('left-pad')".into(),
                "ERR_MODULE_NOT_FOUND",
                "Error: cannot find module 'left-pad': it is not a library name (this template's libraries: lodash, dayjs) and no file matched (tried left-pad, left-pad.js, left-pad.mjs)".into(),
            ),
            (
                "import('./lib/nope')".into(),
                "ERR_MODULE_NOT_FOUND",
                "Error: cannot find module './lib/nope' (tried lib/nope, lib/nope.js, lib/nope.mjs)".into(),
            ),
            (
                "import('./data.json')".into(),
                "ERR_IMPORT_ATTRIBUTE_MISSING",
                "TypeError: cannot import './data.json': a JSON module needs the import attribute with { type: \"json\" }".into(),
            ),
            (
                "import('./data.json', { with: { type: 'css' } })".into(),
                "ERR_IMPORT_ATTRIBUTE_UNSUPPORTED",
                "TypeError: cannot import './data.json': import attribute type: \"css\" is not supported (only type: \"json\")".into(),
            ),
            ("import('./bad.json', { with: { type: 'json' } })".into(), "undefined", "SyntaxError: bad.json: invalid JSON: ".into()),
        ];
        for (call, code, message) in cases {
            let (text, got_code) = refused(f.import(&call));
            assert!(text.starts_with(&message), "{call}:\n  got  {text}\n  want {message}");
            assert_eq!(got_code, code, "{call}: {text}");
            assert!(!text.contains("secret'"), "{call}: {text}");
        }
    }

    #[test]
    fn a_template_without_libraries_says_so_for_bare_names() {
        let mut f = Fixture::esm();
        let (text, code) = refused(f.import("import('lodash')"));
        assert!(text.contains("'lodash': it is not a library name (this template has no libraries)"), "{text}");
        assert_eq!(code, "ERR_MODULE_NOT_FOUND");
    }

    #[test]
    fn absolute_paths_and_file_urls_load_when_allowed_but_only_inside() {
        let shared = tempfile::tempdir().expect("a root outside the worktree");
        std::fs::write(shared.path().join("util.js"), "export const u = 'util';").unwrap();
        let outside = tempfile::tempdir().expect("a directory outside");
        std::fs::write(outside.path().join("secret.js"), "export const s = 'secret';").unwrap();
        let shared_root = shared.path().display().to_string();
        let mut f = Fixture::new(|settings| {
            settings.resolver.allow_absolute_repo_imports = true;
            settings.resolver.roots = vec![shared_root];
        });
        let m = f.write("dir name/m.js", "export const m = 'm';");
        let util = shared.path().join("util.js").canonicalize().unwrap();
        let url = format!("file://{}", m.display().to_string().replace(' ', "%20"));
        let cases = [
            (format!("import('{}').then(x => x.m)", m.display()), "\"m\""),
            (format!("import('{url}').then(x => x.m)"), "\"m\""),
            (format!("import('{}').then(x => x.u)", util.display()), "\"util\""),
        ];
        for (call, expected) in cases {
            assert_eq!(f.import(&call), Ok(expected.into()), "{call}");
        }
        for specifier in [outside.path().join("secret.js").display().to_string(), "file:///etc/passwd".into()] {
            let (text, code) = refused(f.import(&format!("import('{specifier}')")));
            assert!(text.contains(&format!("'{specifier}' denied: it resolves outside the worktree")), "{text}");
            assert_eq!(code, "ERR_ACCESS_DENIED");
        }
    }

    #[test]
    fn syntax_errors_name_the_file_line_and_column() {
        let mut f = Fixture::esm();
        f.write("main.mjs", "const a = 1;\nconst = 2;\n");
        let (text, _, _) = f.run("main.mjs").expect_err("a syntax error");
        assert!(text.starts_with("SyntaxError: main.mjs:2:"), "{text}");
        f.write("entry.mjs", "import './lib/bad.js';");
        f.write("lib/bad.js", "export let x = ;");
        let (text, _, _) = f.run("entry.mjs").expect_err("a syntax error in an import");
        assert!(text.starts_with("SyntaxError: lib/bad.js:1:"), "{text}");
    }

    #[test]
    fn runtime_errors_in_modules_reject_with_a_stack_naming_the_file() {
        let mut f = Fixture::esm();
        f.write("main.mjs", "import { boom } from './lib/boom.js';\nboom();");
        f.write("lib/boom.js", "export function boom() {\n  throw new TypeError('kaboom');\n}");
        let (text, _, stack) = f.run("main.mjs").expect_err("a runtime error");
        assert_eq!(text, "TypeError: kaboom");
        assert!(stack.contains("lib/boom.js:2:"), "{stack}");
    }

    #[test]
    fn a_missing_entry_file_is_an_error_naming_it() {
        let mut f = Fixture::esm();
        let (text, _, _) = f.run("gone.mjs").expect_err("a missing file");
        assert!(text.starts_with("Error: cannot read gone.mjs: "), "{text}");
    }

    #[test]
    fn nothing_imports_before_the_session_is_configured() {
        let loader = Rc::new(WorktreeLoader::new());
        let mut context = ContextBuilder::new().module_loader(loader).build().expect("a context");
        let promise = context.eval(Source::from_bytes("import('./x.js')")).expect("a promise");
        context.run_jobs().expect("the jobs run");
        let state = promise.as_promise().map(|p| p.state());
        assert!(matches!(state, Some(PromiseState::Rejected(_))), "{state:?}");
    }
}
