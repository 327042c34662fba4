-- +goose Up
-- The forkable workloads an agent last reported for its cluster (one JSON document per cluster).
CREATE TABLE cluster_workloads (
    org         TEXT NOT NULL,
    cluster     TEXT NOT NULL,
    hash        TEXT NOT NULL,
    data        TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    PRIMARY KEY (org, cluster)
);

-- +goose Down
DROP TABLE cluster_workloads;
