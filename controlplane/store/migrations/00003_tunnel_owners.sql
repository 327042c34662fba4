-- +goose Up
-- Which control-plane replica holds a cluster's agent tunnel (a lease renewed
-- while the tunnel is up): replicas without it forward preview dials there.
CREATE TABLE tunnel_owners (
    org        TEXT NOT NULL,
    cluster    TEXT NOT NULL,
    replica_id TEXT NOT NULL,
    url        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org, cluster)
);

-- +goose Down
DROP TABLE tunnel_owners;
