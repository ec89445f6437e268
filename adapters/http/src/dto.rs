//! Wire shapes of the REST API (`…Body` in, `…View` out) and their
//! conversions from and to domain types. Domain types stay free of poem.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vm_domain::catalog::ModuleInfo;
use vm_domain::event::Event;
use vm_domain::execution::{Execution, ExecutionKind, ExecutionStatus};
use vm_domain::services::{Executed, LibraryEntry, NewCapability, NewSession, NewStartupFile, NewTemplate, NewToken};
use vm_domain::session::{Session, SessionStatus};
use vm_domain::template::{
    Capability, Limits, ResolverSettings, RuntimeSwitches, Settings, StartupFile, Template, TemplateDetail,
};
use vm_domain::token::{Principal, Scope, Token, TokenStatus};

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
    /// Default 5000.
    pub cpu_ms: Option<u64>,
    /// Default 30000.
    pub wall_ms: Option<u64>,
    /// Default 128.
    pub mem_mb: Option<u64>,
    /// Default 1000.
    pub max_events: Option<u64>,
    /// Default 512.
    pub max_output_kb: Option<u64>,
}

#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct ResolverBody {
    /// Default `[]`.
    pub roots: Option<Vec<String>>,
    /// Default `[".js", ".mjs"]`.
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
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    pub limits: Option<LimitsBody>,
    pub resolver: Option<ResolverBody>,
    pub runtime: Option<RuntimeSwitchesBody>,
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
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateBody {
    /// Required, non-blank.
    pub name: String,
    /// Default `boa`.
    pub engine: Option<String>,
    /// Settings; every field left out takes its default.
    pub settings: Option<SettingsBody>,
    /// Native modules to enable (see `GET /catalog/modules`).
    pub exposed_modules: Option<Vec<String>>,
    /// Libraries to load, in order (see `GET /catalog/libraries`).
    pub libraries: Option<Vec<String>>,
}

