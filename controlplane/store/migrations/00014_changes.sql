-- +goose Up
-- The change feed (issue 18, docs/controlplane.md#several-replicas): every write with effects outside
-- the database (a store.Change) adds a row here in its own transaction, and every replica follows the
-- table to apply the effects of the other replicas' writes. id is random (what a follower dedupes by, in
-- memory: no index); one index only (tx), since every such write pays for the row;
-- tx orders the rows: on PostgreSQL the writing transaction's ID (pg_current_xact_id), on SQLite, whose
-- writers take turns, one more than the highest so far (the commit order). Rows live a few minutes.
CREATE TABLE changes (
    id         TEXT NOT NULL,
    tx         BIGINT NOT NULL,
    origin     TEXT NOT NULL,
    what       INTEGER NOT NULL,
    org        TEXT NOT NULL DEFAULT '',
    cluster    TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL DEFAULT '',
    kind       TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX changes_tx ON changes (tx);

-- +goose Down
DROP TABLE changes;
