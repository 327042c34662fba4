-- +goose Up
-- Which SANDBOXMESH_BOOTSTRAP_KEY the control plane applied (its hash), so the
-- variable takes effect once: a restart with the same value adds nothing, a
-- revoked bootstrap key stays revoked, and a changed value is ignored.
CREATE TABLE bootstrap_record (
    name       TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE bootstrap_record;
