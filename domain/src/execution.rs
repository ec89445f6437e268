//! Executions: one REPL snippet, one file run, or one startup file.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{ExecutionId, SessionId};
use crate::{DomainError, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionKind {
    Repl,
    RunFile,
    Startup,
}

impl ExecutionKind {
    pub const ALL: [ExecutionKind; 3] = [Self::Repl, Self::RunFile, Self::Startup];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Repl => "repl",
            Self::RunFile => "run_file",
            Self::Startup => "startup",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    Running,
    Ok,
    Error,
    Timeout,
    Cancelled,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 5] = [Self::Running, Self::Ok, Self::Error, Self::Timeout, Self::Cancelled];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an execution cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub duration_ms: u64,
    pub event_count: u64,
    pub output_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: ExecutionId,
    pub session_id: SessionId,
    pub kind: ExecutionKind,
    /// The snippet (repl) or `None`.
    pub input: Option<String>,
    /// The script path (run_file, startup) or `None`.
    pub path: Option<String>,
    /// Script arguments, reaching JavaScript as `__ARGS__`.
    pub args: Map<String, Value>,
    /// Script environment, reaching JavaScript as `__ENV__`.
    pub env: BTreeMap<String, String>,
    pub status: ExecutionStatus,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// The completion value's JSON form (or preview) when it ended `ok`.
    pub result: Option<Value>,
    /// `{"code", "message"}` when it did not end `ok`.
    pub error: Option<Value>,
    pub metrics: Metrics,
}

/// How many executions a listing returns, 1..=[`ListLimit::MAX`]; default 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimit(u32);

impl ListLimit {
    pub const DEFAULT: u32 = 50;
    pub const MAX: u32 = 1000;

    pub fn parse(raw: Option<i64>) -> Result<Self, DomainError> {
        match raw {
            None => Ok(Self(Self::DEFAULT)),
            Some(n) if n >= 1 && n <= Self::MAX as i64 => Ok(Self(n as u32)),
            Some(n) => {
                Err(DomainError::validation("limit", format!("limit must be between 1 and {}, got {n}", Self::MAX)))
            }
        }
    }

    pub fn get(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_limits_default_to_fifty_and_must_be_positive() {
        assert_eq!(ListLimit::parse(None).unwrap().get(), 50);
        assert_eq!(ListLimit::parse(Some(1)).unwrap().get(), 1);
        for bad in [0, -1, 1001] {
            assert_eq!(ListLimit::parse(Some(bad)).unwrap_err().code(), "VALIDATION_ERROR", "{bad}");
        }
    }
}
