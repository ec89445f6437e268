-- API tokens, SQLite dialect; conventions as in 0001_init.sql.
--
-- The secret itself is never stored: `secret_digest` is the lowercase hex
-- SHA-256 of it, what a bearer secret is looked up by. `scopes` is a JSON
-- array of scope names ("read", "execute", "admin") in the token's order.
-- Revoked and expired tokens stay: `revoked_at` is set once, and whether a
-- token has expired is the domain's call, made from `expires_at`.

CREATE TABLE api_tokens (
    pk            INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    secret_digest TEXT    NOT NULL UNIQUE,
    created_at    TEXT    NOT NULL,
    last_used_at  TEXT,
    expires_at    TEXT,
    revoked_at    TEXT
);

CREATE INDEX api_tokens_by_created_at ON api_tokens (created_at);
