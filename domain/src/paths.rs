//! Path safety. A session's worktree is an absolute, existing directory; every
//! script path is relative to it and must stay inside it, also after symlinks
//! are resolved.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The directory a session is bound to: absolute, existing, canonical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorktreePath(PathBuf);

impl WorktreePath {
    /// Accepts an absolute path naming an existing directory and stores its
    /// canonical form (symlinks resolved).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.trim().is_empty() {
            return Err(DomainError::validation("worktree_path", "worktree_path is required"));
        }
        if raw.contains('\0') {
            return Err(DomainError::invalid_path(raw, "the path contains a NUL byte"));
        }
        let path = Path::new(raw);
        if !path.is_absolute() {
            return Err(DomainError::invalid_path(raw, "the worktree path must be absolute"));
        }
        let canonical = path.canonicalize().map_err(|err| {
            DomainError::invalid_path(raw, format!("the worktree is not an existing directory ({err})"))
        })?;
        if !canonical.is_dir() {
            return Err(DomainError::invalid_path(raw, "the worktree is not a directory"));
        }
        Ok(Self(canonical))
    }

    /// Wraps a path already stored by this type, without touching the disk.
    pub fn from_stored(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// Resolves `script` inside this worktree. The file must exist
    /// (`FILE_NOT_FOUND`) and its real location, symlinks followed, must stay
    /// inside the worktree (`INVALID_PATH`).
    pub fn resolve(&self, script: &ScriptPath) -> Result<PathBuf, DomainError> {
        let root = self.0.canonicalize().map_err(|err| {
            DomainError::invalid_path(self.0.display().to_string(), format!("the worktree is gone ({err})"))
        })?;
        let joined = root.join(script.as_path());
        let real = match joined.canonicalize() {
            Ok(real) => real,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                // A dangling symlink that points outside is an escape, not a miss.
                if let Ok(target) = std::fs::read_link(&joined) {
                    let target = joined.parent().unwrap_or(&root).join(target);
                    if !lexically_inside(&root, &target) {
                        return Err(DomainError::invalid_path(
                            script.as_str(),
                            "the path is a symlink that leads outside the worktree",
                        ));
                    }
                }
                return Err(DomainError::FileNotFound { path: script.as_str().to_owned() });
            }
            Err(err) => {
                return Err(DomainError::invalid_path(script.as_str(), format!("cannot resolve the path ({err})")))
            }
        };
        if !real.starts_with(&root) {
            return Err(DomainError::invalid_path(
                script.as_str(),
                "the path resolves (through a symlink) outside the worktree",
            ));
        }
        if !real.is_file() {
            return Err(DomainError::invalid_path(script.as_str(), "the path is not a regular file"));
        }
        Ok(real)
    }
}

impl fmt::Display for WorktreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

/// Whether `candidate`, with `.` and `..` folded lexically, stays under `root`.
fn lexically_inside(root: &Path, candidate: &Path) -> bool {
    let mut parts: Vec<Component> = Vec::new();
    for c in candidate.components() {
        match c {
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir => {}
            other => parts.push(other),
        }
    }
    parts.iter().collect::<PathBuf>().starts_with(root)
}

/// A path relative to a session worktree: not empty, not absolute, no `..`
/// component, no NUL byte, no backslash. `./` components are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScriptPath(String);

impl ScriptPath {
    pub const MAX_LEN: usize = 4096;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.trim().is_empty() {
            return Err(DomainError::validation("path", "path is required"));
        }
        if raw.len() > Self::MAX_LEN {
            let head: String = raw.chars().take(64).collect();
            return Err(DomainError::invalid_path(head, "the path is too long"));
        }
        if raw.contains('\0') {
            return Err(DomainError::invalid_path(raw, "the path contains a NUL byte"));
        }
        if raw.contains('\\') {
            return Err(DomainError::invalid_path(raw, "use '/' as the separator; '\\' is not allowed"));
        }
        let path = Path::new(raw);
        if path.is_absolute() || raw.starts_with('~') {
            return Err(DomainError::invalid_path(raw, "the path must be relative to the worktree"));
        }
        let mut kept = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => kept.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => return Err(DomainError::invalid_path(raw, "'..' would leave the worktree")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(DomainError::invalid_path(raw, "the path must be relative to the worktree"))
                }
            }
        }
        if kept.is_empty() {
            return Err(DomainError::invalid_path(raw, "the path names no file"));
        }
        Ok(Self(kept.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl fmt::Display for ScriptPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `path` with `.` and `..` applied, without touching the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// System directories no worktree may be, or lie in, whatever the roots.
pub const SYSTEM_DIRS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/boot",
    "/run",
    "/var/lib",
    "/var/log",
    "/var/cache",
    "/var/spool",
    "/var/mail",
    "/var/run",
];

/// Where worktrees may be: inside one of the configured roots, never `/`,
/// a system directory or a path through `/proc`, and never a directory of
/// the daemon's own (its data, its cache, its database) nor one that holds
/// one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreePolicy {
    roots: Vec<PathBuf>,
    reserved: Vec<PathBuf>,
}

