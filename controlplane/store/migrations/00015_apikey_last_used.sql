-- +goose Up
-- When an API key last authenticated a request (Unix ns, 0 = never), kept to the minute: the portal shows it
-- so that people find unused keys to revoke (issue 18).
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE api_keys DROP COLUMN last_used_at;
