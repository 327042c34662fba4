-- +goose Up
-- Usage accounting (issue 18, docs/controlplane.md#usage): each row is an interval of a sandbox's life in
-- one team. Apply opens one when a sandbox is created or moved into a team, and closes the previous one
-- (ended_at) when it is moved out; Delete closes it. ended_at = 0 is an open interval (the sandbox is live
-- in that team). start_rev is the store revision of the write that opened it (unique, so intervals of a
-- name never collide, even within one clock tick); routing_key tells incarnations of a name apart (a
-- sandbox deleted and created again gets a new one). Times are Unix nanoseconds, as everywhere.
CREATE TABLE sandbox_usage (
    org         TEXT NOT NULL,
    sandbox     TEXT NOT NULL,
    start_rev   BIGINT NOT NULL,
    routing_key TEXT NOT NULL DEFAULT '',
    team        TEXT NOT NULL DEFAULT '',
    cluster     TEXT NOT NULL DEFAULT '',
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org, sandbox, start_rev)
);
-- A month's usage reads the intervals still open or ended after the month began (and started before it
-- ended): one range of this index for recent months.
CREATE INDEX sandbox_usage_time ON sandbox_usage (org, ended_at, started_at);
-- A sandbox has at most one open interval, which its next move or delete finds (and closes) by name.
CREATE UNIQUE INDEX sandbox_usage_open ON sandbox_usage (org, sandbox) WHERE ended_at = 0;

-- Sandboxes live at the upgrade get an open interval from their creation, so no usage is lost.
INSERT INTO sandbox_usage (org, sandbox, start_rev, routing_key, team, cluster, started_at, ended_at)
SELECT org, name, revision, routing_key, team, cluster, created_at, 0 FROM objects
WHERE kind = 'sandbox' AND deleted_at = 0;

-- +goose Down
DROP INDEX sandbox_usage_open;
DROP INDEX sandbox_usage_time;
DROP TABLE sandbox_usage;
