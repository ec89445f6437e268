-- Nodes, PostgreSQL dialect: the same tables as migrations/sqlite/0004_nodes.sql.
--
-- `nodes`: one row per daemon process that served this database. A node
-- renews `heartbeat_at` and `lease_expires_at` while it lives; `status`
-- becomes 'lost' when it stops or another node finds its lease expired
-- (`lost_at` says when). Rows stay, as a record.
CREATE TABLE nodes (
    pk               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               uuid        NOT NULL UNIQUE,
    url              text        NOT NULL,
    version          text        NOT NULL,
    status           text        NOT NULL,
    started_at       timestamptz NOT NULL,
    heartbeat_at     timestamptz NOT NULL,
    lease_expires_at timestamptz NOT NULL,
    lost_at          timestamptz,
    max_sessions     bigint      NOT NULL
);

CREATE INDEX nodes_by_status_lease ON nodes (status, lease_expires_at);

-- Secrets every node shares: 'node_credential' authenticates forwarded
-- requests between nodes.
CREATE TABLE cluster_secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);

-- The node that runs the session's worker; NULL for rows from before nodes.
ALTER TABLE sessions ADD COLUMN node_id uuid;
CREATE INDEX sessions_by_node_status ON sessions (node_id, status);
