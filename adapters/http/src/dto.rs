//! Wire shapes of the REST API (`…Body` in, `…View` out) and their
//! conversions from and to domain types. Domain types stay free of poem.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use vm_domain::catalog::{LibraryRef, ModuleInfo, ModuleName};
use vm_domain::event::Event;
use vm_domain::execution::{Execution, ExecutionKind, ExecutionStatus};
use vm_domain::ids::NodeId;
use vm_domain::node::{Node, NodeStatus};
use vm_domain::services::{Executed, LibraryEntry};
use vm_domain::session::{Label, Session, SessionSpec, SessionStatus};
use vm_domain::template::{
    Capability, CapabilityKind, CapabilitySpec, Limits, ResolverSettings, RuntimeSwitches, Settings, StartupFile,
    StartupFileSpec, Template, TemplateDetail, TemplateName, TemplateSpec,
};
use vm_domain::token::{Principal, Scope, Token, TokenName, TokenSpec, TokenStatus};
use vm_domain::DomainError;

// ---------------------------------------------------------------- settings

/// Resource limits, enforced while code runs.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct LimitsView {
    /// CPU time per execution, in milliseconds.
    pub cpu_ms: u64,
    /// Wall-clock time per execution, in milliseconds.
    pub wall_ms: u64,
    /// Memory of the session's runtime, in MiB.
    pub mem_mb: u64,
    /// Events one execution may record.
    pub max_events: u64,
    /// Output one execution may produce, in KiB.
    pub max_output_kb: u64,
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct ResolverView {
    pub roots: Vec<String>,
    pub extensions: Vec<String>,
    pub allow_absolute_repo_imports: bool,
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct RuntimeSwitchesView {
    pub esm: bool,
    pub strict: bool,
    pub console: bool,
    /// Whether a cancel, a hard limit or a crash rolls the session back to
    /// its state before the execution (a forked copy is kept before each).
    pub checkpoints: bool,
}

/// A template's settings.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct SettingsView {
    pub limits: LimitsView,
    pub resolver: ResolverView,
    pub runtime: RuntimeSwitchesView,
}

impl From<Settings> for SettingsView {
    fn from(s: Settings) -> Self {
        Self {
            limits: LimitsView {
                cpu_ms: s.limits.cpu_ms,
                wall_ms: s.limits.wall_ms,
                mem_mb: s.limits.mem_mb,
                max_events: s.limits.max_events,
                max_output_kb: s.limits.max_output_kb,
            },
            resolver: ResolverView {
                roots: s.resolver.roots,
                extensions: s.resolver.extensions,
                allow_absolute_repo_imports: s.resolver.allow_absolute_repo_imports,
            },
            runtime: RuntimeSwitchesView {
                esm: s.runtime.esm,
                strict: s.runtime.strict,
                console: s.runtime.console,
                checkpoints: s.runtime.checkpoints,
            },
        }
    }
}

/// Limits to set; a field left out takes its default.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// Default 5000; at most a day.
    #[oai(validator(minimum(value = "1"), maximum(value = "86400000")))]
    pub cpu_ms: Option<u64>,
    /// Default 30000; at most a day.
    #[oai(validator(minimum(value = "1"), maximum(value = "86400000")))]
    pub wall_ms: Option<u64>,
    /// Default 128; at most 64 GiB.
    #[oai(validator(minimum(value = "1"), maximum(value = "65536")))]
    pub mem_mb: Option<u64>,
    /// Default 1000.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    pub max_events: Option<u64>,
    /// Default 512; at most 1 GiB.
    #[oai(validator(minimum(value = "1"), maximum(value = "1048576")))]
    pub max_output_kb: Option<u64>,
}

#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct ResolverBody {
    /// Default `[]`. Directories relative to the worktree that imports may also resolve in; one
    /// that is absolute or leaves the worktree is refused with `INVALID_PATH`.
    pub roots: Option<Vec<String>>,
    /// Default `[".js", ".mjs"]`: a dot, then at least one character, none of them `/` or `\`.
    #[oai(validator(pattern = r"^\.[^/\\\u0000]+$"))]
    pub extensions: Option<Vec<String>>,
    /// Default false.
    pub allow_absolute_repo_imports: Option<bool>,
}

