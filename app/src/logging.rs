//! Log lines on stderr: readable text, or (`serve --log-format json`) one flat
//! JSON object per line for log shippers and `jq`.
//!
//! A JSON line holds `timestamp` (RFC 3339, UTC), `level`, `target` and
//! `message` first, then the fields of every span the line was logged in
//! (outermost first: `request_id`, `method` and `path` of the request,
//! `session_id`, `execution_id`) and the event's own fields, all at the top
//! level, and `spans`: the names of those spans. A field whose name is one of
//! the fixed keys is kept as `field.<name>`; an inner span's or the event's
//! field wins over an outer one of the same name.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, span fields flattened.
    Json,
}

/// Installs the global subscriber: `level` is a filter (`info`,
/// `warn,vm_http=debug`…; an invalid one falls back to `info`).
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.with_ansi(false).fmt_fields(JsonFields::new()).event_format(FlatJson).init(),
    }
}

/// The keys every JSON line starts with; fields of these names are renamed.
const FIXED_KEYS: [&str; 5] = ["timestamp", "level", "target", "message", "spans"];

/// Formats an event as one flat JSON object (see the module doc). Span
/// fields are read back from what the field formatter stored, which must
/// be [`JsonFields`].
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Map::new();
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                spans.push(Value::from(span.name()));
                let extensions = span.extensions();
                let stored = extensions.get::<FormattedFields<N>>().map(|f| f.fields.as_str()).unwrap_or("");
                if let Ok(Value::Object(span_fields)) = serde_json::from_str::<Value>(stored) {
                    fields.extend(span_fields);
                }
            }
        }
        let mut own = EventFields::default();
        event.record(&mut own);
        fields.extend(own.fields);

        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let target = own.log_target.unwrap_or_else(|| event.metadata().target().to_owned());
        let mut line = Line::default();
        line.push("timestamp", &Value::from(timestamp));
        line.push("level", &Value::from(event.metadata().level().as_str()));
        line.push("target", &Value::from(target));
        line.push("message", &Value::from(own.message.unwrap_or_default()));
        for (name, value) in &fields {
            if FIXED_KEYS.contains(&name.as_str()) {
                line.push(&format!("field.{name}"), value);
            } else {
                line.push(name, value);
            }
        }
        if !spans.is_empty() {
            line.push("spans", &Value::Array(spans));
        }
        writeln!(writer, "{}}}", line.0)
    }
}

/// A JSON object written key by key, in order.
#[derive(Default)]
struct Line(String);

impl Line {
    fn push(&mut self, key: &str, value: &Value) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(&Value::from(key).to_string());
        self.0.push(':');
        self.0.push_str(&value.to_string());
    }
}

/// An event's fields as JSON values; `message` and the `log` crate's
/// `log.*` metadata fields apart.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    log_target: Option<String>,
    fields: Map<String, Value>,
}

impl EventFields {
    fn insert(&mut self, field: &Field, value: Value) {
        let text = || match &value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        match field.name() {
            "message" => self.message = Some(text()),
            "log.target" => self.log_target = Some(text()),
            name if name.starts_with("log.") => {}
            name => {
                self.fields.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, Value::from(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the subscriber wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `log` writes at level trace and above, as written.
    fn raw_lines(log: impl FnOnce()) -> Vec<String> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    /// The JSON lines `log` writes at level trace and above.
    fn json_lines(log: impl FnOnce()) -> Vec<Value> {
        let lines = raw_lines(log);
        lines.iter().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
    }

    #[test]
    fn a_line_has_the_fixed_keys_then_span_and_event_fields_flattened() {
        let raw = raw_lines(|| {
            let request = tracing::error_span!("request", request_id = "r-1", method = "POST");
            let _request = request.enter();
            let execution = tracing::error_span!("execution", execution_id = %"e-1");
            let _execution = execution.enter();
            tracing::info!(events = 3, ok = true, reason = ?"slow", "execution ended");
        });
        assert!(raw[0].starts_with(r#"{"timestamp":""#), "{}", raw[0]);
        let at = |key: &str| raw[0].find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {}", raw[0]));
        assert!(at("level") < at("target") && at("target") < at("message"), "the fixed keys come first: {}", raw[0]);
        assert!(at("message") < at("request_id"), "{}", raw[0]);
        let line: Value = serde_json::from_str(&raw[0]).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["message"], "execution ended");
        assert!(chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str().unwrap()).is_ok(), "{line}");
        assert_eq!(
            (&line["request_id"], &line["method"], &line["execution_id"]),
            (&"r-1".into(), &"POST".into(), &"e-1".into())
        );
        assert_eq!((&line["events"], &line["ok"], &line["reason"]), (&3.into(), &true.into(), &"\"slow\"".into()));
        assert_eq!(line["spans"], serde_json::json!(["request", "execution"]));
    }

    #[test]
    fn a_line_outside_spans_has_no_spans_and_fields_never_replace_the_fixed_keys() {
        let lines = json_lines(|| {
            let session = tracing::error_span!("session", session_id = "outer");
            session.in_scope(|| {
                let inner = tracing::error_span!("worker", session_id = "inner");
                inner.in_scope(|| tracing::warn!(level = 7, "collides"));
            });
            tracing::debug!("plain \"quoted\"\nline");
        });
        assert_eq!(lines[0]["level"], "WARN");
        assert_eq!(lines[0]["field.level"], 7);
        assert_eq!(lines[0]["session_id"], "inner", "the inner span wins");
        assert_eq!(lines[1]["message"], "plain \"quoted\"\nline");
        assert!(lines[1].get("spans").is_none(), "{}", lines[1]);
    }
}
