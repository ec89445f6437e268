//! Rows as SQLite returns them, and the only conversions from rows into domain
//! types; plus the few encoders that put domain values into columns. A row
//! that does not convert is a corrupt database: `Internal`, never a panic.

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
use vm_domain::{DomainError, Timestamp};

use crate::error::StoreError;

/// A `templates` row with its module and library names as JSON arrays,
/// modules sorted by name and libraries in load order.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TemplateRow {
    id: String,
    name: String,
    engine: String,
    is_active: bool,
    modules: String,
    libraries: String,
    created_at: String,
    updated_at: String,
}

impl TryFrom<TemplateRow> for Template {
    type Error = DomainError;

    fn try_from(row: TemplateRow) -> Result<Self, DomainError> {
        const TABLE: &str = "templates";
        let modules: Vec<String> = json(TABLE, &row.modules)?;
        let libraries: Vec<String> = json(TABLE, &row.libraries)?;
        Ok(Template {
            id: uuid(TABLE, &row.id)?,
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
            created_at: timestamp(TABLE, &row.created_at)?,
            updated_at: timestamp(TABLE, &row.updated_at)?,
        })
    }
}

/// A `template_settings` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SettingsRow {
    settings: String,
}

impl TryFrom<SettingsRow> for Settings {
    type Error = DomainError;

    fn try_from(row: SettingsRow) -> Result<Self, DomainError> {
        json("template_settings", &row.settings)
    }
}

/// A `template_capabilities` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CapabilityRow {
    id: String,
    template_id: String,
    kind: String,
    name: String,
    enabled: bool,
    config: String,
    created_at: String,
}

impl TryFrom<CapabilityRow> for Capability {
    type Error = DomainError;

    fn try_from(row: CapabilityRow) -> Result<Self, DomainError> {
        const TABLE: &str = "template_capabilities";
        Ok(Capability {
            id: uuid(TABLE, &row.id)?,
            template_id: uuid(TABLE, &row.template_id)?,
            kind: CapabilityKind::parse(&row.kind).map_err(|e| corrupt(TABLE, e))?,
            name: row.name,
            enabled: row.enabled,
            config: json(TABLE, &row.config)?,
            created_at: timestamp(TABLE, &row.created_at)?,
        })
    }
}

/// A `template_startup_files` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StartupFileRow {
    id: String,
    template_id: String,
    path: String,
    order_index: i64,
    mode: String,
    created_at: String,
}

impl TryFrom<StartupFileRow> for StartupFile {
    type Error = DomainError;

    fn try_from(row: StartupFileRow) -> Result<Self, DomainError> {
        const TABLE: &str = "template_startup_files";
        Ok(StartupFile {
            id: uuid(TABLE, &row.id)?,
            template_id: uuid(TABLE, &row.template_id)?,
            path: ScriptPath::parse(&row.path).map_err(|e| corrupt(TABLE, e))?,
            order_index: row.order_index,
            mode: StartupMode::parse(&row.mode).map_err(|e| corrupt(TABLE, e))?,
            created_at: timestamp(TABLE, &row.created_at)?,
        })
    }
}

/// A `sessions` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    template_id: String,
    workspace_id: String,
    base_commit_oid: String,
    worktree_path: String,
    status: String,
    created_at: String,
    closed_at: Option<String>,
    last_error: Option<String>,
}

impl TryFrom<SessionRow> for Session {
    type Error = DomainError;

    fn try_from(row: SessionRow) -> Result<Self, DomainError> {
        const TABLE: &str = "sessions";
        Ok(Session {
            id: uuid(TABLE, &row.id)?,
            template_id: uuid(TABLE, &row.template_id)?,
            workspace_id: Label::parse("workspace_id", &row.workspace_id).map_err(|e| corrupt(TABLE, e))?,
            base_commit_oid: Label::parse("base_commit_oid", &row.base_commit_oid).map_err(|e| corrupt(TABLE, e))?,
            worktree_path: WorktreePath::from_stored(row.worktree_path),
            status: SessionStatus::parse(&row.status).map_err(|e| corrupt(TABLE, e))?,
            created_at: timestamp(TABLE, &row.created_at)?,
            closed_at: row.closed_at.map(|at| timestamp(TABLE, &at)).transpose()?,
            last_error: row.last_error,
        })
    }
}

