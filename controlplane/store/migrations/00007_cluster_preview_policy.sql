-- +goose Up
-- A cluster's preview policy (JSON: allowedNamespaces); empty: the default
-- policy (every namespace but the system ones, never the API server).
ALTER TABLE clusters ADD COLUMN preview_policy TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clusters DROP COLUMN preview_policy;
