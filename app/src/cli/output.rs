//! How client commands print: `-o text|json|yaml`, `-q` (ids only), aligned
//! tables and key/value blocks, and the exit codes. JSON and YAML print the
//! API object exactly as the daemon sent it.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::client::{Client, ClientError};

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables for lists, key/value blocks for single objects.
    Text,
    /// The API object, pretty-printed JSON.
    Json,
    /// The API object as YAML.
    Yaml,
}

/// Exit codes of every client command (documented in `help cli-command-reference`).
pub mod exit {
    /// The daemon answered with an error, or an execution did not end `ok`.
    pub const FAILED: i32 = 1;
    /// Bad arguments (clap's own usage errors use 2 as well).
    pub const USAGE: i32 = 2;
    /// Nothing answered at the server URL.
    pub const UNREACHABLE: i32 = 3;
}

/// Why a client command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Bad input found before anything was sent.
    #[error("{0}")]
    Usage(String),
    /// An execution ran but did not end `ok`; its output is already printed.
    #[error("execution did not end ok")]
    NotOk,
    /// Anything else (reading stdin, writing output).
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

pub type Outcome = Result<(), Failure>;

/// What every client command gets: the client and how to print.
pub struct Ctx {
    pub client: Client,
    pub format: Format,
    pub quiet: bool,
}

impl Ctx {
    /// Prints one result: `raw` in JSON/YAML, `text()` in text mode, or with
    /// `-q` the lines of `ids()` (ids, or names for lists of names).
    pub fn show(&self, raw: &Value, text: impl FnOnce() -> String, ids: impl FnOnce() -> Vec<String>) -> Outcome {
        if self.quiet {
            let ids = ids();
            if !ids.is_empty() {
                stdout(&format!("{}\n", ids.join("\n")));
            }
            return Ok(());
        }
        match self.format {
            Format::Text => stdout(&text()),
            Format::Json | Format::Yaml if raw.is_null() => {}
            Format::Json => stdout(&format!("{}\n", to_json(raw))),
            Format::Yaml => stdout(&to_yaml(raw)),
        }
        Ok(())
    }
}

pub fn to_json(raw: &Value) -> String {
    serde_json::to_string_pretty(raw).expect("a JSON value always serialises")
}

pub fn to_yaml(raw: &Value) -> String {
    serde_yaml_ng::to_string(raw).expect("a JSON value always serialises as YAML")
}

/// Writes to stdout and flushes; a closed pipe (`| head`) ends the process
/// quietly instead of panicking.
pub fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Writes to stderr and flushes.
pub fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// Turns a command's outcome into the process's exit: prints the failure on
/// stderr and exits with its documented code (which `main`'s success/failure
/// mapping cannot express); returns `Ok` on success.
pub fn finish(outcome: Outcome) -> anyhow::Result<()> {
    let code = match outcome {
        Ok(()) => return Ok(()),
        Err(Failure::Client(ClientError::Api { code, message, details, retry_after, .. })) => {
            let hint = hint_for(&code, &details, retry_after).map(|h| format!("hint: {h}\n")).unwrap_or_default();
            stderr(&format!("{code}: {message}\n{}{hint}", details_lines(&details, &message)));
            exit::FAILED
        }
        Err(Failure::Client(err @ ClientError::Unreachable { .. })) => {
            stderr(&format!("error: {err}\n"));
            exit::UNREACHABLE
        }
        Err(Failure::Client(err @ ClientError::BadUrl { .. })) => {
            stderr(&format!("error: {err}\n"));
            exit::USAGE
        }
        Err(Failure::Usage(message)) => {
            stderr(&format!("error: {message}\n"));
            exit::USAGE
        }
        Err(Failure::NotOk) => exit::FAILED,
        Err(err @ (Failure::Client(ClientError::Protocol { .. }) | Failure::Other(_))) => {
            stderr(&format!("error: {err}\n"));
            exit::FAILED
        }
    };
    std::process::exit(code);
}

/// What to do about an error. A store outage (`STORE_UNAVAILABLE`,
/// `STORAGE_FULL`): wait `Retry-After` seconds or free disk space; and, when
/// the error names an execution, that it ran and must not be run again. A
/// cancel that came too late (`EXECUTION_NOT_RUNNING`): how to see how the
/// execution ended. `None` for other codes.
fn hint_for(code: &str, details: &Value, retry_after: Option<u64>) -> Option<String> {
    let execution = details.get("execution_id").and_then(Value::as_str);
    let hint = match (code, execution) {
        ("EXECUTION_NOT_RUNNING", Some(id)) => {
            format!("execution {id} has already ended; `vm-system exec get {id}` shows how")
        }
        ("STORE_UNAVAILABLE" | "STORAGE_FULL", Some(id)) => format!(
            "execution {id} ran and the daemon stores it as soon as it can; do not run it again \
             (`vm-system exec get {id}` shows it once stored)"
        ),
        ("STORE_UNAVAILABLE", None) => {
            let wait = retry_after.map_or_else(|| "in a moment".to_owned(), |s| format!("after {s} s"));
            format!("the daemon's database is not answering; retry {wait} (`vm-system ops ready` says when it is back)")
        }
        ("STORAGE_FULL", None) => {
            "the disk holding the daemon's database is full; free space on the daemon's machine and retry".to_owned()
        }
        _ => return None,
    };
    Some(hint)
}

