-- `sessions.forked_from`: the session whose live heap a session started as
-- a copy of (`POST /sessions/{id}/fork`), NULL for every other session,
-- including every row written before this migration.
--
-- A plain id, without a foreign key, as `template_id` is: a fork is a
-- session of its own, and its row must not tie its parent's. A reference
-- would have to choose what deleting the parent does, and each choice
-- breaks something: CASCADE would delete forks (and fail on their
-- executions, whose key to `sessions` does not cascade), RESTRICT would
-- keep any session that was ever forked, SET NULL would forget the
-- lineage. The id is a record of where the heap came from, not a link the
-- database must keep valid.

ALTER TABLE sessions ADD COLUMN forked_from TEXT;