#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSwitchesBody {
    /// Default false.
    pub esm: Option<bool>,
    /// Default false.
    pub strict: Option<bool>,
    /// Default true.
    pub console: Option<bool>,
    /// Default true: keep a checkpoint before each execution, so that a
    /// cancel, a hard limit or a crash rolls the session back.
    pub checkpoints: Option<bool>,
}

/// Settings to store. Replaces all settings: every field left out takes its
/// default.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub limits: Option<LimitsBody>,
    pub resolver: Option<ResolverBody>,
    pub runtime: Option<RuntimeSwitchesBody>,
}

impl poem_openapi::types::Example for SettingsBody {
    fn example() -> Self {
        Self {
            limits: Some(LimitsBody { wall_ms: Some(10_000), mem_mb: Some(64), ..LimitsBody::default() }),
            resolver: None,
            runtime: Some(RuntimeSwitchesBody { esm: Some(true), ..RuntimeSwitchesBody::default() }),
        }
    }
}

impl From<SettingsBody> for Settings {
    fn from(body: SettingsBody) -> Self {
        let (l, r, s) = (Limits::default(), ResolverSettings::default(), RuntimeSwitches::default());
        let limits = body.limits.unwrap_or_default();
        let resolver = body.resolver.unwrap_or_default();
        let runtime = body.runtime.unwrap_or_default();
        Settings {
            limits: Limits {
                cpu_ms: limits.cpu_ms.unwrap_or(l.cpu_ms),
                wall_ms: limits.wall_ms.unwrap_or(l.wall_ms),
                mem_mb: limits.mem_mb.unwrap_or(l.mem_mb),
                max_events: limits.max_events.unwrap_or(l.max_events),
                max_output_kb: limits.max_output_kb.unwrap_or(l.max_output_kb),
            },
            resolver: ResolverSettings {
                roots: resolver.roots.unwrap_or(r.roots),
                extensions: resolver.extensions.unwrap_or(r.extensions),
                allow_absolute_repo_imports: resolver
                    .allow_absolute_repo_imports
                    .unwrap_or(r.allow_absolute_repo_imports),
            },
            runtime: RuntimeSwitches {
                esm: runtime.esm.unwrap_or(s.esm),
                strict: runtime.strict.unwrap_or(s.strict),
                console: runtime.console.unwrap_or(s.console),
                checkpoints: runtime.checkpoints.unwrap_or(s.checkpoints),
            },
        }
    }
}

// ---------------------------------------------------------------- templates

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateBody {
    /// Required: 1 to 200 characters once leading and trailing spaces are trimmed, none of them a
    /// control character.
    #[oai(validator(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\u0000-\u001f\u007f-\u009f]{0,198}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    ))]
    pub name: String,
    /// Default `boa`, the one engine this daemon runs.
    pub engine: Option<String>,
    /// Settings; every field left out takes its default.
    pub settings: Option<SettingsBody>,
    /// Native modules to enable (see `GET /catalog/modules`).
    pub exposed_modules: Option<Vec<String>>,
    /// Libraries to load, in order (see `GET /catalog/libraries`).
    pub libraries: Option<Vec<String>>,
}

impl poem_openapi::types::Example for CreateTemplateBody {
    fn example() -> Self {
        Self {
            name: "agent-sandbox".into(),
            engine: Some("boa".into()),
            settings: Some(SettingsBody::example()),
            exposed_modules: Some(vec!["fs".into()]),
            libraries: Some(vec!["lodash-4.17.21".into()]),
        }
    }
}

impl TryFrom<CreateTemplateBody> for TemplateSpec {
    type Error = DomainError;

