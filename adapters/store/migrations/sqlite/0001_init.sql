-- The vm-system schema, SQLite dialect.
--
-- Ids are UUIDs as lowercase hyphenated text. Instants are UTC RFC 3339 text
-- with exactly six fractional digits ("2024-05-06T07:08:09.123456Z"), so text
-- order is time order. Each `pk INTEGER PRIMARY KEY` is the table's rowid: the
-- insertion order, and the tie-break between equal instants.

CREATE TABLE templates (
    pk         INTEGER PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    engine     TEXT    NOT NULL,
    is_active  INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);

CREATE INDEX templates_by_created_at ON templates (created_at);

-- One row per template: the whole `Settings` value as a JSON object.
CREATE TABLE template_settings (
    template_id TEXT NOT NULL PRIMARY KEY REFERENCES templates (id) ON DELETE CASCADE,
    settings    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE template_capabilities (
    pk          INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    template_id TEXT    NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    enabled     INTEGER NOT NULL,
    config      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE INDEX template_capabilities_by_template ON template_capabilities (template_id);

CREATE TABLE template_startup_files (
    pk          INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    template_id TEXT    NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    path        TEXT    NOT NULL,
    order_index INTEGER NOT NULL,
    mode        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE INDEX template_startup_files_by_template ON template_startup_files (template_id, order_index);

CREATE TABLE template_modules (
    template_id TEXT NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (template_id, name)
) WITHOUT ROWID;

-- `position` is the load order; gaps left by removals are harmless.
CREATE TABLE template_libraries (
    template_id TEXT    NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (template_id, name)
) WITHOUT ROWID;

-- No foreign key to templates: deleting a template leaves its sessions alone.
CREATE TABLE sessions (
    pk              INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    template_id     TEXT    NOT NULL,
    workspace_id    TEXT    NOT NULL,
    base_commit_oid TEXT    NOT NULL,
    worktree_path   TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    closed_at       TEXT,
    last_error      TEXT
);

CREATE INDEX sessions_by_created_at ON sessions (created_at);
CREATE INDEX sessions_by_status_created_at ON sessions (status, created_at);

-- `args`, `env`: JSON objects. `result`, `error`: JSON values, NULL when absent.
CREATE TABLE executions (
    pk           INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    session_id   TEXT    NOT NULL REFERENCES sessions (id),
    kind         TEXT    NOT NULL,
    input        TEXT,
    path         TEXT,
    args         TEXT    NOT NULL,
    env          TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    started_at   TEXT    NOT NULL,
    ended_at     TEXT,
    result       TEXT,
    error        TEXT,
    duration_ms  INTEGER NOT NULL,
    event_count  INTEGER NOT NULL,
    output_bytes INTEGER NOT NULL
);

CREATE INDEX executions_by_started_at ON executions (started_at);
CREATE INDEX executions_by_session_started_at ON executions (session_id, started_at);
CREATE INDEX executions_running_by_started_at ON executions (started_at) WHERE status = 'running';

-- `type` is `EventPayload::type_name()`, `payload` its JSON object.
CREATE TABLE execution_events (
    execution_id TEXT    NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    ts           TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
