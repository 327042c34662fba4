-- +goose Up
-- Preview login links (kind 'login', single use) and the browser sessions
-- they open (kind 'session', the preview cookie), stored server-side by the
-- SHA-256 of their random value. Each is bound to the API key that made the
-- link (revoking the key ends them), to one endpoint of one sandbox or route
-- group, and to that object's incarnation (its routing key, new when the
-- object is deleted and created again).
CREATE TABLE preview_sessions (
    id_hash     TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    org         TEXT NOT NULL,
    object_kind TEXT NOT NULL,
    name        TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX preview_sessions_expires ON preview_sessions (expires_at);

-- +goose Down
DROP TABLE preview_sessions;
