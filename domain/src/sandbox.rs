//! What a session's processes may touch, as data (SPEC §9): the worktree they
//! may write, the few host paths they may read, the environment a script may
//! hand to a program. The runtime adapter turns a [`SandboxPolicy`] into
//! kernel rules; nothing here enforces anything.

use std::path::{Path, PathBuf};

/// Host paths every session may read, and run programs from: what a
/// dynamically linked program such as `git` needs to start. Entries missing
/// on a machine are skipped. `/etc` is not in it: a session sees only these
/// few files of it, and a `passwd`/`group` naming its own user.
pub const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
];

/// Device files a session may use: the only ones it can see.
pub const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"];

/// Variables a script may pass to a program started by `exec` without the
/// template listing them.
pub const EXEC_ENV_DEFAULT_ALLOWED: &[&str] =
    &["LANG", "LC_ALL", "TZ", "TERM", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "CI"];

/// Variables that change which code a program loads or runs, or where it
/// reads configuration: refused even when a template lists them.
const EXEC_ENV_FORBIDDEN: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "SHELL",
    "IFS",
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "CDPATH",
    "GLOBIGNORE",
    "GCONV_PATH",
    "GETCONF_DIR",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RES_OPTIONS",
    "LOCALDOMAIN",
    "GLIBC_TUNABLES",
    "TZDIR",
    "TERMINFO",
    "TERMINFO_DIRS",
    "PAGER",
    "EDITOR",
    "VISUAL",
    "LESSOPEN",
    "LESSCLOSE",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "XDG_CONFIG_HOME",
    "XDG_CONFIG_DIRS",
    "XDG_DATA_DIRS",
];

/// Prefixes of variables refused like [`EXEC_ENV_FORBIDDEN`]: the dynamic
/// loader's, git's (config, hooks, exec paths), bash's exported functions,
/// malloc tunables and interpreters' module paths and options.
const EXEC_ENV_FORBIDDEN_PREFIXES: &[&str] = &[
    "LD_",
    "GIT_",
    "BASH_FUNC_",
    "MALLOC_",
    "PYTHON",
    "PERL",
    "RUBY",
    "NODE_",
    "NPM_",
    "LUA_",
    "TCL",
    "DYLD_",
    "SSL_",
];

/// Why a script may not set `name` for a program, or `None` when it may:
/// it must be a plain name, not forbidden, and either allowed by default
/// (`LC_*` too) or listed in `template_allowed`.
pub fn exec_env_refusal(name: &str, template_allowed: &[String]) -> Option<String> {
    let plain = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Some(format!("'{name}' is not a valid variable name"));
    }
    let upper = name.to_ascii_uppercase();
    if EXEC_ENV_FORBIDDEN.contains(&upper.as_str())
        || EXEC_ENV_FORBIDDEN_PREFIXES.iter().any(|prefix| upper.starts_with(prefix))
    {
        return Some(format!(
            "{name} changes which code a program loads or where it reads configuration, so a session may never \
             set it"
        ));
    }
    let allowed = EXEC_ENV_DEFAULT_ALLOWED.contains(&name)
        || name.starts_with("LC_")
        || template_allowed.iter().any(|allowed| allowed == name);
    if !allowed {
        return Some(format!(
            "{name} is not allowed; a program may get {} and LC_*, plus the names listed in the `env` array of the \
             template's `exec` module capability",
            EXEC_ENV_DEFAULT_ALLOWED.join(", ")
        ));
    }
    None
}

/// The filesystem a session's processes may reach. Everything else on the
/// host, including the daemon's own files, `/tmp`, `/home` and `/root`, is
/// absent for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Read, write, create and delete beneath it.
    pub worktree: PathBuf,
    /// Read (and execute) beneath each; only those that exist.
    pub read_only: Vec<PathBuf>,
    /// Device files to read and write.
    pub devices: Vec<PathBuf>,
}

impl SandboxPolicy {
    /// The policy of a session on `worktree`: the system paths, the library
    /// cache and the template's resolver roots that lie outside the worktree
    /// (relative roots are inside it already), read-only.
    pub fn for_session(worktree: &Path, library_cache: &Path, resolver_roots: &[String]) -> Self {
        let mut read_only: Vec<PathBuf> = SYSTEM_READ_ONLY.iter().map(PathBuf::from).collect();
        read_only.push(library_cache.to_path_buf());
        read_only.extend(
            resolver_roots.iter().map(PathBuf::from).filter(|root| root.is_absolute() && !root.starts_with(worktree)),
        );
        read_only.retain(|path| path.exists());
        read_only.dedup();
        Self { worktree: worktree.to_path_buf(), read_only, devices: DEVICES.iter().map(PathBuf::from).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_and_git_variables_are_refused_even_when_a_template_lists_them() {
        let listed: Vec<String> = ["PATH", "LD_PRELOAD", "GIT_CONFIG_GLOBAL", "git_dir"].map(String::from).to_vec();
        for name in ["PATH", "LD_PRELOAD", "GIT_CONFIG_GLOBAL", "git_dir", "BASH_FUNC_x%%", "PYTHONPATH"] {
            assert!(exec_env_refusal(name, &listed).is_some(), "{name} must be refused");
        }
    }

    #[test]
    fn ordinary_variables_need_the_default_list_or_the_template() {
        assert_eq!(exec_env_refusal("LANG", &[]), None);
        assert_eq!(exec_env_refusal("LC_TIME", &[]), None);
        assert!(exec_env_refusal("MY_FLAG", &[]).is_some());
        assert_eq!(exec_env_refusal("MY_FLAG", &["MY_FLAG".to_owned()]), None);
        assert!(exec_env_refusal("1X", &["1X".to_owned()]).is_some());
        assert!(exec_env_refusal("A=B", &[]).is_some());
    }

    #[test]
    fn a_policy_reads_only_paths_that_exist_and_roots_outside_the_worktree() {
        let worktree = std::env::temp_dir();
        let policy = SandboxPolicy::for_session(
            &worktree,
            Path::new("/nonexistent-cache"),
            &["lib".to_owned(), "/usr".to_owned(), worktree.join("x").display().to_string()],
        );
        assert!(policy.read_only.iter().all(|p| p.exists()));
        assert!(!policy.read_only.iter().any(|p| p.starts_with(&worktree)));
        assert!(policy.read_only.contains(&PathBuf::from("/usr")));
    }
}
