-- The vm-system schema, PostgreSQL dialect: the same tables, keys and
-- cascades as migrations/sqlite/0001_init.sql, with native types.
--
-- Ids are `uuid`, instants `timestamptz` (microseconds, like the SQLite
-- text). Each `pk` identity column is the insertion order, the tie-break
-- between equal instants, as SQLite's rowid is. Template settings (validated
-- configuration) are `jsonb`; user and engine JSON (capability configs,
-- args, env, results, errors, event payloads) is `json`, kept exactly as
-- written, since `jsonb` rejects the escape "\u0000". Free text that may
-- hold a NUL character, which `text` cannot store (capability names,
-- execution input, a session's last error), is a JSON string in `json`.
-- Names are ordered with COLLATE "C", SQLite's byte order, whatever the
-- database's locale.

CREATE TABLE templates (
    pk         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         uuid        NOT NULL UNIQUE,
    name       text        NOT NULL,
    engine     text        NOT NULL,
    is_active  boolean     NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE INDEX templates_by_created_at ON templates (created_at);

-- One row per template: the whole `Settings` value as a JSON object.
CREATE TABLE template_settings (
    template_id uuid  NOT NULL PRIMARY KEY REFERENCES templates (id) ON DELETE CASCADE,
    settings    jsonb NOT NULL
);

CREATE TABLE template_capabilities (
    pk          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          uuid        NOT NULL UNIQUE,
    template_id uuid        NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    kind        text        NOT NULL,
    name        json        NOT NULL,
    enabled     boolean     NOT NULL,
    config      json        NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE INDEX template_capabilities_by_template ON template_capabilities (template_id);

CREATE TABLE template_startup_files (
    pk          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          uuid        NOT NULL UNIQUE,
    template_id uuid        NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    path        text        NOT NULL,
    order_index bigint      NOT NULL,
    mode        text        NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE INDEX template_startup_files_by_template ON template_startup_files (template_id, order_index);

CREATE TABLE template_modules (
    template_id uuid NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    name        text NOT NULL,
    PRIMARY KEY (template_id, name)
);

-- `position` is the load order; gaps left by removals are harmless.
CREATE TABLE template_libraries (
    template_id uuid   NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    name        text   NOT NULL,
    position    bigint NOT NULL,
    PRIMARY KEY (template_id, name)
);

-- No foreign key to templates: deleting a template leaves its sessions alone.
CREATE TABLE sessions (
    pk              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              uuid        NOT NULL UNIQUE,
    template_id     uuid        NOT NULL,
    workspace_id    text        NOT NULL,
    base_commit_oid text        NOT NULL,
    worktree_path   text        NOT NULL,
    status          text        NOT NULL,
    created_at      timestamptz NOT NULL,
    closed_at       timestamptz,
    last_error      json
);

CREATE INDEX sessions_by_created_at ON sessions (created_at);
CREATE INDEX sessions_by_status_created_at ON sessions (status, created_at);

-- `args`, `env`: JSON objects. `result`, `error`: JSON values, NULL when absent.
CREATE TABLE executions (
    pk           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           uuid        NOT NULL UNIQUE,
    session_id   uuid        NOT NULL REFERENCES sessions (id),
    kind         text        NOT NULL,
    input        json,
    path         text,
    args         json        NOT NULL,
    env          json        NOT NULL,
    status       text        NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    result       json,
    error        json,
    duration_ms  bigint      NOT NULL,
    event_count  bigint      NOT NULL,
    output_bytes bigint      NOT NULL
);

CREATE INDEX executions_by_started_at ON executions (started_at);
CREATE INDEX executions_by_session_started_at ON executions (session_id, started_at);
CREATE INDEX executions_running_by_started_at ON executions (started_at) WHERE status = 'running';

-- `type` is `EventPayload::type_name()`, `payload` its JSON object.
CREATE TABLE execution_events (
    execution_id uuid        NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          bigint      NOT NULL,
    ts           timestamptz NOT NULL,
    type         text        NOT NULL,
    payload      json        NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
