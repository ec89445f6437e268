//! Templates: saved runtime profiles, with their settings, capabilities and
//! startup files, and the value types that validate their fields.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::{LibraryRef, ModuleName};
use crate::ids::{CapabilityId, StartupFileId, TemplateId};
use crate::paths::ScriptPath;
use crate::{DomainError, Timestamp};

/// A template's name: trimmed, non-empty, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TemplateName(String);

impl TemplateName {
    pub const MAX_LEN: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::validation("name", "name is required and must not be blank"));
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(DomainError::validation("name", format!("name must be at most {} characters", Self::MAX_LEN)));
        }
        if name.chars().any(char::is_control) {
            return Err(DomainError::validation("name", "name must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The engine a template runs on; the set of engines is whatever runtime
/// adapters the daemon registered.
pub const DEFAULT_ENGINE: &str = "boa";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub id: TemplateId,
    pub name: TemplateName,
    pub engine: String,
    pub is_active: bool,
    pub exposed_modules: Vec<ModuleName>,
    pub libraries: Vec<LibraryRef>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A template with everything that hangs off it, as the detail view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateDetail {
    pub template: Template,
    pub settings: Settings,
    pub capabilities: Vec<Capability>,
    pub startup_files: Vec<StartupFile>,
}

/// Resource limits, enforced while code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub cpu_ms: u64,
    pub wall_ms: u64,
    pub mem_mb: u64,
    pub max_events: u64,
    pub max_output_kb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { cpu_ms: 5_000, wall_ms: 30_000, mem_mb: 128, max_events: 1_000, max_output_kb: 512 }
    }
}

/// How modules and files are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResolverSettings {
    pub roots: Vec<String>,
    pub extensions: Vec<String>,
    pub allow_absolute_repo_imports: bool,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        Self { roots: Vec::new(), extensions: vec![".js".into(), ".mjs".into()], allow_absolute_repo_imports: false }
    }
}

/// Switches of the JavaScript runtime itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSwitches {
    pub esm: bool,
    pub strict: bool,
    pub console: bool,
    /// Keep a forked copy of the session before each execution, so that a
    /// cancel, a hard limit or a crash rolls the session back instead of
    /// losing it (SPEC §10).
    pub checkpoints: bool,
}

impl Default for RuntimeSwitches {
    fn default() -> Self {
        Self { esm: false, strict: false, console: true, checkpoints: true }
    }
}

/// Every template has exactly one `Settings`; missing fields take defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub limits: Limits,
    pub resolver: ResolverSettings,
    pub runtime: RuntimeSwitches,
}

/// Upper bounds that keep a single template from asking for absurd resources.
pub mod bounds {
    pub const MAX_CPU_MS: u64 = 24 * 60 * 60 * 1000;
    pub const MAX_WALL_MS: u64 = 24 * 60 * 60 * 1000;
    pub const MAX_MEM_MB: u64 = 64 * 1024;
    pub const MAX_EVENTS: u64 = 1_000_000;
    pub const MAX_OUTPUT_KB: u64 = 1024 * 1024;
}

impl Settings {
    /// Checks every field; the first problem is reported with its field path.
    pub fn validate(&self) -> Result<(), DomainError> {
        let l = &self.limits;
        for (field, value, max) in [
            ("limits.cpu_ms", l.cpu_ms, bounds::MAX_CPU_MS),
            ("limits.wall_ms", l.wall_ms, bounds::MAX_WALL_MS),
            ("limits.mem_mb", l.mem_mb, bounds::MAX_MEM_MB),
            ("limits.max_events", l.max_events, bounds::MAX_EVENTS),
            ("limits.max_output_kb", l.max_output_kb, bounds::MAX_OUTPUT_KB),
        ] {
            if value == 0 || value > max {
                return Err(DomainError::validation(
                    field,
                    format!("{field} must be between 1 and {max}, got {value}"),
                ));
            }
        }
        for ext in &self.resolver.extensions {
            if !ext.starts_with('.') || ext.len() < 2 || ext.contains(['/', '\\', '\0']) {
                return Err(DomainError::validation(
                    "resolver.extensions",
                    format!("extension {ext:?} must look like \".js\""),
                ));
            }
        }
        for root in &self.resolver.roots {
            ScriptPath::parse(root).map_err(|err| {
                DomainError::invalid_path(root.as_str(), format!("resolver.roots: root {root:?} is refused: {err}"))
            })?;
        }
        Ok(())
    }
}

