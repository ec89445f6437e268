//! Rows as the databases return them, and the only conversions from rows into
//! domain types; plus the few encoders that put domain values into columns.
//! A row is generic over [`Columns`]: SQLite hands ids, instants and JSON
//! back as text, PostgreSQL as `uuid`, `timestamptz` and `json`/`jsonb`. A
//! row that does not convert is a corrupt database: `Internal`, never a panic.

use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use vm_domain::catalog::{LibraryRef, ModuleName};
use vm_domain::event::{Event, EventPayload};
use vm_domain::execution::{Execution, ExecutionKind, ExecutionStatus, Metrics};
use vm_domain::paths::{ScriptPath, WorktreePath};
use vm_domain::session::{Label, Session, SessionStatus};
use vm_domain::template::{Capability, CapabilityKind, Settings, StartupFile, StartupMode, Template, TemplateName};
use vm_domain::token::{Scope, Token, TokenName};
use vm_domain::{DomainError, Timestamp};

use crate::error::StoreError;

/// A `templates` row with its module and library names as JSON arrays,
/// modules sorted by name and libraries in load order.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TemplateRow<C: Columns> {
    id: C::Id,
    name: String,
    engine: String,
    is_active: bool,
    modules: C::Json,
    libraries: C::Json,
    created_at: C::At,
    updated_at: C::At,
}

impl<C: Columns> TryFrom<TemplateRow<C>> for Template {
    type Error = DomainError;

    fn try_from(row: TemplateRow<C>) -> Result<Self, DomainError> {
        const TABLE: &str = "templates";
        let modules: Vec<String> = row.modules.value(TABLE)?;
        let libraries: Vec<String> = row.libraries.value(TABLE)?;
        Ok(Template {
            id: row.id.id(TABLE)?,
            name: TemplateName::parse(&row.name).map_err(|e| corrupt(TABLE, e))?,
            engine: row.engine,
            is_active: row.is_active,
            exposed_modules: modules
                .iter()
                .map(|m| ModuleName::parse(m).map_err(|e| corrupt(TABLE, e)))
                .collect::<Result<_, _>>()?,
            libraries: libraries
                .iter()
                .map(|l| LibraryRef::parse(l).map_err(|e| corrupt(TABLE, e)))
                .collect::<Result<_, _>>()?,
            created_at: row.created_at.instant(TABLE)?,
            updated_at: row.updated_at.instant(TABLE)?,
        })
    }
}

/// A `template_settings` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SettingsRow<C: Columns> {
    settings: C::Json,
}

impl<C: Columns> TryFrom<SettingsRow<C>> for Settings {
    type Error = DomainError;

    fn try_from(row: SettingsRow<C>) -> Result<Self, DomainError> {
        row.settings.value("template_settings")
    }
}

/// A `template_capabilities` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CapabilityRow<C: Columns> {
    id: C::Id,
    template_id: C::Id,
    kind: String,
    name: C::Text,
    enabled: bool,
    config: C::Json,
    created_at: C::At,
}

impl<C: Columns> TryFrom<CapabilityRow<C>> for Capability {
    type Error = DomainError;

    fn try_from(row: CapabilityRow<C>) -> Result<Self, DomainError> {
        const TABLE: &str = "template_capabilities";
        Ok(Capability {
            id: row.id.id(TABLE)?,
            template_id: row.template_id.id(TABLE)?,
            kind: CapabilityKind::parse(&row.kind).map_err(|e| corrupt(TABLE, e))?,
            name: row.name.text(TABLE)?,
            enabled: row.enabled,
            config: row.config.value(TABLE)?,
            created_at: row.created_at.instant(TABLE)?,
        })
    }
}

/// A `template_startup_files` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StartupFileRow<C: Columns> {
    id: C::Id,
    template_id: C::Id,
    path: String,
    order_index: i64,
    mode: String,
    created_at: C::At,
}

impl<C: Columns> TryFrom<StartupFileRow<C>> for StartupFile {
    type Error = DomainError;

