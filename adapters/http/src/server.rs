//! The HTTP server loop: accepts TCP connections up to a cap, serves each
//! with hyper under header-read, idle and body-read deadlines, and backs off
//! instead of spinning when the process runs out of file descriptors.

use std::time::Duration;

/// The connection limits of `serve` (see `vm-system serve --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's header must arrive within this time of its first byte
    /// (or of the connection's start).
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// A request's body must arrive within this time of its header.
    pub body_read_timeout: Duration,
    /// Connections served at once; past it, new ones wait in the backlog.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}