impl From<CreateTemplateBody> for NewTemplate {
    fn from(body: CreateTemplateBody) -> Self {
        NewTemplate {
            name: body.name,
            engine: body.engine,
            settings: body.settings.map(Settings::from),
            modules: body.exposed_modules.unwrap_or_default(),
            libraries: body.libraries.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct TemplateView {
    pub id: String,
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
            id: t.id.to_string(),
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

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateCapabilityBody {
    /// One of `module`, `global`, `fs`, `net`, `env`.
    pub kind: String,
    pub name: String,
    /// Default true.
    pub enabled: Option<bool>,
    /// Any JSON object; e.g. `{"allow": ["git"]}` for the exec module. A `net` capability named
    /// `fetch` takes `{"allow": [...], "max_fetch_kb": N}` and nothing else: each entry is `host`,
    /// `host:port`, `*.domain`, `*.domain:port`, an IPv4 address or a bracketed IPv6 address (with
    /// an optional port); `max_fetch_kb` is a positive integer (default 10240). A config that breaks
    /// these rules is refused with `VALIDATION_ERROR`, `details.field` naming it (`config.allow[1]`).
    pub config: Option<BTreeMap<String, Value>>,
}

impl From<CreateCapabilityBody> for NewCapability {
    fn from(body: CreateCapabilityBody) -> Self {
        NewCapability {
            kind: body.kind,
            name: body.name,
            enabled: body.enabled,
            config: body.config.map(|c| c.into_iter().collect()),
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct CapabilityView {
    pub id: String,
    pub template_id: String,
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    pub config: BTreeMap<String, Value>,
    pub created_at: DateTime<Utc>,
}

impl From<Capability> for CapabilityView {
    fn from(c: Capability) -> Self {
        Self {
            id: c.id.to_string(),
            template_id: c.template_id.to_string(),
            kind: c.kind.as_str().to_owned(),
            name: c.name,
            enabled: c.enabled,
            config: c.config.into_iter().collect(),
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateStartupFileBody {
    /// Relative to the session worktree.
    pub path: String,
    /// Default 0; files run in ascending order.
    pub order_index: Option<i64>,
    /// Only `eval` is supported (the default).
    pub mode: Option<String>,
}

impl From<CreateStartupFileBody> for NewStartupFile {
    fn from(body: CreateStartupFileBody) -> Self {
        NewStartupFile { path: body.path, order_index: body.order_index, mode: body.mode }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct StartupFileView {
    pub id: String,
    pub template_id: String,
    pub path: String,
    pub order_index: i64,
    pub mode: String,
    pub created_at: DateTime<Utc>,
}

impl From<StartupFile> for StartupFileView {
    fn from(f: StartupFile) -> Self {
        Self {
            id: f.id.to_string(),
            template_id: f.template_id.to_string(),
            path: f.path.to_string(),
            order_index: f.order_index,
            mode: f.mode.as_str().to_owned(),
            created_at: f.created_at,
        }
    }
}

/// A module or library name to add.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    pub name: String,
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
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    pub template_id: String,
    pub workspace_id: String,
    pub base_commit_oid: String,
    /// Absolute path of an existing directory.
    pub worktree_path: String,
}

impl From<CreateSessionBody> for NewSession {
    fn from(body: CreateSessionBody) -> Self {
        NewSession {
            template_id: body.template_id,
            workspace_id: body.workspace_id,
            base_commit_oid: body.base_commit_oid,
            worktree_path: body.worktree_path,
        }
    }
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct SessionView {
    pub id: String,
    pub template_id: String,
    pub workspace_id: String,
    pub base_commit_oid: String,
    pub worktree_path: String,
    pub status: SessionStatusView,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The session this one was forked from (its heap started as a copy).
    pub forked_from: Option<String>,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.to_string(),
            template_id: s.template_id.to_string(),
            workspace_id: s.workspace_id.as_str().to_owned(),
            base_commit_oid: s.base_commit_oid.as_str().to_owned(),
            worktree_path: s.worktree_path.to_string(),
            status: s.status.into(),
            created_at: s.created_at,
            closed_at: s.closed_at,
            last_error: s.last_error,
            forked_from: s.forked_from.map(|id| id.to_string()),
        }
    }
}

// ---------------------------------------------------------------- executions

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct ReplBody {
    pub session_id: String,
    /// JavaScript evaluated in the session's global scope.
    pub input: String,
    /// Default true: answer when the execution has ended. False: answer at
    /// once with the `running` execution (202); follow its events.
    pub wait: Option<bool>,
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct RunFileBody {
    pub session_id: String,
    /// Relative to the session worktree.
    pub path: String,
    /// Reaches the script as the global `__ARGS__`.
    pub args: Option<BTreeMap<String, Value>>,
    /// Reaches the script as the global `__ENV__`.
    pub env: Option<BTreeMap<String, String>>,
    /// Default true: answer when the execution has ended. False: answer at
    /// once with the `running` execution (202); follow its events.
    pub wait: Option<bool>,
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

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct ExecutionView {
    pub id: String,
    pub session_id: String,
    pub kind: ExecutionKindView,
    pub input: Option<String>,
    pub path: Option<String>,
    pub args: BTreeMap<String, Value>,
    pub env: BTreeMap<String, String>,
    pub status: ExecutionStatusView,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The completion value (`type`, `preview`, `json`) when it ended `ok`.
    pub result: Option<Value>,
    /// `code` and `message` when it did not end `ok`.
    pub error: Option<Value>,
    pub metrics: MetricsView,
}

impl From<Execution> for ExecutionView {
    fn from(e: Execution) -> Self {
        Self {
            id: e.id.to_string(),
            session_id: e.session_id.to_string(),
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
            result: e.result,
            error: e.error,
            metrics: MetricsView {
                duration_ms: e.metrics.duration_ms,
                event_count: e.metrics.event_count,
                output_bytes: e.metrics.output_bytes,
            },
        }
    }
}

/// One event. `payload` depends on `type`:
/// `input_echo` `{text}`, `console` `{level, text}`, `value` `{type, preview, json?}`,
/// `exception` `{message, stack}`, `system` `{message, level}`, `stdout`/`stderr` `{text}`,
/// `fetch` `{method, url, final_url, status, bytes, ms, code, error}` (a request the daemon made
/// for the script, or refused: `status` null and `code` such as `ERR_HOST_NOT_ALLOWED`).
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct EventView {
    pub execution_id: String,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            execution_id: e.execution_id.to_string(),
            seq: e.seq,
            ts: e.ts,
            kind: e.payload.type_name().to_owned(),
            payload: e.payload.payload_json(),
        }
    }
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
    /// Always `ready` (otherwise the probe answers 503 `STORE_UNAVAILABLE`).
    pub status: String,
    /// Always `ok`: the store answered a query within its 2 s bound.
    pub store: String,
    /// Finished executions kept in memory until the store takes them (after an outage).
    pub pending_writes: u64,
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct RuntimeSummaryView {
    pub active_sessions: u64,
    pub active_session_ids: Vec<String>,
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
#[oai(deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// 1–64 characters: letters, digits, `.`, `_`, `-`, `@`, `:`.
    pub name: String,
    /// At least one scope.
    pub scopes: Vec<ScopeView>,
    /// When the token stops working; never, when absent or null.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<CreateTokenBody> for NewToken {
    fn from(body: CreateTokenBody) -> Self {
        let scopes = body.scopes.into_iter().map(|scope| Scope::from(scope).as_str().to_owned()).collect();
        NewToken { name: body.name, scopes, expires_at: body.expires_at }
    }
}

/// An API token, without its secret.
#[derive(Debug, Clone, Object, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
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
            id: token.id.to_string(),
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
    pub token_id: Option<String>,
    pub scopes: Vec<ScopeView>,
}

impl From<Principal> for WhoAmIView {
    fn from(p: Principal) -> Self {
        Self {
            name: p.name,
            token_id: p.token_id.map(|id| id.to_string()),
            scopes: p.scopes.into_iter().map(Into::into).collect(),
        }
    }
}
