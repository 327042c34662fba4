-- +goose Up
-- Captures that the capture points of the cluster (devmesh sidecars,
-- relayed by the cluster's agent) recorded for a smart-test execution's
-- runs, kept until the execution is concluded (its traffic diff then holds
-- what matters; the rows are deleted with the conclusion). A row is one
-- batch: data is a JSON array of smarttest/diff.Capture of one execution,
-- size its length (the per-execution bound sums it).
CREATE TABLE smart_test_captures (
    org        TEXT NOT NULL,
    execution  TEXT NOT NULL,
    batch      TEXT NOT NULL,
    cluster    TEXT NOT NULL,
    data       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, execution, batch)
);

-- +goose Down
DROP TABLE smart_test_captures;