/// Scalar details of an API error that its message does not already say, as
/// indented `key: value` lines: e.g. the `execution_id` of a limit error.
fn details_lines(details: &Value, message: &str) -> String {
    let Some(map) = details.as_object() else { return String::new() };
    let mut lines = String::new();
    for (key, value) in map {
        let shown = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            Value::Array(items) if items.iter().all(|i| i.is_string()) => {
                items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
            }
            _ => continue,
        };
        if shown.is_empty() || message.contains(&shown) {
            continue;
        }
        lines.push_str(&format!("  {key}: {}\n", one_line(&shown)));
    }
    lines
}

// ---------------------------------------------------------------- text shapes

/// An aligned table: a header row, then one row per item; columns are
/// separated by two spaces and the last column is not padded.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self { headers: headers.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells.into_iter().map(|c| one_line(&c)).collect());
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len() - 1;
            let mut out = String::new();
            for (i, cell) in cells.into_iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
                }
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
            out
        };
        let mut out = line(self.headers.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

/// A key/value block with the values aligned: `key:   value`.
pub fn block(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let pad = " ".repeat(width - key.chars().count() + 2);
        out.push_str(&format!("{key}:{pad}{}\n", one_line(value)).replace(" \n", "\n"));
    }
    out
}

/// Timestamps in text output: RFC 3339, UTC, whole seconds.
pub fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn time_or_dash(at: &Option<DateTime<Utc>>) -> String {
    at.as_ref().map(time).unwrap_or_else(|| "-".into())
}

pub fn or_dash(value: &Option<String>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.clone(),
        _ => "-".into(),
    }
}

/// A list as `a, b, c`, or `-` when empty.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

/// Newlines and tabs shown as `\n` and `\t`, so one item stays on one line.
pub fn one_line(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r").replace('\t', "\\t")
}

/// At most `max` characters, with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_leave_no_trailing_spaces() {
        let mut table = Table::new(&["ID", "NAME", "NOTE"]);
        table.row(vec!["1".into(), "a long name".into(), "".into()]);
        table.row(vec!["22".into(), "b".into(), "two\nlines".into()]);
        assert_eq!(table.render(), "ID  NAME         NOTE\n1   a long name\n22  b            two\\nlines\n");
    }

    #[test]
    fn blocks_align_values_after_the_longest_key() {
        assert_eq!(block(&[("id", "1".into()), ("status", "ok".into())]), "id:      1\nstatus:  ok\n");
    }

    #[test]
    fn store_outages_say_when_to_retry_and_that_a_named_execution_is_not_lost() {
        let none = serde_json::json!({ "reason": "pool timed out" });
        let unavailable = hint_for("STORE_UNAVAILABLE", &none, Some(2)).unwrap();
        assert!(unavailable.contains("retry after 2 s"), "{unavailable}");
        assert!(hint_for("STORE_UNAVAILABLE", &none, None).unwrap().contains("retry in a moment"));
        assert!(hint_for("STORAGE_FULL", &none, None).unwrap().contains("free space"));
        let ran = serde_json::json!({ "reason": "disk full", "execution_id": "e-1" });
        for code in ["STORE_UNAVAILABLE", "STORAGE_FULL"] {
            let hint = hint_for(code, &ran, Some(2)).unwrap();
            assert!(hint.contains("execution e-1 ran") && hint.contains("do not run it again"), "{hint}");
        }
        assert_eq!(hint_for("SESSION_BUSY", &ran, Some(2)), None);
    }

    #[test]
    fn a_cancel_that_came_too_late_says_how_to_see_the_end() {
        let details = serde_json::json!({ "execution_id": "e-1", "status": "ok" });
        let late = hint_for("EXECUTION_NOT_RUNNING", &details, None).unwrap();
        assert!(late.contains("already ended") && late.contains("vm-system exec get e-1"), "{late}");
    }

    #[test]
    fn error_details_show_scalars_and_lists_the_message_does_not_already_say() {
        let details = serde_json::json!({"allowed": ["fs", "exec"], "name": "json", "nested": {"x": 1}});
        assert_eq!(details_lines(&details, "module \"yaml\" is not allowed"), "  allowed: fs, exec\n  name: json\n");
        assert_eq!(details_lines(&details, "module \"json\" is not allowed"), "  allowed: fs, exec\n");
    }
}