/// What a capability describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapabilityKind {
    Module,
    Global,
    Fs,
    Net,
    Env,
}

impl CapabilityKind {
    pub const ALL: [CapabilityKind; 5] = [Self::Module, Self::Global, Self::Fs, Self::Net, Self::Env];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Module => "module",
            Self::Global => "global",
            Self::Fs => "fs",
            Self::Net => "net",
            Self::Env => "env",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw).ok_or_else(|| {
            DomainError::validation("kind", format!("kind must be one of module, global, fs, net, env; got {raw:?}"))
        })
    }
}

/// Descriptive metadata of a template, read at session setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    pub id: CapabilityId,
    pub template_id: TemplateId,
    pub kind: CapabilityKind,
    pub name: String,
    pub enabled: bool,
    pub config: Map<String, Value>,
    pub created_at: Timestamp,
}

/// How a startup file is run. `eval` is the only mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartupMode {
    Eval,
}

impl StartupMode {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw {
            "eval" => Ok(Self::Eval),
            other => Err(DomainError::StartupModeUnsupported { mode: other.to_owned() }),
        }
    }

    pub fn as_str(&self) -> &'static str {
        "eval"
    }
}

/// A file run at session start, relative to the session worktree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartupFile {
    pub id: StartupFileId,
    pub template_id: TemplateId,
    pub path: ScriptPath,
    pub order_index: i64,
    pub mode: StartupMode,
    pub created_at: Timestamp,
}

/// What it takes to create a template, parsed. The engine stays a name: only
/// the template service knows which engines are registered. `settings` are
/// checked, and the lists sorted and deduplicated, by the service too.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSpec {
    pub name: TemplateName,
    /// `None`: [`DEFAULT_ENGINE`].
    pub engine: Option<String>,
    /// `None`: [`Settings::default`].
    pub settings: Option<Settings>,
    pub modules: Vec<ModuleName>,
    /// In load order.
    pub libraries: Vec<LibraryRef>,
}

/// A capability's name: trimmed, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityName(String);

impl CapabilityName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::validation("name", "name is required and must not be blank"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CapabilityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What it takes to add a capability to a template, parsed. A `fetch`
/// config is checked by the template service, however the spec was built.
#[derive(Debug, Clone, PartialEq)]
pub struct CapabilitySpec {
    pub kind: CapabilityKind,
    pub name: CapabilityName,
    pub enabled: bool,
    pub config: Map<String, Value>,
}

impl CapabilitySpec {
    /// Parses the name; a capability is enabled and has an empty config
    /// unless the caller says otherwise.
    pub fn parse(
        kind: CapabilityKind,
        name: &str,
        enabled: Option<bool>,
        config: Option<Map<String, Value>>,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            kind,
            name: CapabilityName::parse(name)?,
            enabled: enabled.unwrap_or(true),
            config: config.unwrap_or_default(),
        })
    }
}

/// What it takes to add a startup file to a template, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupFileSpec {
    pub path: ScriptPath,
    pub order_index: i64,
    pub mode: StartupMode,
}

