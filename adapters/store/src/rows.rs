//! The only conversions from result rows into domain types, written once
//! against [`ReadRow`] (each backend reads its own column types), and the
//! few encoders that put domain values into columns. A row that does not
//! convert is a corrupt database: `Internal`, never a panic.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use vm_domain::catalog::{LibraryRef, ModuleName};
use vm_domain::event::{Event, EventPayload};
use vm_domain::execution::{Execution, ExecutionKind, ExecutionStatus, Metrics};
use vm_domain::node::{Node, NodeStatus};
use vm_domain::paths::{ScriptPath, WorktreePath};
use vm_domain::session::{Label, Session, SessionStatus};
use vm_domain::template::{Capability, CapabilityKind, Settings, StartupFile, StartupMode, Template, TemplateName};
use vm_domain::token::{Scope, Token, TokenName};
use vm_domain::{DomainError, Timestamp};

use crate::dialect::ReadRow;
use crate::error::StoreError;

/// A template from `Dialect::SELECT_TEMPLATES`.
pub(crate) fn template(row: &impl ReadRow) -> Result<Template, DomainError> {
    const TABLE: &str = "templates";
    let modules: Vec<String> = required(TABLE, "modules", row.json("modules")?)?;
    let libraries: Vec<String> = required(TABLE, "libraries", row.json("libraries")?)?;
    Ok(Template {
        id: row.id("id")?,
        name: TemplateName::parse(&text(row, TABLE, "name")?).map_err(|e| corrupt(TABLE, e))?,
        engine: text(row, TABLE, "engine")?,
        is_active: row.flag("is_active")?,
        exposed_modules: modules
            .iter()
            .map(|m| ModuleName::parse(m).map_err(|e| corrupt(TABLE, e)))
            .collect::<Result<_, _>>()?,
        libraries: libraries
            .iter()
            .map(|l| LibraryRef::parse(l).map_err(|e| corrupt(TABLE, e)))
            .collect::<Result<_, _>>()?,
        created_at: at(row, TABLE, "created_at")?,
        updated_at: at(row, TABLE, "updated_at")?,
    })
}

/// A `template_settings` row's `settings`.
pub(crate) fn settings(row: &impl ReadRow) -> Result<Settings, DomainError> {
    required("template_settings", "settings", row.json("settings")?)
}

pub(crate) const CAPABILITY_COLUMNS: &str = "id, template_id, kind, name, enabled, config, created_at";

/// A `template_capabilities` row.
pub(crate) fn capability(row: &impl ReadRow) -> Result<Capability, DomainError> {
    const TABLE: &str = "template_capabilities";
    Ok(Capability {
        id: row.id("id")?,
        template_id: row.id("template_id")?,
        kind: CapabilityKind::parse(&text(row, TABLE, "kind")?).map_err(|e| corrupt(TABLE, e))?,
        name: required(TABLE, "name", row.free_text("name")?)?,
        enabled: row.flag("enabled")?,
        config: required(TABLE, "config", row.json("config")?)?,
        created_at: at(row, TABLE, "created_at")?,
    })
}

pub(crate) const STARTUP_FILE_COLUMNS: &str = "id, template_id, path, order_index, mode, created_at";

/// A `template_startup_files` row.
pub(crate) fn startup_file(row: &impl ReadRow) -> Result<StartupFile, DomainError> {
    const TABLE: &str = "template_startup_files";
    Ok(StartupFile {
        id: row.id("id")?,
        template_id: row.id("template_id")?,
        path: ScriptPath::parse(&text(row, TABLE, "path")?).map_err(|e| corrupt(TABLE, e))?,
        order_index: row.int("order_index")?,
        mode: StartupMode::parse(&text(row, TABLE, "mode")?).map_err(|e| corrupt(TABLE, e))?,
        created_at: at(row, TABLE, "created_at")?,
    })
}

