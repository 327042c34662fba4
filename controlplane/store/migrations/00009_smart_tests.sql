-- +goose Up
-- Smart tests (issue 15; docs/smart-tests.md). A test's spec is the JSON
-- of apitypes.SmartTestSpec; version increases with every change of it.
CREATE TABLE smart_tests (
    org        TEXT NOT NULL,
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org, name)
);

-- Executions of smart tests, kept when their test is deleted. job names
-- the job running the execution. phase is '' until the execution is
-- finished (the API derives it from the job's meanwhile), then succeeded,
-- failed or canceled with message; results (the checks and the diff's
-- summary) and traffic_diff (the whole diff) are written once, with the
-- final phase, from the job's report.
CREATE TABLE smart_test_executions (
    org          TEXT NOT NULL,
    id           TEXT NOT NULL,
    test         TEXT NOT NULL,
    spec         TEXT NOT NULL,
    job          TEXT NOT NULL,
    sandbox      TEXT NOT NULL DEFAULT '',
    routegroup   TEXT NOT NULL DEFAULT '',
    routing_key  TEXT NOT NULL DEFAULT '',
    triggered_by TEXT NOT NULL DEFAULT '',
    phase        TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL DEFAULT '',
    results      TEXT NOT NULL DEFAULT '',
    traffic_diff TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org, id)
);
CREATE INDEX smart_test_executions_by_time ON smart_test_executions (org, created_at, id);
CREATE INDEX smart_test_executions_by_test ON smart_test_executions (org, test, created_at, id);
CREATE INDEX smart_test_executions_by_sandbox ON smart_test_executions (org, sandbox, created_at, id);
CREATE INDEX smart_test_executions_by_job ON smart_test_executions (org, job);

-- Triggers fired: a trigger of a test runs once per version of a sandbox,
-- when that version is first reported ready (the primary key makes the
-- firing happen once across replicas and repeated status reports).
CREATE TABLE smart_test_trigger_firings (
    org             TEXT NOT NULL,
    test            TEXT NOT NULL,
    trigger_id      TEXT NOT NULL,
    sandbox         TEXT NOT NULL,
    sandbox_version BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (org, test, trigger_id, sandbox, sandbox_version)
);

-- +goose Down
DROP TABLE smart_test_trigger_firings;
DROP TABLE smart_test_executions;
DROP TABLE smart_tests;
