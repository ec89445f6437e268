-- `sessions.forked_from`, PostgreSQL dialect: the same column as
-- migrations/sqlite/0003_forked_from.sql, a `uuid`.
--
-- The session whose live heap a session started as a copy of, NULL for
-- every other session (and every row written before this migration). No
-- foreign key, as `template_id` has none: deleting a parent must neither
-- delete its forks (CASCADE), nor be refused because it was forked
-- (RESTRICT), nor forget the lineage (SET NULL). See the SQLite migration.

ALTER TABLE sessions ADD COLUMN forked_from uuid;