    fn try_from(row: StartupFileRow<C>) -> Result<Self, DomainError> {
        const TABLE: &str = "template_startup_files";
        Ok(StartupFile {
            id: row.id.id(TABLE)?,
            template_id: row.template_id.id(TABLE)?,
            path: ScriptPath::parse(&row.path).map_err(|e| corrupt(TABLE, e))?,
            order_index: row.order_index,
            mode: StartupMode::parse(&row.mode).map_err(|e| corrupt(TABLE, e))?,
            created_at: row.created_at.instant(TABLE)?,
        })
    }
}

/// A `sessions` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow<C: Columns> {
    id: C::Id,
    template_id: C::Id,
    workspace_id: String,
    base_commit_oid: String,
    worktree_path: String,
    status: String,
    created_at: C::At,
    closed_at: Option<C::At>,
    last_error: Option<C::Text>,
}

impl<C: Columns> TryFrom<SessionRow<C>> for Session {
    type Error = DomainError;

    fn try_from(row: SessionRow<C>) -> Result<Self, DomainError> {
        const TABLE: &str = "sessions";
        Ok(Session {
            id: row.id.id(TABLE)?,
            template_id: row.template_id.id(TABLE)?,
            workspace_id: Label::parse("workspace_id", &row.workspace_id).map_err(|e| corrupt(TABLE, e))?,
            base_commit_oid: Label::parse("base_commit_oid", &row.base_commit_oid).map_err(|e| corrupt(TABLE, e))?,
            worktree_path: WorktreePath::from_stored(row.worktree_path),
            status: SessionStatus::parse(&row.status).map_err(|e| corrupt(TABLE, e))?,
            created_at: row.created_at.instant(TABLE)?,
            closed_at: row.closed_at.map(|at| at.instant(TABLE)).transpose()?,
            last_error: row.last_error.map(|e| e.text(TABLE)).transpose()?,
        })
    }
}

/// An `executions` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ExecutionRow<C: Columns> {
    id: C::Id,
    session_id: C::Id,
    kind: String,
    input: Option<C::Text>,
    path: Option<String>,
    args: C::Json,
    env: C::Json,
    status: String,
    started_at: C::At,
    ended_at: Option<C::At>,
    result: Option<C::Json>,
    error: Option<C::Json>,
    duration_ms: i64,
    event_count: i64,
    output_bytes: i64,
}

impl<C: Columns> TryFrom<ExecutionRow<C>> for Execution {
    type Error = DomainError;

    fn try_from(row: ExecutionRow<C>) -> Result<Self, DomainError> {
        const TABLE: &str = "executions";
        let count = |raw: i64| u64::try_from(raw).map_err(|_| corrupt(TABLE, format!("negative metric {raw}")));
        Ok(Execution {
            id: row.id.id(TABLE)?,
            session_id: row.session_id.id(TABLE)?,
            kind: ExecutionKind::parse(&row.kind)
                .ok_or_else(|| corrupt(TABLE, format!("unknown kind {:?}", row.kind)))?,
            input: row.input.map(|i| i.text(TABLE)).transpose()?,
            path: row.path,
            args: row.args.value(TABLE)?,
            env: row.env.value(TABLE)?,
            status: ExecutionStatus::parse(&row.status)
                .ok_or_else(|| corrupt(TABLE, format!("unknown status {:?}", row.status)))?,
            started_at: row.started_at.instant(TABLE)?,
            ended_at: row.ended_at.map(|at| at.instant(TABLE)).transpose()?,
            result: row.result.map(|v| v.value(TABLE)).transpose()?,
            error: row.error.map(|v| v.value(TABLE)).transpose()?,
            metrics: Metrics {
                duration_ms: count(row.duration_ms)?,
                event_count: count(row.event_count)?,
                output_bytes: count(row.output_bytes)?,
            },
        })
    }
}

/// An `execution_events` row; `type` is selected as `type_name`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow<C: Columns> {
    execution_id: C::Id,
    seq: i64,
    ts: C::At,
    type_name: String,
    payload: C::Json,
}

impl<C: Columns> TryFrom<EventRow<C>> for Event {
    type Error = DomainError;

