//! What a template may configure: the native modules reachable with
//! `require(name)`, and the third-party libraries evaluated at session start.
//! The library cache's file naming lives here, once, for writer and reader.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A native module in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleInfo {
    pub name: &'static str,
    pub description: &'static str,
}

/// Native modules, opt-in per template.
pub const MODULES: [ModuleInfo; 3] = [
    ModuleInfo {
        name: "database",
        description: "SQLite from JavaScript: configure (a file inside the worktree or :memory:), query (rows as objects), exec, close.",
    },
    ModuleInfo {
        name: "exec",
        description: "Run an allowed external program (no shell) and get its exit code, stdout and stderr.",
    },
    ModuleInfo {
        name: "fs",
        description: "readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync — confined to the session worktree.",
    },
];

/// JavaScript built-ins: always present, never configurable as modules.
pub const BUILTINS: [&str; 8] = ["console", "math", "json", "date", "array", "string", "object", "promise"];

/// The name of a configurable native module.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModuleName(String);

impl ModuleName {
    /// Accepts only catalog modules. Built-ins (any case) and unknown names
    /// are `MODULE_NOT_ALLOWED`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::validation("name", "name is required"));
        }
        let allowed = || MODULES.iter().map(|m| m.name.to_owned()).collect::<Vec<_>>();
        if BUILTINS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(DomainError::ModuleNotAllowed {
                name: name.to_owned(),
                reason: "it is a JavaScript built-in, always available without configuration".into(),
                allowed: allowed(),
            });
        }
        match MODULES.iter().find(|m| m.name == name) {
            Some(m) => Ok(Self(m.name.to_owned())),
            None => Err(DomainError::ModuleNotAllowed {
                name: name.to_owned(),
                reason: format!("it is not a native module; choose one of {}", allowed().join(", ")),
                allowed: allowed(),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A third-party library in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryInfo {
    pub id: &'static str,
    pub version: &'static str,
    /// The global the library defines when evaluated.
    pub global: &'static str,
    pub description: &'static str,
    /// Where `libs download --from cdn` fetches it.
    pub cdn_url: &'static str,
    /// The file inside the npm package that `--from npm` extracts.
    pub npm_file: &'static str,
}

impl LibraryInfo {
    /// `<id>-<version>`, the name templates use.
    pub fn name(&self) -> String {
        format!("{}-{}", self.id, self.version)
    }

    /// The cache file name: `<id>-<version>.js`. Downloader and loader both
    /// call this; there is no other naming scheme.
    pub fn file_name(&self) -> String {
        format!("{}.js", self.name())
    }
}

pub const LIBRARIES: [LibraryInfo; 6] = [
    LibraryInfo {
        id: "lodash",
        version: "4.17.21",
        global: "_",
        description: "Utility functions for arrays, objects and strings.",
        cdn_url: "https://cdn.jsdelivr.net/npm/lodash@4.17.21/lodash.min.js",
        npm_file: "lodash.min.js",
    },
    LibraryInfo {
        id: "moment",
        version: "2.29.4",
        global: "moment",
        description: "Parse, validate, manipulate and format dates.",
        cdn_url: "https://cdn.jsdelivr.net/npm/moment@2.29.4/min/moment.min.js",
        npm_file: "min/moment.min.js",
    },
    LibraryInfo {
        id: "axios",
        version: "1.6.0",
        global: "axios",
        description: "Promise-based HTTP client (no network in sessions unless allowed).",
        cdn_url: "https://cdn.jsdelivr.net/npm/axios@1.6.0/dist/axios.min.js",
        npm_file: "dist/axios.min.js",
    },
    LibraryInfo {
        id: "ramda",
        version: "0.29.0",
        global: "R",
        description: "Practical functional programming.",
        cdn_url: "https://cdn.jsdelivr.net/npm/ramda@0.29.0/dist/ramda.min.js",
        npm_file: "dist/ramda.min.js",
    },
    LibraryInfo {
        id: "dayjs",
        version: "1.11.10",
        global: "dayjs",
        description: "Small date library with a moment-like API.",
        cdn_url: "https://cdn.jsdelivr.net/npm/dayjs@1.11.10/dayjs.min.js",
        npm_file: "dayjs.min.js",
    },
    LibraryInfo {
        id: "zustand",
        version: "4.4.7",
        global: "zustand",
        description: "Small state-management stores (vanilla build).",
        cdn_url: "https://cdn.jsdelivr.net/npm/zustand@4.4.7/umd/vanilla.production.js",
        npm_file: "umd/vanilla.production.js",
    },
];

/// A catalog library named `<id>-<version>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LibraryRef(String);

impl LibraryRef {
    /// Accepts only names of the catalog; anything else is
    /// `LIBRARY_NOT_AVAILABLE` with the list of names that exist.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::validation("name", "name is required"));
        }
        match LIBRARIES.iter().find(|l| l.name() == name) {
            Some(l) => Ok(Self(l.name())),
            None => Err(DomainError::LibraryNotAvailable {
                name: name.to_owned(),
                available: LIBRARIES.iter().map(LibraryInfo::name).collect(),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The catalog entry; always present because `parse` checked it.
    pub fn info(&self) -> &'static LibraryInfo {
        LIBRARIES.iter().find(|l| l.name() == self.0).expect("a LibraryRef is only built from a catalog name")
    }
}

impl fmt::Display for LibraryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_in_any_case_are_refused_as_modules() {
        for name in ["json", "JSON", "Console", "math", "promise"] {
            assert_eq!(ModuleName::parse(name).unwrap_err().code(), "MODULE_NOT_ALLOWED", "{name}");
        }
    }

    #[test]
    fn unknown_modules_are_refused_and_catalog_modules_accepted() {
        assert_eq!(ModuleName::parse("net").unwrap_err().code(), "MODULE_NOT_ALLOWED");
        for m in MODULES {
            assert_eq!(ModuleName::parse(m.name).unwrap().as_str(), m.name);
        }
    }

    #[test]
    fn libraries_are_named_id_dash_version_and_cached_under_that_name() {
        let lodash = LibraryRef::parse("lodash-4.17.21").unwrap();
        assert_eq!(lodash.info().global, "_");
        assert_eq!(lodash.info().file_name(), "lodash-4.17.21.js");
    }

    #[test]
    fn libraries_outside_the_catalog_are_not_available() {
        for name in ["lodash", "lodash-4.17.20", "leftpad-1.0.0"] {
            let err = LibraryRef::parse(name).unwrap_err();
            assert_eq!(err.code(), "LIBRARY_NOT_AVAILABLE", "{name}");
        }
    }
}