    fn try_from(body: CreateTemplateBody) -> Result<Self, DomainError> {
        Ok(TemplateSpec {
            name: TemplateName::parse(&body.name)?,
            engine: body.engine,
            settings: body.settings.map(Settings::from),
            modules: body.exposed_modules.iter().flatten().map(|m| ModuleName::parse(m)).collect::<Result<_, _>>()?,
            libraries: body.libraries.iter().flatten().map(|l| LibraryRef::parse(l)).collect::<Result<_, _>>()?,
        })
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct TemplateView {
    pub id: Uuid,
    pub name: String,
    pub engine: String,
    pub is_active: bool,
    pub exposed_modules: Vec<String>,
    /// In load order.
    pub libraries: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Template> for TemplateView {
    fn from(t: Template) -> Self {
        Self {
            id: t.id.as_uuid(),
            name: t.name.to_string(),
            engine: t.engine,
            is_active: t.is_active,
            exposed_modules: t.exposed_modules.iter().map(|m| m.to_string()).collect(),
            libraries: t.libraries.iter().map(|l| l.to_string()).collect(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A template with its settings, capabilities and startup files.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct TemplateDetailView {
    #[oai(flatten)]
    #[serde(flatten)]
    pub template: TemplateView,
    pub settings: SettingsView,
    pub capabilities: Vec<CapabilityView>,
    /// Sorted by `order_index`.
    pub startup_files: Vec<StartupFileView>,
}

impl From<TemplateDetail> for TemplateDetailView {
    fn from(d: TemplateDetail) -> Self {
        Self {
            template: d.template.into(),
            settings: d.settings.into(),
            capabilities: d.capabilities.into_iter().map(Into::into).collect(),
            startup_files: d.startup_files.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a capability describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum CapabilityKindView {
    Module,
    Global,
    Fs,
    Net,
    Env,
}

impl CapabilityKindView {
    pub fn as_str(self) -> &'static str {
        CapabilityKind::from(self).as_str()
    }
}

impl From<CapabilityKindView> for CapabilityKind {
    fn from(k: CapabilityKindView) -> Self {
        match k {
            CapabilityKindView::Module => Self::Module,
            CapabilityKindView::Global => Self::Global,
            CapabilityKindView::Fs => Self::Fs,
            CapabilityKindView::Net => Self::Net,
            CapabilityKindView::Env => Self::Env,
        }
    }
}

impl From<CapabilityKind> for CapabilityKindView {
    fn from(k: CapabilityKind) -> Self {
        match k {
            CapabilityKind::Module => Self::Module,
            CapabilityKind::Global => Self::Global,
            CapabilityKind::Fs => Self::Fs,
            CapabilityKind::Net => Self::Net,
            CapabilityKind::Env => Self::Env,
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct CreateCapabilityBody {
    pub kind: CapabilityKindView,
    /// Not blank; e.g. `fetch` (kind `net`) or a module name (kind `module`).
    #[oai(validator(pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"))]
    pub name: String,
    /// Default true.
    pub enabled: Option<bool>,
    /// Any JSON object; e.g. `{"allow": ["git"]}` for the exec module. A `net` capability named
    /// `fetch` takes `{"allow": [...], "max_fetch_kb": N}` and nothing else: each entry is `host`,
    /// `host:port`, `*.domain`, `*.domain:port`, an IPv4 address or a bracketed IPv6 address (with
    /// an optional port); `max_fetch_kb` is a positive integer (default 10240). A config that breaks
    /// these rules is refused with 422 `INVALID_VALUE`, `details.field` naming it (`config.allow[1]`).
    pub config: Option<BTreeMap<String, Value>>,
}

impl poem_openapi::types::Example for CreateCapabilityBody {
    fn example() -> Self {
        Self {
            kind: CapabilityKindView::Net,
            name: "fetch".into(),
            enabled: Some(true),
            config: Some(BTreeMap::from([
                ("allow".to_owned(), serde_json::json!(["api.example.com", "*.example.org:8443"])),
                ("max_fetch_kb".to_owned(), serde_json::json!(1024)),
            ])),
        }
    }
}

impl TryFrom<CreateCapabilityBody> for CapabilitySpec {
    type Error = DomainError;

    fn try_from(body: CreateCapabilityBody) -> Result<Self, DomainError> {
        let config = body.config.map(|c| c.into_iter().collect());
        CapabilitySpec::parse(body.kind.into(), &body.name, body.enabled, config)
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct CapabilityView {
    pub id: Uuid,
    pub template_id: Uuid,
    pub kind: CapabilityKindView,
    pub name: String,
    pub enabled: bool,
    pub config: BTreeMap<String, Value>,
    pub created_at: DateTime<Utc>,
}

impl From<Capability> for CapabilityView {
    fn from(c: Capability) -> Self {
        Self {
            id: c.id.as_uuid(),
            template_id: c.template_id.as_uuid(),
            kind: c.kind.into(),
            name: c.name,
            enabled: c.enabled,
            config: c.config.into_iter().collect(),
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct CreateStartupFileBody {
    /// Relative to the session worktree; not blank. One that is absolute or leaves the worktree is
    /// refused with `INVALID_PATH`.
    #[oai(validator(pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"))]
    pub path: String,
    /// Default 0; files run in ascending order.
    pub order_index: Option<i64>,
    /// Only `eval` is supported (the default).
    pub mode: Option<String>,
}

impl poem_openapi::types::Example for CreateStartupFileBody {
    fn example() -> Self {
        Self { path: "setup.js".into(), order_index: Some(0), mode: Some("eval".into()) }
    }
}

impl TryFrom<CreateStartupFileBody> for StartupFileSpec {
    type Error = DomainError;

    fn try_from(body: CreateStartupFileBody) -> Result<Self, DomainError> {
        StartupFileSpec::parse(&body.path, body.order_index, body.mode.as_deref())
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct StartupFileView {
    pub id: Uuid,
    pub template_id: Uuid,
    pub path: String,
    pub order_index: i64,
    pub mode: String,
    pub created_at: DateTime<Utc>,
}

impl From<StartupFile> for StartupFileView {
    fn from(f: StartupFile) -> Self {
        Self {
            id: f.id.as_uuid(),
            template_id: f.template_id.as_uuid(),
            path: f.path.to_string(),
            order_index: f.order_index,
            mode: f.mode.as_str().to_owned(),
            created_at: f.created_at,
        }
    }
}

/// A catalog module to enable (see `GET /catalog/modules`).
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct ModuleNameBody {
    pub name: String,
}

impl poem_openapi::types::Example for ModuleNameBody {
    fn example() -> Self {
        Self { name: "fs".into() }
    }
}

/// A catalog library to load (see `GET /catalog/libraries`).
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct LibraryNameBody {
    pub name: String,
}

impl poem_openapi::types::Example for LibraryNameBody {
    fn example() -> Self {
        Self { name: "lodash-4.17.21".into() }
    }
}

// ---------------------------------------------------------------- catalog

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct CatalogModuleView {
    pub name: String,
    pub description: String,
}

impl From<&ModuleInfo> for CatalogModuleView {
    fn from(m: &ModuleInfo) -> Self {
        Self { name: m.name.to_owned(), description: m.description.to_owned() }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct CatalogLibraryView {
    /// `<id>-<version>`, the name templates use.
    pub name: String,
    pub id: String,
    pub version: String,
    /// The global the library defines.
    pub global: String,
    pub description: String,
    /// Whether the file is in the daemon's library cache.
    pub cached: bool,
}

impl From<LibraryEntry> for CatalogLibraryView {
    fn from(e: LibraryEntry) -> Self {
        Self {
            name: e.info.name(),
            id: e.info.id.to_owned(),
            version: e.info.version.to_owned(),
            global: e.info.global.to_owned(),
            description: e.info.description.to_owned(),
            cached: e.cached,
        }
    }
}

// ---------------------------------------------------------------- sessions

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum SessionStatusView {
    Starting,
    Ready,
    Crashed,
    Closed,
}

impl From<SessionStatusView> for SessionStatus {
    fn from(s: SessionStatusView) -> Self {
        match s {
            SessionStatusView::Starting => Self::Starting,
            SessionStatusView::Ready => Self::Ready,
            SessionStatusView::Crashed => Self::Crashed,
            SessionStatusView::Closed => Self::Closed,
        }
    }
}

impl From<SessionStatus> for SessionStatusView {
    fn from(s: SessionStatus) -> Self {
        match s {
            SessionStatus::Starting => Self::Starting,
            SessionStatus::Ready => Self::Ready,
            SessionStatus::Crashed => Self::Crashed,
            SessionStatus::Closed => Self::Closed,
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    pub template_id: Uuid,
    /// A label of your choice (e.g. the repository), 1 to 512 characters once trimmed, no control
    /// characters.
    #[oai(validator(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\u0000-\u001f\u007f-\u009f]{0,510}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    ))]
    pub workspace_id: String,
    /// A label of your choice (e.g. the commit the worktree is at), like `workspace_id`.
    #[oai(validator(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\u0000-\u001f\u007f-\u009f]{0,510}[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    ))]
    pub base_commit_oid: String,
    /// Absolute path of an existing directory under one of the daemon's worktree roots; any other
    /// is refused with `INVALID_PATH`.
    #[oai(validator(pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"))]
    pub worktree_path: String,
}

impl poem_openapi::types::Example for CreateSessionBody {
    fn example() -> Self {
        Self {
            template_id: Uuid::from_u128(0x6a62_4238_6e16_4003_83c9_0912_5e07_aecb),
            workspace_id: "my-repo".into(),
            base_commit_oid: "4b825dc642cb6eb9a060e54bf8d69288fbee4904".into(),
            worktree_path: "/home/me/src/my-repo".into(),
        }
    }
}

impl TryFrom<CreateSessionBody> for SessionSpec {
    type Error = DomainError;

    fn try_from(body: CreateSessionBody) -> Result<Self, DomainError> {
        Ok(SessionSpec {
            template_id: body.template_id.into(),
            workspace_id: Label::parse("workspace_id", &body.workspace_id)?,
            base_commit_oid: Label::parse("base_commit_oid", &body.base_commit_oid)?,
            worktree_path: body.worktree_path,
        })
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct SessionView {
    pub id: Uuid,
    pub template_id: Uuid,
    pub workspace_id: String,
    pub base_commit_oid: String,
    pub worktree_path: String,
    pub status: SessionStatusView,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The session this one was forked from (its heap started as a copy).
    pub forked_from: Option<Uuid>,
    /// The node that runs (or ran) the session's worker; null for sessions from before nodes.
    pub node_id: Option<Uuid>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.as_uuid(),
            template_id: s.template_id.as_uuid(),
            workspace_id: s.workspace_id.as_str().to_owned(),
            base_commit_oid: s.base_commit_oid.as_str().to_owned(),
            worktree_path: s.worktree_path.to_string(),
            status: s.status.into(),
            created_at: s.created_at,
            closed_at: s.closed_at,
            last_error: s.last_error,
            forked_from: s.forked_from.map(|id| id.as_uuid()),
            node_id: s.node_id.map(|id| id.as_uuid()),
        }
    }
}

// ---------------------------------------------------------------- executions

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct ReplBody {
    pub session_id: Uuid,
    /// JavaScript evaluated in the session's global scope; not blank.
    #[oai(validator(pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"))]
    pub input: String,
    /// Default true: answer when the execution has ended. False: answer at
    /// once with the `running` execution (202); follow its events.
    pub wait: Option<bool>,
}

impl poem_openapi::types::Example for ReplBody {
    fn example() -> Self {
        Self {
            session_id: Uuid::from_u128(0x9405_af64_6d1b_4309_a213_1d26_c686_f51a),
            input: "const answer = 6 * 7; answer".into(),
            wait: Some(true),
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct RunFileBody {
    pub session_id: Uuid,
    /// Relative to the session worktree; not blank. One that is absolute or leaves the worktree is
    /// refused with `INVALID_PATH`.
    #[oai(validator(pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"))]
    pub path: String,
    /// Reaches the script as the global `__ARGS__`.
    pub args: Option<BTreeMap<String, Value>>,
    /// Reaches the script as the global `__ENV__`. A name that is empty or holds `=` or a NUL is
    /// refused with `INVALID_VALUE`.
    pub env: Option<BTreeMap<String, String>>,
    /// Default true: answer when the execution has ended. False: answer at
    /// once with the `running` execution (202); follow its events.
    pub wait: Option<bool>,
}

impl poem_openapi::types::Example for RunFileBody {
    fn example() -> Self {
        Self {
            session_id: Uuid::from_u128(0x9405_af64_6d1b_4309_a213_1d26_c686_f51a),
            path: "scripts/report.js".into(),
            args: Some(BTreeMap::from([("limit".to_owned(), serde_json::json!(10))])),
            env: Some(BTreeMap::from([("MODE".to_owned(), "dry-run".to_owned())])),
            wait: Some(true),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ExecutionKindView {
    Repl,
    RunFile,
    Startup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatusView {
    Running,
    Ok,
    Error,
    Timeout,
    Cancelled,
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct MetricsView {
    pub duration_ms: u64,
    pub event_count: u64,
    pub output_bytes: u64,
}

/// Why an execution did not end `ok`.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct ExecutionErrorView {
    /// `EXCEPTION` (the code threw; `details` is empty), `CANCELLED`, `EXECUTION_TIMEOUT`,
    /// `MEMORY_LIMIT_EXCEEDED`, `OUTPUT_LIMIT_EXCEEDED`, `RUNTIME_CRASHED`.
    pub code: String,
    pub message: String,
    /// Facts about the ending, e.g. `execution_id`, `limit`, `rolled_back`, `runtime_lost`.
    pub details: BTreeMap<String, Value>,
}

impl ExecutionErrorView {
    /// The stored error object (`{code, message, details}`).
    fn from_stored(stored: Value) -> Self {
        let text = |key: &str| stored.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let details = match stored.get("details") {
            Some(Value::Object(details)) => details.clone().into_iter().collect(),
            _ => BTreeMap::new(),
        };
        Self { code: text("code"), message: text("message"), details }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct ExecutionView {
    pub id: Uuid,
    pub session_id: Uuid,
    pub kind: ExecutionKindView,
    pub input: Option<String>,
    pub path: Option<String>,
    pub args: BTreeMap<String, Value>,
    pub env: BTreeMap<String, String>,
    pub status: ExecutionStatusView,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The completion value when it ended `ok`.
    pub result: Option<ValuePayload>,
    /// Why it did not end `ok`: the error a synchronous call would have answered.
    pub error: Option<ExecutionErrorView>,
    pub metrics: MetricsView,
}

impl From<Execution> for ExecutionView {
    fn from(e: Execution) -> Self {
        Self {
            id: e.id.as_uuid(),
            session_id: e.session_id.as_uuid(),
            kind: match e.kind {
                ExecutionKind::Repl => ExecutionKindView::Repl,
                ExecutionKind::RunFile => ExecutionKindView::RunFile,
                ExecutionKind::Startup => ExecutionKindView::Startup,
            },
            input: e.input,
            path: e.path,
            args: e.args.into_iter().collect(),
            env: e.env,
            status: match e.status {
                ExecutionStatus::Running => ExecutionStatusView::Running,
                ExecutionStatus::Ok => ExecutionStatusView::Ok,
                ExecutionStatus::Error => ExecutionStatusView::Error,
                ExecutionStatus::Timeout => ExecutionStatusView::Timeout,
                ExecutionStatus::Cancelled => ExecutionStatusView::Cancelled,
            },
            started_at: e.started_at,
            ended_at: e.ended_at,
            result: e.result.and_then(|result| serde_json::from_value(result).ok()),
            error: e.error.map(ExecutionErrorView::from_stored),
            metrics: MetricsView {
                duration_ms: e.metrics.duration_ms,
                event_count: e.metrics.event_count,
                output_bytes: e.metrics.output_bytes,
            },
        }
    }
}

/// One event of an execution. The wire shape is `{execution_id, seq, ts, type, payload}`; its
/// OpenAPI schema is a `oneOf` by `type` with a typed payload each (see [`crate::schema`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventView {
    pub execution_id: Uuid,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            execution_id: e.execution_id.as_uuid(),
            seq: e.seq,
            ts: e.ts,
            kind: e.payload.type_name().to_owned(),
            payload: e.payload.payload_json(),
        }
    }
}

/// The payload of `input_echo`, `stdout` and `stderr` events.
#[derive(Debug, Clone, Object)]
pub struct TextPayload {
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ConsoleLevelView {
    Log,
    Info,
    Warn,
    Error,
    Debug,
}

/// The payload of a `console` event.
#[derive(Debug, Clone, Object)]
pub struct ConsolePayload {
    pub level: ConsoleLevelView,
    pub text: String,
}

/// The payload of a `value` event, and an execution's `result`.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct ValuePayload {
    /// The value's type as `typeof` says it, or `null`, `array`, `promise`…
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// How the value reads, as a REPL would print it.
    pub preview: String,
    /// The value as JSON, when it has a JSON form (absent otherwise; `null` for `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

/// The payload of an `exception` event.
#[derive(Debug, Clone, Object)]
pub struct ExceptionPayload {
    pub message: String,
    pub stack: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SystemLevelView {
    Info,
    Warn,
    Error,
}

/// The payload of a `system` event.
#[derive(Debug, Clone, Object)]
pub struct SystemPayload {
    pub message: String,
    pub level: SystemLevelView,
}

/// The payload of a `fetch` event.
#[derive(Debug, Clone, Object)]
pub struct FetchPayload {
    /// `GET`, `POST`…
    pub method: String,
    pub url: String,
    /// Where redirects led; null when refused.
    pub final_url: Option<String>,
    /// The answer's HTTP status; null when refused or failed.
    pub status: Option<u16>,
    /// Body bytes received.
    pub bytes: u64,
    /// How long it took, in milliseconds.
    pub ms: u64,
    /// Why it was refused or failed, e.g. `ERR_HOST_NOT_ALLOWED`; null when answered.
    pub code: Option<String>,
    /// The refusal or failure in words; null when answered.
    pub error: Option<String>,
}

/// An execution with every event it recorded.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct ExecutionWithEventsView {
    #[oai(flatten)]
    #[serde(flatten)]
    pub execution: ExecutionView,
    pub events: Vec<EventView>,
}

impl From<Executed> for ExecutionWithEventsView {
    fn from(done: Executed) -> Self {
        Self { execution: done.execution.into(), events: done.events.into_iter().map(Into::into).collect() }
    }
}

// ---------------------------------------------------------------- ops

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct HealthView {
    /// Always `ok` when the daemon answers.
    pub status: String,
}

/// The readiness probe's answer when the daemon can serve.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct ReadyView {
    /// Always `ready` (otherwise the probe answers 503: `SHUTTING_DOWN`, `STORE_UNAVAILABLE` or
    /// `RUNTIME_UNAVAILABLE`).
    pub status: String,
    /// Always `ok`: the store answered a query within its 2 s bound.
    pub store: String,
    /// Always `ok`: the JavaScript runtime can start a session (its prepared worker is alive, or
    /// was started again within 1 s).
    pub runtime: String,
    /// Finished executions kept in memory until the store takes them (after an outage).
    pub pending_writes: u64,
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct RuntimeSummaryView {
    pub active_sessions: u64,
    pub active_session_ids: Vec<Uuid>,
}

// ---------------------------------------------------------------- tokens

/// A token scope; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ScopeView {
    /// Every `GET`.
    Read,
    /// Sessions and executions.
    Execute,
    /// Templates, their settings, capabilities, startup files, modules and libraries; tokens.
    Admin,
}

impl From<Scope> for ScopeView {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Read => Self::Read,
            Scope::Execute => Self::Execute,
            Scope::Admin => Self::Admin,
        }
    }
}

impl From<ScopeView> for Scope {
    fn from(s: ScopeView) -> Self {
        match s {
            ScopeView::Read => Self::Read,
            ScopeView::Execute => Self::Execute,
            ScopeView::Admin => Self::Admin,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum TokenStatusView {
    Active,
    Expired,
    Revoked,
}

impl From<TokenStatus> for TokenStatusView {
    fn from(s: TokenStatus) -> Self {
        match s {
            TokenStatus::Active => Self::Active,
            TokenStatus::Expired => Self::Expired,
            TokenStatus::Revoked => Self::Revoked,
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// 1–64 characters: letters, digits, `.`, `_`, `-`, `@`, `:` (leading and trailing spaces are
    /// trimmed).
    #[oai(validator(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9._@:-]{1,64}[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    ))]
    pub name: String,
    /// At least one scope.
    #[oai(validator(min_items = 1))]
    pub scopes: Vec<ScopeView>,
    /// When the token stops working, in the future; never, when absent or null. A past time is
    /// refused with `INVALID_VALUE`.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl poem_openapi::types::Example for CreateTokenBody {
    fn example() -> Self {
        Self { name: "ci-runner".into(), scopes: vec![ScopeView::Execute], expires_at: None }
    }
}

impl TryFrom<CreateTokenBody> for TokenSpec {
    type Error = DomainError;

    fn try_from(body: CreateTokenBody) -> Result<Self, DomainError> {
        Ok(TokenSpec {
            name: TokenName::parse(&body.name)?,
            scopes: body.scopes.into_iter().map(Scope::from).collect(),
            expires_at: body.expires_at,
        })
    }
}

/// An API token, without its secret.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<ScopeView>,
    pub status: TokenStatusView,
    pub created_at: DateTime<Utc>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenView {
    pub fn new(token: Token, status: TokenStatus) -> Self {
        Self {
            id: token.id.as_uuid(),
            name: token.name.to_string(),
            scopes: token.scopes.into_iter().map(Into::into).collect(),
            status: status.into(),
            created_at: token.created_at,
            last_used_at: token.last_used_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
        }
    }
}

/// A new token and its secret, which is shown this once.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct CreatedTokenView {
    /// Send it as `Authorization: Bearer <secret>`; it cannot be shown again.
    pub secret: String,
    pub token: TokenView,
}

/// Who the request's token is.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct WhoAmIView {
    /// The token's name, or `auth-off` when the daemon runs without authentication.
    pub name: String,
    /// The token's id; null when authentication is off.
    pub token_id: Option<Uuid>,
    pub scopes: Vec<ScopeView>,
}

impl From<Principal> for WhoAmIView {
    fn from(p: Principal) -> Self {
        Self {
            name: p.name,
            token_id: p.token_id.map(|id| id.as_uuid()),
            scopes: p.scopes.into_iter().map(Into::into).collect(),
        }
    }
}

/// `live` while the node renews its lease; `lost` once it stopped or its lease ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum NodeStatusView {
    Live,
    Lost,
}

impl From<NodeStatus> for NodeStatusView {
    fn from(s: NodeStatus) -> Self {
        match s {
            NodeStatus::Live => Self::Live,
            NodeStatus::Lost => Self::Lost,
        }
    }
}

/// One daemon process serving the database.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct NodeView {
    pub id: Uuid,
    /// Where the other nodes reach it (`--advertise-url`).
    pub url: String,
    pub version: String,
    pub status: NodeStatusView,
    /// Whether this is the node that answered.
    pub this_node: bool,
    pub started_at: DateTime<Utc>,
    /// When it last renewed its lease.
    pub heartbeat_at: DateTime<Utc>,
    /// When it is found lost unless it renews the lease first.
    pub lease_expires_at: DateTime<Utc>,
    /// When it was found lost or stopped.
    pub lost_at: Option<DateTime<Utc>>,
    /// Live sessions it runs at most (`--max-sessions`).
    pub max_sessions: u32,
    /// Its sessions that are `starting` or `ready`.
    pub active_sessions: u32,
}

impl NodeView {
    pub fn new(node: Node, this: NodeId) -> Self {
        Self {
            id: node.id.as_uuid(),
            url: node.url,
            version: node.version,
            status: node.status.into(),
            this_node: node.id == this,
            started_at: node.started_at,
            heartbeat_at: node.heartbeat_at,
            lease_expires_at: node.lease_expires_at,
            lost_at: node.lost_at,
            max_sessions: node.max_sessions,
            active_sessions: node.active_sessions,
        }
    }
}

/// Where `POST /sessions` runs the new session: `auto`, the live node with the most free
/// capacity; `local`, the node that received the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize, Default)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum PlacementView {
    #[default]
    Auto,
    Local,
}
