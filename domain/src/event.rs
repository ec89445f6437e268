//! Events: the ordered, typed stream every execution records.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::ExecutionId;
use crate::Timestamp;

/// Console method that produced a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleLevel {
    Log,
    Info,
    Warn,
    Error,
    Debug,
}

/// Severity of a system message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemLevel {
    Info,
    Warn,
    Error,
}

/// What happened; serialised as `{"type": ..., "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum EventPayload {
    /// The snippet, or the file path, that was run.
    InputEcho {
        text: String,
    },
    Console {
        level: ConsoleLevel,
        text: String,
    },
    /// The completion value: its type, a REPL-like preview, and its JSON form
    /// when it has one.
    Value {
        #[serde(rename = "type")]
        kind: String,
        preview: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        json: Option<Value>,
    },
    Exception {
        message: String,
        stack: String,
    },
    System {
        message: String,
        level: SystemLevel,
    },
    Stdout {
        text: String,
    },
    Stderr {
        text: String,
    },
    /// A `fetch` the daemon performed for the script, or refused (SPEC §11),
    /// recorded by the daemon itself. `url` is what the script asked for;
    /// `final_url` where the response came from when redirects were
    /// followed. `status` is `None` when no response came (refused, failed,
    /// too large, timed out), and then `code` (`ERR_HOST_NOT_ALLOWED` …)
    /// and `error` say why. `bytes` counts the response body received;
    /// `ms` the time from the request to its answer.
    Fetch {
        method: String,
        url: String,
        #[serde(default)]
        final_url: Option<String>,
        #[serde(default)]
        status: Option<u16>,
        bytes: u64,
        ms: u64,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        error: Option<String>,
    },
}

impl EventPayload {
    /// The event's type name as stored and shown.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::InputEcho { .. } => "input_echo",
            Self::Console { .. } => "console",
            Self::Value { .. } => "value",
            Self::Exception { .. } => "exception",
            Self::System { .. } => "system",
            Self::Stdout { .. } => "stdout",
            Self::Stderr { .. } => "stderr",
            Self::Fetch { .. } => "fetch",
        }
    }

    /// The payload object alone, without the type tag.
    pub fn payload_json(&self) -> Value {
        let mut tagged = serde_json::to_value(self).expect("event payloads always serialise");
        tagged.get_mut("payload").map(Value::take).unwrap_or(Value::Null)
    }

    /// Rebuilds a payload from its type name and payload object.
    pub fn from_parts(type_name: &str, payload: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "type": type_name, "payload": payload }))
    }

    /// Bytes of user-visible output this event carries, for output limits.
    /// A `fetch` event is a record of the daemon's, not output: it counts
    /// as an event (`max_events`) but carries no output bytes.
    pub fn output_bytes(&self) -> usize {
        match self {
            Self::Console { text, .. } | Self::Stdout { text } | Self::Stderr { text } => text.len(),
            Self::Value { preview, .. } => preview.len(),
            Self::Exception { message, stack } => message.len() + stack.len(),
            Self::InputEcho { .. } | Self::System { .. } | Self::Fetch { .. } => 0,
        }
    }
}

/// One recorded event: `seq` is 1, 2, 3 … within its execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub execution_id: ExecutionId,
    pub seq: i64,
    pub ts: Timestamp,
    pub payload: EventPayload,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_through_type_name_and_object() {
        let cases = [
            EventPayload::InputEcho { text: "1+1".into() },
            EventPayload::Console { level: ConsoleLevel::Warn, text: "careful".into() },
            EventPayload::Value { kind: "number".into(), preview: "2".into(), json: Some(2.into()) },
            EventPayload::Value { kind: "function".into(), preview: "[Function: f]".into(), json: None },
            EventPayload::Exception { message: "TypeError: x".into(), stack: "at <eval>".into() },
            EventPayload::System { message: "stopped".into(), level: SystemLevel::Error },
            EventPayload::Stdout { text: "out".into() },
            EventPayload::Stderr { text: "err".into() },
            EventPayload::Fetch {
                method: "GET".into(),
                url: "http://api.example.com/a".into(),
                final_url: Some("http://api.example.com/b".into()),
                status: Some(200),
                bytes: 12,
                ms: 3,
                code: None,
                error: None,
            },
            EventPayload::Fetch {
                method: "POST".into(),
                url: "http://example.invalid/".into(),
                final_url: None,
                status: None,
                bytes: 0,
                ms: 0,
                code: Some("ERR_HOST_NOT_ALLOWED".into()),
                error: Some("example.invalid is not in the allow list".into()),
            },
        ];
        for payload in cases {
            let back = EventPayload::from_parts(payload.type_name(), payload.payload_json()).unwrap();
            assert_eq!(back, payload);
        }
    }

    #[test]
    fn fetch_payloads_spell_out_absent_fields_as_null() {
        let refused = EventPayload::Fetch {
            method: "GET".into(),
            url: "ftp://x/".into(),
            final_url: None,
            status: None,
            bytes: 0,
            ms: 1,
            code: Some("ERR_SCHEME_NOT_ALLOWED".into()),
            error: Some("only http and https".into()),
        };
        assert_eq!(
            refused.payload_json(),
            serde_json::json!({"method": "GET", "url": "ftp://x/", "final_url": null, "status": null, "bytes": 0,
                "ms": 1, "code": "ERR_SCHEME_NOT_ALLOWED", "error": "only http and https"})
        );
        assert_eq!(refused.output_bytes(), 0);
    }

    #[test]
    fn value_payloads_use_type_as_the_field_name() {
        let v = EventPayload::Value { kind: "string".into(), preview: "'a'".into(), json: Some("a".into()) };
        assert_eq!(v.payload_json(), serde_json::json!({"type": "string", "preview": "'a'", "json": "a"}));
    }
}