/// The columns of a `nodes` row named `table` (an alias, or the table
/// itself where no alias may be used, as in SQLite's `RETURNING`), with its
/// live sessions counted as `active_sessions`.
pub(crate) fn node_columns(table: &str) -> String {
    format!(
        "{table}.id, {table}.url, {table}.version, {table}.status, {table}.started_at, {table}.heartbeat_at, \
         {table}.lease_expires_at, {table}.lost_at, {table}.max_sessions, \
         (SELECT COUNT(*) FROM sessions s WHERE s.node_id = {table}.id AND s.status IN ('starting', 'ready')) \
         AS active_sessions"
    )
}

/// A `nodes` row read with [`node_columns`].
pub(crate) fn node(row: &impl ReadRow) -> Result<Node, DomainError> {
    const TABLE: &str = "nodes";
    let count = |column: &str| -> Result<u32, DomainError> {
        u32::try_from(row.int(column)?).map_err(|_| crate::error::corrupt_column(column, "out of range"))
    };
    Ok(Node {
        id: row.id("id")?,
        url: text(row, TABLE, "url")?,
        version: text(row, TABLE, "version")?,
        status: NodeStatus::parse(&text(row, TABLE, "status")?).map_err(|e| corrupt(TABLE, e))?,
        started_at: at(row, TABLE, "started_at")?,
        heartbeat_at: at(row, TABLE, "heartbeat_at")?,
        lease_expires_at: at(row, TABLE, "lease_expires_at")?,
        lost_at: row.at("lost_at")?,
        max_sessions: count("max_sessions")?,
        active_sessions: count("active_sessions")?,
    })
}

pub(crate) const SESSION_COLUMNS: &str = "id, template_id, workspace_id, base_commit_oid, worktree_path, status, \
                                          created_at, closed_at, last_error, forked_from, node_id";

/// A `sessions` row.
pub(crate) fn session(row: &impl ReadRow) -> Result<Session, DomainError> {
    const TABLE: &str = "sessions";
    let label = |name: &'static str| -> Result<Label, DomainError> {
        Label::parse(name, &text(row, TABLE, name)?).map_err(|e| corrupt(TABLE, e))
    };
    Ok(Session {
        id: row.id("id")?,
        template_id: row.id("template_id")?,
        workspace_id: label("workspace_id")?,
        base_commit_oid: label("base_commit_oid")?,
        worktree_path: WorktreePath::from_stored(text(row, TABLE, "worktree_path")?),
        status: SessionStatus::parse(&text(row, TABLE, "status")?).map_err(|e| corrupt(TABLE, e))?,
        created_at: at(row, TABLE, "created_at")?,
        closed_at: row.at("closed_at")?,
        last_error: row.free_text("last_error")?,
        forked_from: row.nullable_id("forked_from")?,
        node_id: row.nullable_id("node_id")?,
    })
}

/// A `status, n` row of sessions counted by status.
pub(crate) fn status_count(row: &impl ReadRow) -> Result<(SessionStatus, u64), DomainError> {
    const TABLE: &str = "sessions";
    let status = SessionStatus::parse(&text(row, TABLE, "status")?).map_err(|e| corrupt(TABLE, e))?;
    let n = row.int("n")?;
    Ok((status, u64::try_from(n).map_err(|_| corrupt(TABLE, format!("negative count {n}")))?))
}

pub(crate) const EXECUTION_COLUMNS: &str = "id, session_id, kind, input, path, args, env, status, started_at, \
                                            ended_at, result, error, duration_ms, event_count, output_bytes";