impl WorktreePolicy {
    /// `roots` must exist (they are stored canonical); `reserved` are the
    /// daemon's own files and directories, canonicalised when they exist.
    pub fn new(roots: &[PathBuf], reserved: &[PathBuf]) -> Result<Self, String> {
        if roots.is_empty() {
            return Err("at least one worktree root is needed".into());
        }
        let roots = roots
            .iter()
            .map(|root| {
                let canonical = root
                    .canonicalize()
                    .map_err(|err| format!("worktree root {} is not an existing directory ({err})", root.display()))?;
                if !canonical.is_dir() {
                    return Err(format!("worktree root {} is not a directory", root.display()));
                }
                Ok(canonical)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let reserved = reserved.iter().map(|path| path.canonicalize().unwrap_or_else(|_| path.clone())).collect();
        Ok(Self { roots, reserved })
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn roots_text(&self) -> String {
        self.roots.iter().map(|root| root.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// `INVALID_PATH` unless `worktree` (given as `raw`) may be a worktree.
    pub fn check(&self, raw: &str, worktree: &WorktreePath) -> Result<(), DomainError> {
        let path = worktree.as_path();
        let refuse = |reason: String| Err(DomainError::invalid_path(raw, reason));
        if lexical(Path::new(raw)).starts_with("/proc") || path.starts_with("/proc") {
            return refuse("a worktree cannot be a path through /proc".into());
        }
        if path == Path::new("/") {
            return refuse("a worktree cannot be the root directory".into());
        }
        if let Some(system) =
            SYSTEM_DIRS.iter().map(Path::new).find(|dir| path.starts_with(dir) || dir.starts_with(path))
        {
            return refuse(format!("a worktree cannot be or hold the system directory {}", system.display()));
        }
        if let Some(own) = self.reserved.iter().find(|own| path.starts_with(own) || own.starts_with(path)) {
            return refuse(format!("a worktree cannot be or hold the daemon's own {}", own.display()));
        }
        if !self.roots.iter().any(|root| path.starts_with(root)) {
            return refuse(format!(
                "the worktree is outside the worktree roots ({}); the daemon's --worktree-root sets them",
                self.roots_text()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worktrees_stay_inside_the_roots_and_out_of_system_and_daemon_directories() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("inner")).unwrap();
        std::fs::create_dir_all(root.path().join("project/sub")).unwrap();
        let policy = WorktreePolicy::new(&[root.path().to_path_buf()], std::slice::from_ref(&data)).unwrap();
        let check = |raw: &str| {
            let parsed = WorktreePath::parse(raw).map_err(|err| err.to_string())?;
            policy.check(raw, &parsed).map_err(|err| err.to_string())
        };
        let project = root.path().join("project/sub");
        assert_eq!(check(project.to_str().unwrap()), Ok(()));
        let outside = tempfile::tempdir().unwrap();
        let err = check(outside.path().to_str().unwrap()).unwrap_err();
        assert!(err.contains("outside the worktree roots"), "{err}");
        assert!(err.contains(&policy.roots()[0].display().to_string()), "{err}");
        for raw in ["/", "/proc/self/root", "/proc/self/cwd", "/etc", "/usr/share", "/tmp/../proc/1/root"] {
            assert!(check(raw).is_err(), "{raw} was accepted");
        }
        assert!(check(data.to_str().unwrap()).unwrap_err().contains("daemon's own"));
        assert!(check(data.join("inner").to_str().unwrap()).unwrap_err().contains("daemon's own"));
        assert!(
            check(root.path().to_str().unwrap()).unwrap_err().contains("daemon's own"),
            "a root holding the data dir"
        );
    }

    #[test]
    fn a_root_must_exist() {
        assert!(WorktreePolicy::new(&[PathBuf::from("/no/such/root")], &[]).is_err());
        assert!(WorktreePolicy::new(&[], &[]).is_err());
    }

    fn worktree() -> (tempfile::TempDir, WorktreePath) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.js"), "1").unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/util.js"), "2").unwrap();
        let wt = WorktreePath::parse(dir.path().to_str().unwrap()).unwrap();
        (dir, wt)
    }

    #[test]
    fn script_paths_that_leave_the_worktree_are_refused() {
        for raw in [
            "/etc/passwd",
            "../x.js",
            "lib/../../x.js",
            "a/b/../../../x",
            "..",
            "./../x",
            "~/x.js",
            "a\\..\\x",
            "x\0.js",
            "/",
            ".",
            "./",
        ] {
            let err = ScriptPath::parse(raw).unwrap_err();
            assert_eq!(err.code(), "INVALID_PATH", "{raw:?}");
        }
    }

    #[test]
    fn safe_script_paths_are_normalised() {
        assert_eq!(ScriptPath::parse("./lib/util.js").unwrap().as_str(), "lib/util.js");
        assert_eq!(ScriptPath::parse("a//b.js").unwrap().as_str(), "a/b.js");
        assert_eq!(ScriptPath::parse("%2e%2e/x.js").unwrap().as_str(), "%2e%2e/x.js");
    }

    #[test]
    fn an_empty_script_path_is_a_validation_error() {
        assert_eq!(ScriptPath::parse("  ").unwrap_err().code(), "VALIDATION_ERROR");
    }

    #[test]
    fn worktrees_must_be_absolute_existing_directories() {
        let (dir, _) = worktree();
        assert_eq!(WorktreePath::parse("relative/dir").unwrap_err().code(), "INVALID_PATH");
        assert_eq!(WorktreePath::parse("/definitely/not/here").unwrap_err().code(), "INVALID_PATH");
        let file = dir.path().join("main.js");
        assert_eq!(WorktreePath::parse(file.to_str().unwrap()).unwrap_err().code(), "INVALID_PATH");
        assert_eq!(WorktreePath::parse("").unwrap_err().code(), "VALIDATION_ERROR");
    }

    #[test]
    fn files_inside_the_worktree_resolve() {
        let (dir, wt) = worktree();
        let real = wt.resolve(&ScriptPath::parse("lib/util.js").unwrap()).unwrap();
        assert_eq!(real, dir.path().canonicalize().unwrap().join("lib/util.js"));
    }

    #[test]
    fn missing_files_are_not_found() {
        let (_dir, wt) = worktree();
        let err = wt.resolve(&ScriptPath::parse("nope.js").unwrap()).unwrap_err();
        assert_eq!(err.code(), "FILE_NOT_FOUND");
    }

    #[test]
    fn symlinks_out_of_the_worktree_are_refused() {
        let (dir, wt) = worktree();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.js"), "3").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.js"), dir.path().join("link.js")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("outdir")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/far/away.js", dir.path().join("dangling.js")).unwrap();
        for raw in ["link.js", "outdir/secret.js", "dangling.js"] {
            let err = wt.resolve(&ScriptPath::parse(raw).unwrap()).unwrap_err();
            assert_eq!(err.code(), "INVALID_PATH", "{raw}");
        }
    }

    #[test]
    fn symlinks_that_stay_inside_are_followed() {
        let (dir, wt) = worktree();
        std::os::unix::fs::symlink(dir.path().join("lib/util.js"), dir.path().join("alias.js")).unwrap();
        assert!(wt.resolve(&ScriptPath::parse("alias.js").unwrap()).is_ok());
    }

    #[test]
    fn directories_are_not_scripts() {
        let (_dir, wt) = worktree();
        assert_eq!(wt.resolve(&ScriptPath::parse("lib").unwrap()).unwrap_err().code(), "INVALID_PATH");
    }
}