    fn try_from(row: EventRow<C>) -> Result<Self, DomainError> {
        const TABLE: &str = "execution_events";
        let payload = row.payload.value(TABLE)?;
        Ok(Event {
            execution_id: row.execution_id.id(TABLE)?,
            seq: row.seq,
            ts: row.ts.instant(TABLE)?,
            payload: EventPayload::from_parts(&row.type_name, payload).map_err(|e| corrupt(TABLE, e))?,
        })
    }
}

/// An `api_tokens` row, without its secret digest; `scopes` is a JSON
/// array of scope names.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TokenRow<C: Columns> {
    id: C::Id,
    name: String,
    scopes: C::Json,
    created_at: C::At,
    last_used_at: Option<C::At>,
    expires_at: Option<C::At>,
    revoked_at: Option<C::At>,
}

impl<C: Columns> TryFrom<TokenRow<C>> for Token {
    type Error = DomainError;

    fn try_from(row: TokenRow<C>) -> Result<Self, DomainError> {
        const TABLE: &str = "api_tokens";
        let scopes: Vec<String> = row.scopes.value(TABLE)?;
        Ok(Token {
            id: row.id.id(TABLE)?,
            name: TokenName::from_stored(row.name),
            scopes: scopes
                .iter()
                .map(|s| Scope::parse(s, "scopes").map_err(|e| corrupt(TABLE, e)))
                .collect::<Result<_, _>>()?,
            created_at: row.created_at.instant(TABLE)?,
            last_used_at: row.last_used_at.map(|at| at.instant(TABLE)).transpose()?,
            expires_at: row.expires_at.map(|at| at.instant(TABLE)).transpose()?,
            revoked_at: row.revoked_at.map(|at| at.instant(TABLE)).transpose()?,
        })
    }
}