/// An `executions` row.
pub(crate) fn execution(row: &impl ReadRow) -> Result<Execution, DomainError> {
    const TABLE: &str = "executions";
    let count = |column: &str| -> Result<u64, DomainError> {
        let raw = row.int(column)?;
        u64::try_from(raw).map_err(|_| corrupt(TABLE, format!("negative metric {raw}")))
    };
    let kind = text(row, TABLE, "kind")?;
    let status = text(row, TABLE, "status")?;
    Ok(Execution {
        id: row.id("id")?,
        session_id: row.id("session_id")?,
        kind: ExecutionKind::parse(&kind).ok_or_else(|| corrupt(TABLE, format!("unknown kind {kind:?}")))?,
        input: row.free_text("input")?,
        path: row.text("path")?,
        args: required(TABLE, "args", row.json("args")?)?,
        env: required(TABLE, "env", row.json("env")?)?,
        status: ExecutionStatus::parse(&status).ok_or_else(|| corrupt(TABLE, format!("unknown status {status:?}")))?,
        started_at: at(row, TABLE, "started_at")?,
        ended_at: row.at("ended_at")?,
        result: row.json("result")?,
        error: row.json("error")?,
        metrics: Metrics {
            duration_ms: count("duration_ms")?,
            event_count: count("event_count")?,
            output_bytes: count("output_bytes")?,
        },
    })
}

/// An `execution_events` row; `type` is selected as `type_name`.
pub(crate) fn event(row: &impl ReadRow) -> Result<Event, DomainError> {
    const TABLE: &str = "execution_events";
    let payload = required(TABLE, "payload", row.json("payload")?)?;
    Ok(Event {
        execution_id: row.id("execution_id")?,
        seq: row.int("seq")?,
        ts: at(row, TABLE, "ts")?,
        payload: EventPayload::from_parts(&text(row, TABLE, "type_name")?, payload).map_err(|e| corrupt(TABLE, e))?,
    })
}

pub(crate) const TOKEN_COLUMNS: &str = "id, name, scopes, created_at, last_used_at, expires_at, revoked_at";

/// An `api_tokens` row, without its secret digest; `scopes` is a JSON
/// array of scope names.
pub(crate) fn token(row: &impl ReadRow) -> Result<Token, DomainError> {
    const TABLE: &str = "api_tokens";
    let scopes: Vec<String> = required(TABLE, "scopes", row.json("scopes")?)?;
    Ok(Token {
        id: row.id("id")?,
        name: TokenName::from_stored(text(row, TABLE, "name")?),
        scopes: scopes
            .iter()
            .map(|s| Scope::parse(s, "scopes").map_err(|e| corrupt(TABLE, e)))
            .collect::<Result<_, _>>()?,
        created_at: at(row, TABLE, "created_at")?,
        last_used_at: row.at("last_used_at")?,
        expires_at: row.at("expires_at")?,
        revoked_at: row.at("revoked_at")?,
    })
}

/// A `NOT NULL` column that came back `NULL`.
fn required<T>(table: &'static str, column: &str, value: Option<T>) -> Result<T, DomainError> {
    value.ok_or_else(|| corrupt(table, format!("{column} is NULL")))
}

fn text(row: &impl ReadRow, table: &'static str, column: &str) -> Result<String, DomainError> {
    required(table, column, row.text(column)?)
}

