//! Sessions: live runtimes made from a template and bound to a worktree.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, SessionId, TemplateId};
use crate::paths::WorktreePath;
use crate::{DomainError, Timestamp};

/// `starting → ready → closed`, or `→ crashed` when the runtime fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    Starting,
    Ready,
    Crashed,
    Closed,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 4] = [Self::Starting, Self::Ready, Self::Crashed, Self::Closed];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Crashed => "crashed",
            Self::Closed => "closed",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
            DomainError::validation(
                "status",
                format!("status must be one of starting, ready, crashed, closed; got {raw:?}"),
            )
        })
    }

    /// Whether a runtime may still be alive for a session in this state.
    pub fn claims_live(&self) -> bool {
        matches!(self, Self::Starting | Self::Ready)
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A git-ish label of the workspace a session works on; free text, required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Label(String);

impl Label {
    pub const MAX_LEN: usize = 512;

    pub fn parse(field: &str, raw: &str) -> Result<Self, DomainError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(DomainError::validation(field, format!("{field} is required and must not be blank")));
        }
        if value.chars().count() > Self::MAX_LEN || value.chars().any(char::is_control) {
            return Err(DomainError::validation(
                field,
                format!("{field} must be at most {} printable characters", Self::MAX_LEN),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub template_id: TemplateId,
    pub workspace_id: Label,
    pub base_commit_oid: Label,
    pub worktree_path: WorktreePath,
    pub status: SessionStatus,
    pub created_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The session whose live heap this one started as a copy of.
    pub forked_from: Option<SessionId>,
    /// The node that runs (or ran) the session's worker; `None` for rows
    /// written before nodes existed.
    pub node_id: Option<NodeId>,
}

/// What it takes to create a session, parsed but for the worktree: whether a
/// path may be a worktree depends on the disk and on the daemon's worktree
/// roots, so the session service parses and checks it
/// ([`WorktreePath::parse`], then its `WorktreePolicy`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpec {
    pub template_id: TemplateId,
    pub workspace_id: Label,
    pub base_commit_oid: Label,
    /// As the caller wrote it.
    pub worktree_path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_from_their_names_and_others_are_refused() {
        for status in SessionStatus::ALL {
            assert_eq!(SessionStatus::parse(status.as_str()).unwrap(), status);
        }
        assert_eq!(SessionStatus::parse("READY").unwrap_err().code(), "VALIDATION_ERROR");
    }

    #[test]
    fn labels_are_required() {
        assert_eq!(Label::parse("workspace_id", " ").unwrap_err().code(), "VALIDATION_ERROR");
        assert_eq!(Label::parse("workspace_id", " ws-1 ").unwrap().as_str(), "ws-1");
    }
}
