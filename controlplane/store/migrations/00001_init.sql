-- +goose Up
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('revision', 0);
INSERT INTO counters (name, value) VALUES ('purged', 0);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    name          TEXT PRIMARY KEY,
    max_sandboxes BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    masked      TEXT NOT NULL,
    admin       INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_org ON api_keys (org);

CREATE TABLE clusters (
    org              TEXT NOT NULL,
    name             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    operator_version TEXT NOT NULL DEFAULT '',
    last_seen_at     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org, name)
);

CREATE TABLE cluster_tokens (
    id                TEXT PRIMARY KEY,
    org               TEXT NOT NULL,
    cluster           TEXT NOT NULL,
    hash              TEXT NOT NULL UNIQUE,
    masked            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_connected_at BIGINT NOT NULL DEFAULT 0,
    last_connected_ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX cluster_tokens_cluster ON cluster_tokens (org, cluster);

CREATE TABLE objects (
    kind        TEXT NOT NULL,
    org         TEXT NOT NULL,
    name        TEXT NOT NULL,
    cluster     TEXT NOT NULL,
    spec        TEXT NOT NULL,
    labels      TEXT NOT NULL DEFAULT '{}',
    routing_key TEXT NOT NULL,
    version     BIGINT NOT NULL,
    revision    BIGINT NOT NULL,
    status      TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, org, name)
);
CREATE INDEX objects_cluster_revision ON objects (org, cluster, revision);

-- +goose Down
DROP TABLE objects;
DROP TABLE cluster_tokens;
DROP TABLE clusters;
DROP TABLE api_keys;
DROP TABLE orgs;
DROP TABLE secrets;
DROP TABLE counters;