/// The stored form of a token's scopes: a JSON array of their names, in
/// the token's order.
pub(crate) fn scopes_json(scopes: &[Scope]) -> String {
    json_text(&scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

/// The stored form of an instant: UTC, exactly six fractional digits, so
/// that text order is time order. Nanoseconds are truncated.
pub(crate) fn timestamp_text(at: Timestamp) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The stored form of a count: SQL integers are signed.
pub(crate) fn count_value(value: u64) -> Result<i64, DomainError> {
    i64::try_from(value).map_err(|_| StoreError::CountTooLarge { value }.into())
}

/// The stored form of a JSON-serialisable value.
pub(crate) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values serialise to JSON")
}

fn corrupt(table: &'static str, detail: impl Display) -> DomainError {
    StoreError::CorruptRow { table, detail: detail.to_string() }.into()
}

/// How a backend returns ids, instants and JSON values.
pub(crate) trait Columns {
    type Id: IdColumn;
    type At: AtColumn;
    type Json: JsonColumn;
    type Text: TextColumn;
}

/// SQLite: ids, instants (see [`timestamp_text`]) and JSON are all text.
#[derive(Debug)]
pub(crate) enum SqliteColumns {}

impl Columns for SqliteColumns {
    type Id = String;
    type At = String;
    type Json = String;
    type Text = String;
}

/// PostgreSQL: `uuid`, `timestamptz`, and `json` or `jsonb`. Free text
/// that may hold a NUL character, which a PostgreSQL `text` cannot, is a
/// JSON string in a `json` column (see [`text_json`]).
#[derive(Debug)]
pub(crate) enum PgColumns {}

impl Columns for PgColumns {
    type Id = uuid::Uuid;
    type At = Timestamp;
    type Json = serde_json::Value;
    type Text = serde_json::Value;
}

/// An id column: hyphenated text or a native `uuid`.
pub(crate) trait IdColumn: std::fmt::Debug {
    fn id<T: From<uuid::Uuid>>(self, table: &'static str) -> Result<T, DomainError>;
}

impl IdColumn for String {
    fn id<T: From<uuid::Uuid>>(self, table: &'static str) -> Result<T, DomainError> {
        uuid::Uuid::from_str(&self).map(T::from).map_err(|e| corrupt(table, format!("id {self:?}: {e}")))
    }
}

impl IdColumn for uuid::Uuid {
    fn id<T: From<uuid::Uuid>>(self, _table: &'static str) -> Result<T, DomainError> {
        Ok(T::from(self))
    }
}

/// An instant column: RFC 3339 text or a native `timestamptz`.
pub(crate) trait AtColumn: std::fmt::Debug {
    fn instant(self, table: &'static str) -> Result<Timestamp, DomainError>;
}

impl AtColumn for String {
    fn instant(self, table: &'static str) -> Result<Timestamp, DomainError> {
        DateTime::parse_from_rfc3339(&self)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| corrupt(table, format!("instant {self:?}: {e}")))
    }
}

impl AtColumn for Timestamp {
    fn instant(self, _table: &'static str) -> Result<Timestamp, DomainError> {
        Ok(self)
    }
}

/// A JSON column: text or a parsed `json`/`jsonb` value.
pub(crate) trait JsonColumn: std::fmt::Debug {
    fn value<T: DeserializeOwned>(self, table: &'static str) -> Result<T, DomainError>;
}

impl JsonColumn for String {
    fn value<T: DeserializeOwned>(self, table: &'static str) -> Result<T, DomainError> {
        serde_json::from_str(&self).map_err(|e| corrupt(table, format!("JSON {self:?}: {e}")))
    }
}

impl JsonColumn for serde_json::Value {
    fn value<T: DeserializeOwned>(self, table: &'static str) -> Result<T, DomainError> {
        let shown = self.to_string();
        serde_json::from_value(self).map_err(|e| corrupt(table, format!("JSON {shown}: {e}")))
    }
}

/// A free-text column: text, or a JSON string.
pub(crate) trait TextColumn: std::fmt::Debug {
    fn text(self, table: &'static str) -> Result<String, DomainError>;
}

impl TextColumn for String {
    fn text(self, _table: &'static str) -> Result<String, DomainError> {
        Ok(self)
    }
}

impl TextColumn for serde_json::Value {
    fn text(self, table: &'static str) -> Result<String, DomainError> {
        match self {
            serde_json::Value::String(text) => Ok(text),
            other => Err(corrupt(table, format!("{other} is not a JSON string"))),
        }
    }
}

/// The stored form of free text in a PostgreSQL `json` column: a JSON
/// string, where a NUL character is the escape `\u0000`.
pub(crate) fn text_json(text: &str) -> String {
    json_text(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_instants_have_fixed_width_and_keep_microseconds() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid instant");
        let text = timestamp_text(at);
        assert_eq!(text, "2023-11-14T22:13:20.123456Z");
        let back = text.clone().instant("t").expect("parses");
        assert_eq!(back.timestamp_subsec_nanos(), 123_456_000);
        let whole = DateTime::from_timestamp(1_700_000_000, 0).expect("valid instant");
        assert_eq!(timestamp_text(whole), "2023-11-14T22:13:20.000000Z");
    }

    #[test]
    fn a_row_with_a_bad_status_is_an_internal_error() {
        let row = SessionRow::<SqliteColumns> {
            id: uuid::Uuid::new_v4().to_string(),
            template_id: uuid::Uuid::new_v4().to_string(),
            workspace_id: "ws".into(),
            base_commit_oid: "abc".into(),
            worktree_path: "/tmp".into(),
            status: "zombie".into(),
            created_at: "2023-11-14T22:13:20.000000Z".into(),
            closed_at: None,
            last_error: None,
        };
        assert_eq!(Session::try_from(row).unwrap_err().code(), "INTERNAL");
    }

    #[test]
    fn a_token_row_with_an_unknown_scope_is_an_internal_error() {
        let row = TokenRow::<SqliteColumns> {
            id: uuid::Uuid::new_v4().to_string(),
            name: "ci".into(),
            scopes: r#"["read","root"]"#.into(),
            created_at: "2023-11-14T22:13:20.000000Z".into(),
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        };
        assert_eq!(Token::try_from(row).unwrap_err().code(), "INTERNAL");
    }

    #[test]
    fn scopes_are_stored_as_a_json_array_of_names_in_order() {
        assert_eq!(scopes_json(&[Scope::Admin, Scope::Read]), r#"["admin","read"]"#);
    }
}
