//! Nodes: the daemon processes that serve one database. Each registers a
//! row when it starts and renews a lease while it lives; a node whose lease
//! runs out is `lost`, and another node fails its sessions over. A session
//! belongs to the node that runs its worker.

use std::fmt;
use std::time::Duration;

use crate::ids::NodeId;
use crate::{DomainError, Timestamp};

/// `live` while the node renews its lease; `lost` once it stopped, was
/// killed or could not renew in time. A lost node never comes back: a
/// restarted daemon is a new node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeStatus {
    Live,
    Lost,
}

impl NodeStatus {
    pub const ALL: [NodeStatus; 2] = [Self::Live, Self::Lost];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Lost => "lost",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| DomainError::validation("status", format!("status must be live or lost; got {raw:?}")))
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One daemon process as the database knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: NodeId,
    /// Where the other nodes reach it (`--advertise-url`).
    pub url: String,
    pub version: String,
    pub status: NodeStatus,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    pub lease_expires_at: Timestamp,
    pub lost_at: Option<Timestamp>,
    /// Live sessions it runs at most (`--max-sessions`).
    pub max_sessions: u32,
    /// Its sessions that claim to be live (`starting`, `ready`), counted
    /// when the row was read.
    pub active_sessions: u32,
}

impl Node {
    /// Room for more sessions; never negative.
    pub fn free_capacity(&self) -> u32 {
        self.max_sessions.saturating_sub(self.active_sessions)
    }

    /// Whether its lease ran out before `now`.
    pub fn lease_expired(&self, now: Timestamp) -> bool {
        self.lease_expires_at < now
    }
}

/// What a daemon says of itself when it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub url: String,
    pub version: String,
    pub max_sessions: u32,
    /// How long the lease lasts without renewal; renewed every quarter of it.
    pub lease: Duration,
    /// Whether this daemon holds the database alone (SQLite's lock): every
    /// other node is then known to be gone.
    pub exclusive: bool,
}

impl NodeConfig {
    /// How often the lease is renewed and lost nodes are looked for.
    pub fn heartbeat(&self) -> Duration {
        self.lease / 4
    }
}