/// An `executions` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ExecutionRow {
    id: String,
    session_id: String,
    kind: String,
    input: Option<String>,
    path: Option<String>,
    args: String,
    env: String,
    status: String,
    started_at: String,
    ended_at: Option<String>,
    result: Option<String>,
    error: Option<String>,
    duration_ms: i64,
    event_count: i64,
    output_bytes: i64,
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = DomainError;

    fn try_from(row: ExecutionRow) -> Result<Self, DomainError> {
        const TABLE: &str = "executions";
        let count = |raw: i64| u64::try_from(raw).map_err(|_| corrupt(TABLE, format!("negative metric {raw}")));
        Ok(Execution {
            id: uuid(TABLE, &row.id)?,
            session_id: uuid(TABLE, &row.session_id)?,
            kind: ExecutionKind::parse(&row.kind)
                .ok_or_else(|| corrupt(TABLE, format!("unknown kind {:?}", row.kind)))?,
            input: row.input,
            path: row.path,
            args: json(TABLE, &row.args)?,
            env: json(TABLE, &row.env)?,
            status: ExecutionStatus::parse(&row.status)
                .ok_or_else(|| corrupt(TABLE, format!("unknown status {:?}", row.status)))?,
            started_at: timestamp(TABLE, &row.started_at)?,
            ended_at: row.ended_at.map(|at| timestamp(TABLE, &at)).transpose()?,
            result: row.result.map(|v| json(TABLE, &v)).transpose()?,
            error: row.error.map(|v| json(TABLE, &v)).transpose()?,
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
pub(crate) struct EventRow {
    execution_id: String,
    seq: i64,
    ts: String,
    type_name: String,
    payload: String,
}

impl TryFrom<EventRow> for Event {
    type Error = DomainError;

    fn try_from(row: EventRow) -> Result<Self, DomainError> {
        const TABLE: &str = "execution_events";
        let payload = json(TABLE, &row.payload)?;
        Ok(Event {
            execution_id: uuid(TABLE, &row.execution_id)?,
            seq: row.seq,
            ts: timestamp(TABLE, &row.ts)?,
            payload: EventPayload::from_parts(&row.type_name, payload).map_err(|e| corrupt(TABLE, e))?,
        })
    }
}

/// The stored form of an instant: UTC, exactly six fractional digits, so
/// that text order is time order. Nanoseconds are truncated.
pub(crate) fn timestamp_text(at: Timestamp) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The stored form of a count: SQLite integers are signed.
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

fn uuid<T: From<uuid::Uuid>>(table: &'static str, raw: &str) -> Result<T, DomainError> {
    uuid::Uuid::from_str(raw).map(T::from).map_err(|e| corrupt(table, format!("id {raw:?}: {e}")))
}

fn timestamp(table: &'static str, raw: &str) -> Result<Timestamp, DomainError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| corrupt(table, format!("instant {raw:?}: {e}")))
}

fn json<T: DeserializeOwned>(table: &'static str, raw: &str) -> Result<T, DomainError> {
    serde_json::from_str(raw).map_err(|e| corrupt(table, format!("JSON {raw:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_instants_have_fixed_width_and_keep_microseconds() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid instant");
        let text = timestamp_text(at);
        assert_eq!(text, "2023-11-14T22:13:20.123456Z");
        let back = timestamp("t", &text).expect("parses");
        assert_eq!(back.timestamp_subsec_nanos(), 123_456_000);
        let whole = DateTime::from_timestamp(1_700_000_000, 0).expect("valid instant");
        assert_eq!(timestamp_text(whole), "2023-11-14T22:13:20.000000Z");
    }

    #[test]
    fn a_row_with_a_bad_status_is_an_internal_error() {
        let row = SessionRow {
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
}