fn at(row: &impl ReadRow, table: &'static str, column: &str) -> Result<Timestamp, DomainError> {
    required(table, column, row.at(column)?)
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

/// A row that does not convert: the database holds what the store never
/// writes.
pub(crate) fn corrupt(table: &'static str, detail: impl Display) -> DomainError {
    StoreError::CorruptRow { table, detail: detail.to_string() }.into()
}

/// Parses stored RFC 3339 text (see [`timestamp_text`]).
pub(crate) fn parse_instant(text: &str) -> Result<Timestamp, String> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|e| format!("instant {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use uuid::Uuid;

    use super::*;

    /// A row as SQLite returns it: every column text (or absent, `NULL`).
    struct TextRow(HashMap<&'static str, &'static str>);

    impl ReadRow for TextRow {
        fn nullable_id<T: From<Uuid>>(&self, column: &str) -> Result<Option<T>, DomainError> {
            self.text(column)?.map(|text| Uuid::parse_str(&text).map(T::from).map_err(|e| corrupt("t", e))).transpose()
        }
        fn text(&self, column: &str) -> Result<Option<String>, DomainError> {
            Ok(self.0.get(column).map(|v| v.to_string()))
        }
        fn free_text(&self, column: &str) -> Result<Option<String>, DomainError> {
            self.text(column)
        }
        fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<Option<T>, DomainError> {
            self.0.get(column).map(|v| serde_json::from_str(v).map_err(|e| corrupt("t", e))).transpose()
        }
        fn at(&self, column: &str) -> Result<Option<Timestamp>, DomainError> {
            self.0.get(column).map(|v| parse_instant(v).map_err(|e| corrupt("t", e))).transpose()
        }
        fn int(&self, column: &str) -> Result<i64, DomainError> {
            self.json::<i64>(column)?.ok_or_else(|| corrupt("t", "NULL"))
        }
        fn flag(&self, column: &str) -> Result<bool, DomainError> {
            self.json::<bool>(column)?.ok_or_else(|| corrupt("t", "NULL"))
        }
    }

    const ID: &str = "6a1f0b4e-2f7d-4c1e-9d51-0c7f7f0a9c11";

    #[test]
    fn stored_instants_have_fixed_width_and_keep_microseconds() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid instant");
        let text = timestamp_text(at);
        assert_eq!(text, "2023-11-14T22:13:20.123456Z");
        let back = parse_instant(&text).expect("parses");
        assert_eq!(back.timestamp_subsec_nanos(), 123_456_000);
        let whole = DateTime::from_timestamp(1_700_000_000, 0).expect("valid instant");
        assert_eq!(timestamp_text(whole), "2023-11-14T22:13:20.000000Z");
    }

    #[test]
    fn a_row_with_a_bad_status_is_an_internal_error() {
        let row = TextRow(HashMap::from([
            ("id", ID),
            ("template_id", ID),
            ("workspace_id", "ws"),
            ("base_commit_oid", "abc"),
            ("worktree_path", "/tmp"),
            ("status", "zombie"),
            ("created_at", "2023-11-14T22:13:20.000000Z"),
        ]));
        assert_eq!(session(&row).unwrap_err().code(), "INTERNAL");
    }

    #[test]
    fn a_session_row_reads_forked_from_when_set_and_none_when_null() {
        let mut columns = HashMap::from([
            ("id", ID),
            ("template_id", ID),
            ("workspace_id", "ws"),
            ("base_commit_oid", "abc"),
            ("worktree_path", "/tmp"),
            ("status", "ready"),
            ("created_at", "2023-11-14T22:13:20.000000Z"),
        ]);
        assert_eq!(session(&TextRow(columns.clone())).unwrap().forked_from, None);
        columns.insert("forked_from", ID);
        assert_eq!(session(&TextRow(columns.clone())).unwrap().forked_from.map(|id| id.to_string()), Some(ID.into()));
        columns.insert("forked_from", "not-a-uuid");
        assert_eq!(session(&TextRow(columns)).unwrap_err().code(), "INTERNAL");
    }

    #[test]
    fn a_token_row_with_an_unknown_scope_is_an_internal_error() {
        let row = TextRow(HashMap::from([
            ("id", ID),
            ("name", "ci"),
            ("scopes", r#"["read","root"]"#),
            ("created_at", "2023-11-14T22:13:20.000000Z"),
        ]));
        assert_eq!(token(&row).unwrap_err().code(), "INTERNAL");
    }

    #[test]
    fn a_null_in_a_required_column_is_an_internal_error_not_a_panic() {
        let row = TextRow(HashMap::from([("id", ID), ("name", "ci"), ("created_at", "2023-11-14T22:13:20.000000Z")]));
        let err = token(&row).unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
    }

    #[test]
    fn scopes_are_stored_as_a_json_array_of_names_in_order() {
        assert_eq!(scopes_json(&[Scope::Admin, Scope::Read]), r#"["admin","read"]"#);
    }
}
