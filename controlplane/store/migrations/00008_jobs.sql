-- +goose Up
-- Jobs (issue 14; docs/jobs.md). Runner groups are objects of kind
-- 'runnergroup' in the objects table. A job has one attempt today (its
-- number is in attempt); the attempt's state lives in the job's row:
-- phase queued|running|succeeded|failed|canceled, the pod running it,
-- the time of its last event (the sweeper fails attempts whose runner
-- stopped reporting), a requested cancel (cancel_reason, cancel_at) and
-- the deadline of its runner group's jobTimeout (timeout_ns after
-- started_at). log_seq numbers the attempt's log chunks, log_bytes sums
-- their sizes (output beyond the cap is dropped).
CREATE TABLE jobs (
    org             TEXT NOT NULL,
    name            TEXT NOT NULL,
    runner_group    TEXT NOT NULL,
    cluster         TEXT NOT NULL,
    spec            TEXT NOT NULL,
    labels          TEXT NOT NULL DEFAULT '{}',
    routing_key     TEXT NOT NULL DEFAULT '',
    sandbox         TEXT NOT NULL DEFAULT '',
    routegroup      TEXT NOT NULL DEFAULT '',
    attempt         BIGINT NOT NULL DEFAULT 0,
    phase           TEXT NOT NULL,
    execution_count BIGINT NOT NULL DEFAULT 0,
    pod             TEXT NOT NULL DEFAULT '',
    pod_namespace   TEXT NOT NULL DEFAULT '',
    exit_code       BIGINT NOT NULL DEFAULT 0,
    message         TEXT NOT NULL DEFAULT '',
    canceled_by     TEXT NOT NULL DEFAULT '',
    cancel_reason   TEXT NOT NULL DEFAULT '',
    cancel_at       BIGINT NOT NULL DEFAULT 0,
    timeout_ns      BIGINT NOT NULL DEFAULT 0,
    log_seq         BIGINT NOT NULL DEFAULT 0,
    log_bytes       BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT NOT NULL DEFAULT 0,
    finished_at     BIGINT NOT NULL DEFAULT 0,
    last_event_at   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org, name)
);
CREATE INDEX jobs_by_time ON jobs (org, created_at, name);
CREATE INDEX jobs_queue ON jobs (org, runner_group, phase, created_at, name);
CREATE INDEX jobs_running ON jobs (phase, last_event_at);

-- Output of an attempt, in the order the runner sent it.
CREATE TABLE job_log_chunks (
    org        TEXT NOT NULL,
    job        TEXT NOT NULL,
    attempt    BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    stream     TEXT NOT NULL,
    data       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, job, attempt, seq)
);

-- Artifacts of an attempt (space 'user': the files of uploadArtifact;
-- 'system': stdout and stderr). The bytes are in the artifact store under
-- storage_key; this is their metadata.
CREATE TABLE job_artifacts (
    org          TEXT NOT NULL,
    job          TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    space        TEXT NOT NULL,
    path         TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    size         BIGINT NOT NULL,
    content_type TEXT NOT NULL DEFAULT '',
    sha256       TEXT NOT NULL,
    meta         TEXT NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org, job, attempt, space, path)
);

-- +goose Down
DROP TABLE job_artifacts;
DROP TABLE job_log_chunks;
DROP TABLE jobs;