impl StartupFileSpec {
    /// Parses the path, then the mode (trimmed); a file runs at order 0, in
    /// `eval` mode, unless the caller says otherwise.
    pub fn parse(path: &str, order_index: Option<i64>, mode: Option<&str>) -> Result<Self, DomainError> {
        Ok(Self {
            path: ScriptPath::parse(path)?,
            order_index: order_index.unwrap_or(0),
            mode: mode.map_or(Ok(StartupMode::Eval), |mode| StartupMode::parse(mode.trim()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_match_the_spec_table() {
        let s = Settings::default();
        assert_eq!(
            (s.limits.cpu_ms, s.limits.wall_ms, s.limits.mem_mb, s.limits.max_events, s.limits.max_output_kb),
            (5000, 30000, 128, 1000, 512)
        );
        assert!(s.resolver.roots.is_empty());
        assert_eq!(s.resolver.extensions, [".js", ".mjs"]);
        assert!(!s.resolver.allow_absolute_repo_imports);
        assert_eq!((s.runtime.esm, s.runtime.strict, s.runtime.console), (false, false, true));
    }

    #[test]
    fn partial_settings_take_defaults_for_missing_fields() {
        let s: Settings = serde_json::from_str(r#"{"limits":{"wall_ms":10}}"#).unwrap();
        assert_eq!(s.limits.wall_ms, 10);
        assert_eq!(s.limits.cpu_ms, 5000);
        assert!(s.runtime.console);
    }

    #[test]
    fn settings_refuse_unknown_fields() {
        assert!(serde_json::from_str::<Settings>(r#"{"limits":{"wall":10}}"#).is_err());
    }

    #[test]
    fn zero_or_huge_limits_are_validation_errors_naming_the_field() {
        for (json, field) in [
            (r#"{"limits":{"cpu_ms":0}}"#, "limits.cpu_ms"),
            (r#"{"limits":{"wall_ms":0}}"#, "limits.wall_ms"),
            (r#"{"limits":{"mem_mb":999999999}}"#, "limits.mem_mb"),
            (r#"{"limits":{"max_events":0}}"#, "limits.max_events"),
            (r#"{"limits":{"max_output_kb":0}}"#, "limits.max_output_kb"),
            (r#"{"resolver":{"extensions":["js"]}}"#, "resolver.extensions"),
        ] {
            let s: Settings = serde_json::from_str(json).unwrap();
            match s.validate() {
                Err(DomainError::Validation { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: expected a validation error, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_resolver_root_that_leaves_the_worktree_is_an_invalid_path() {
        for root in ["/abs", "../up", ""] {
            let s: Settings = serde_json::from_value(serde_json::json!({ "resolver": { "roots": [root] } })).unwrap();
            match s.validate() {
                Err(DomainError::InvalidPath { reason, .. }) => assert!(reason.contains("resolver.roots"), "{reason}"),
                other => panic!("{root:?}: expected INVALID_PATH, got {other:?}"),
            }
        }
    }

    #[test]
    fn blank_names_are_refused_and_names_are_trimmed() {
        assert!(TemplateName::parse("   ").is_err());
        assert!(TemplateName::parse("a\u{7}b").is_err());
        assert!(TemplateName::parse(&"x".repeat(201)).is_err());
        assert_eq!(TemplateName::parse("  demo ").unwrap().as_str(), "demo");
    }

    #[test]
    fn only_eval_is_a_startup_mode() {
        assert_eq!(StartupMode::parse("eval").unwrap(), StartupMode::Eval);
        assert_eq!(StartupMode::parse("module").unwrap_err().code(), "STARTUP_MODE_UNSUPPORTED");
    }

    #[test]
    fn a_startup_file_spec_needs_a_relative_path_and_the_eval_mode() {
        let spec = StartupFileSpec::parse("./lib/init.js", None, None).unwrap();
        assert_eq!((spec.path.as_str(), spec.order_index, spec.mode), ("lib/init.js", 0, StartupMode::Eval));
        assert_eq!(StartupFileSpec::parse("init.js", Some(-3), Some(" eval ")).unwrap().order_index, -3);
        for (label, path, mode, code) in [
            ("a path that leaves the worktree", "../init.js", None, "INVALID_PATH"),
            ("an ES module", "init.js", Some("module"), "STARTUP_MODE_UNSUPPORTED"),
            ("both: the path is checked first", "/init.js", Some("module"), "INVALID_PATH"),
        ] {
            assert_eq!(StartupFileSpec::parse(path, None, mode).unwrap_err().code(), code, "{label}");
        }
    }

    #[test]
    fn a_capability_spec_needs_a_name_and_is_enabled_unless_told_otherwise() {
        let spec = CapabilitySpec::parse(CapabilityKind::Fs, " read ", None, None).unwrap();
        assert_eq!((spec.name.as_str(), spec.enabled, spec.config.len()), ("read", true, 0));
        assert!(!CapabilitySpec::parse(CapabilityKind::Fs, "read", Some(false), None).unwrap().enabled);
        let err = CapabilitySpec::parse(CapabilityKind::Fs, " ", None, None).unwrap_err();
        assert_eq!((err.code(), err.details()["field"].as_str()), ("VALIDATION_ERROR", Some("name")));
    }

    #[test]
    fn capability_kinds_parse_from_their_names() {
        for kind in CapabilityKind::ALL {
            assert_eq!(CapabilityKind::parse(kind.as_str()).unwrap(), kind);
        }
        assert_eq!(CapabilityKind::parse("disk").unwrap_err().code(), "VALIDATION_ERROR");
    }
}
