-- Nodes: one row per daemon process that served this database. A node
-- renews `heartbeat_at` and `lease_expires_at` while it lives; `status`
-- becomes 'lost' when it stops or another node finds its lease expired
-- (`lost_at` says when). Rows stay, as a record. On SQLite one daemon holds
-- the file at a time (a lock file beside it), so at most one node is live.
CREATE TABLE nodes (
    pk               INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    url              TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    started_at       TEXT    NOT NULL,
    heartbeat_at     TEXT    NOT NULL,
    lease_expires_at TEXT    NOT NULL,
    lost_at          TEXT,
    max_sessions     INTEGER NOT NULL
);

CREATE INDEX nodes_by_status_lease ON nodes (status, lease_expires_at);

-- Secrets every node shares: 'node_credential' authenticates forwarded
-- requests between nodes.
CREATE TABLE cluster_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The node that runs the session's worker; NULL for rows from before nodes.
ALTER TABLE sessions ADD COLUMN node_id TEXT;
CREATE INDEX sessions_by_node_status ON sessions (node_id, status);
