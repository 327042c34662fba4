-- +goose Up
-- The team a sandbox belongs to ('' for none): a team's concurrent-sandbox quota counts its sandboxes
-- (issue 18, docs/controlplane.md#people-and-access).
ALTER TABLE objects ADD COLUMN team TEXT NOT NULL DEFAULT '';
CREATE INDEX objects_team ON objects (org, team);

-- +goose Down
DROP INDEX objects_team;
ALTER TABLE objects DROP COLUMN team;
