-- API tokens, PostgreSQL dialect: the same table as
-- migrations/sqlite/0002_tokens.sql, with the native types of 0001_init.sql.
--
-- The secret itself is never stored: `secret_digest` is the lowercase hex
-- SHA-256 of it, what a bearer secret is looked up by. `scopes` is a `jsonb`
-- array of scope names ("read", "execute", "admin") in the token's order
-- (validated values, like template settings). Revoked and expired tokens
-- stay: `revoked_at` is set once, and whether a token has expired is the
-- domain's call, made from `expires_at`.

CREATE TABLE api_tokens (
    pk            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            uuid        NOT NULL UNIQUE,
    name          text        NOT NULL,
    scopes        jsonb       NOT NULL,
    secret_digest text        NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);

CREATE INDEX api_tokens_by_created_at ON api_tokens (created_at);
