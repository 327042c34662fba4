-- +goose Up
-- Keyset pagination: every list page is one range scan of an index that
-- matches its WHERE and ORDER BY. Live objects get a partial index, so pages
-- and the quota count skip tombstones.
CREATE INDEX objects_live ON objects (kind, org, name) WHERE deleted_at = 0;
CREATE INDEX api_keys_org_created ON api_keys (org, created_at, id);
CREATE INDEX cluster_tokens_cluster_created ON cluster_tokens (org, cluster, created_at, id);
DROP INDEX api_keys_org;
DROP INDEX cluster_tokens_cluster;

-- +goose Down
CREATE INDEX cluster_tokens_cluster ON cluster_tokens (org, cluster);
CREATE INDEX api_keys_org ON api_keys (org);
DROP INDEX cluster_tokens_cluster_created;
DROP INDEX api_keys_org_created;
DROP INDEX objects_live;
