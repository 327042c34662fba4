package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Job phases (the phase of a job's attempt).
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCanceled  = "canceled"
)

// Artifact spaces: the files a job asked to keep, and its output.
const (
	SpaceUser   = "user"
	SpaceSystem = "system"
)

// Job is a submitted job with the state of its (one) attempt.
type Job struct {
	Org, Name   string
	RunnerGroup string
	// Cluster is the runner group's cluster when the job was submitted.
	Cluster string
	// Spec is the JSON of the job's spec as submitted.
	Spec       json.RawMessage
	Labels     map[string]string
	RoutingKey string
	Sandbox    string
	RouteGroup string
	Attempt    int64
	Phase      string
	// ExecutionCount counts the claims of the attempt.
	ExecutionCount    int64
	Pod, PodNamespace string
	ExitCode          int64
	Message           string
	// CanceledBy is set when Phase is canceled (apiRequest, timeout, internal).
	CanceledBy string
	// CancelReason is a cancel asked of the running attempt; CancelAt when.
	CancelReason string
	CancelAt     time.Time
	// Timeout is the runner group's jobTimeout the attempt was claimed with.
	Timeout                                     time.Duration
	CreatedAt, StartedAt, FinishedAt, LastEvent time.Time
}

// Finished reports whether the job's attempt has ended.
func (j Job) Finished() bool {
	return j.Phase == JobSucceeded || j.Phase == JobFailed || j.Phase == JobCanceled
}

const jobCols = `org, name, runner_group, cluster, spec, labels, routing_key, sandbox, routegroup, attempt, phase, execution_count, pod, pod_namespace, exit_code, message, canceled_by, cancel_reason, cancel_at, timeout_ns, created_at, started_at, finished_at, last_event_at`

func scanJob(sc scanner) (Job, error) {
	var j Job
	var spec, labels string
	var cancelAt, timeout, created, started, finished, last int64
	if err := sc.Scan(&j.Org, &j.Name, &j.RunnerGroup, &j.Cluster, &spec, &labels, &j.RoutingKey, &j.Sandbox, &j.RouteGroup, &j.Attempt, &j.Phase,
		&j.ExecutionCount, &j.Pod, &j.PodNamespace, &j.ExitCode, &j.Message, &j.CanceledBy, &j.CancelReason, &cancelAt, &timeout,
		&created, &started, &finished, &last); err != nil {
		return Job{}, err
	}
	j.Spec = json.RawMessage(spec)
	if labels != "" && labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &j.Labels); err != nil {
			return Job{}, fmt.Errorf("labels of job %s/%s: %w", j.Org, j.Name, err)
		}
	}
	j.CancelAt, j.Timeout = fromNano(cancelAt), time.Duration(timeout)
	j.CreatedAt, j.StartedAt, j.FinishedAt, j.LastEvent = fromNano(created), fromNano(started), fromNano(finished), fromNano(last)
	return j, nil
}

// CreateJob stores a new queued job (attempt 0). A job of the same name in
// the org is ErrAlreadyExists.
func (s *Store) CreateJob(ctx context.Context, j Job) (Job, error) {
	labels := "{}"
	if len(j.Labels) > 0 {
		b, err := json.Marshal(j.Labels)
		if err != nil {
			return Job{}, fmt.Errorf("create job %s/%s: labels: %w", j.Org, j.Name, err)
		}
		labels = string(b)
	}
	now := s.nowNano()
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO jobs (org, name, runner_group, cluster, spec, labels, routing_key, sandbox, routegroup, attempt, phase, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (org, name) DO NOTHING`),
			j.Org, j.Name, j.RunnerGroup, j.Cluster, string(j.Spec), labels, j.RoutingKey, j.Sandbox, j.RouteGroup, JobQueued, now)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, ErrAlreadyExists
		}
		return []Change{{What: ChangeJob, Org: j.Org, Name: j.Name}}, nil
	})
	if errors.Is(err, ErrAlreadyExists) {
		return Job{}, fmt.Errorf("job %s/%s: %w", j.Org, j.Name, err)
	}
	if err != nil {
		return Job{}, fmt.Errorf("create job %s/%s: %w", j.Org, j.Name, err)
	}
	// The job as inserted (a waiting claim may take it at once).
	j.Phase, j.Attempt, j.CreatedAt = JobQueued, 0, fromNano(now)
	j.ExecutionCount, j.Pod, j.PodNamespace, j.ExitCode, j.Message, j.CanceledBy, j.CancelReason = 0, "", "", 0, "", "", ""
	j.CancelAt, j.Timeout, j.StartedAt, j.FinishedAt, j.LastEvent = time.Time{}, 0, time.Time{}, time.Time{}, time.Time{}
	return j, nil
}

// GetJob returns a job or ErrNotFound.
func (s *Store) GetJob(ctx context.Context, org, name string) (Job, error) {
	j, err := scanRow(ctx, s, s.db, scanJob, `SELECT `+jobCols+` FROM jobs WHERE org = ? AND name = ?`, org, name)
	if err != nil {
		return Job{}, fmt.Errorf("job %s/%s: %w", org, name, err)
	}
	return j, nil
}

// JobFilter selects jobs of a list; empty fields match everything.
type JobFilter struct {
	RunnerGroup string
	Sandbox     string
	Phase       string
}

// ListJobs returns a page of an org's jobs, oldest first.
func (s *Store) ListJobs(ctx context.Context, org string, f JobFilter, p PageRequest) (Page[Job], error) {
	q, args := `SELECT `+jobCols+` FROM jobs WHERE org = ?`, []any{org}
	if f.RunnerGroup != "" {
		q, args = q+` AND runner_group = ?`, append(args, f.RunnerGroup)
	}
	if f.Sandbox != "" {
		q, args = q+` AND sandbox = ?`, append(args, f.Sandbox)
	}
	if f.Phase != "" {
		q, args = q+` AND phase = ?`, append(args, f.Phase)
	}
	pg, err := scanPage(ctx, s, p, scopeOf("jobs", org, f.RunnerGroup, f.Sandbox, f.Phase), true, "name", scanJob,
		func(j Job) (int64, string) { return j.CreatedAt.UnixNano(), j.Name }, nil, q, args...)
	if err != nil {
		return Page[Job]{}, fmt.Errorf("list jobs of org %s: %w", org, err)
	}
	return pg, nil
}

// CountJobs returns how many jobs of a runner group are queued and running.
func (s *Store) CountJobs(ctx context.Context, org, group string) (queued, running int64, err error) {
	err = s.db.QueryRowContext(ctx, s.q(`SELECT
		COALESCE(SUM(CASE WHEN phase = ? THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN phase = ? THEN 1 ELSE 0 END), 0)
		FROM jobs WHERE org = ? AND runner_group = ? AND phase IN (?, ?)`),
		JobQueued, JobRunning, org, group, JobQueued, JobRunning).Scan(&queued, &running)
	if err != nil {
		return 0, 0, fmt.Errorf("count jobs of runner group %s/%s: %w", org, group, err)
	}
	return queued, running, nil
}

// CancelJob cancels a job: a queued one at once (canceled by reason), a
// running one by asking its runner (CancelReason; the runner finishes it, or
// the sweeper after a grace period). A finished job is returned unchanged.
func (s *Store) CancelJob(ctx context.Context, org, name, reason string) (Job, error) {
	now := s.nowNano()
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET phase = ?, canceled_by = ?, finished_at = ? WHERE org = ? AND name = ? AND phase = ?`),
			JobCanceled, reason, now, org, name, JobQueued); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET cancel_reason = ?, cancel_at = ? WHERE org = ? AND name = ? AND phase = ? AND cancel_reason = ''`),
			reason, now, org, name, JobRunning); err != nil {
			return nil, err
		}
		return []Change{{What: ChangeJob, Org: org, Name: name}}, nil
	})
	if err != nil {
		return Job{}, fmt.Errorf("cancel job %s/%s: %w", org, name, err)
	}
	return s.GetJob(ctx, org, name)
}

// DeleteJob deletes a job with its log chunks and artifact rows, and
// returns the storage keys of its artifacts (for the caller to delete).
func (s *Store) DeleteJob(ctx context.Context, org, name string) ([]string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("delete job %s/%s: %w", org, name, err)
	}
	defer tx.Rollback()
	keys, err := scanRows(ctx, s, tx, func(sc scanner) (string, error) {
		var k string
		return k, sc.Scan(&k)
	}, `SELECT storage_key FROM job_artifacts WHERE org = ? AND job = ?`, org, name)
	if err != nil {
		return nil, fmt.Errorf("delete job %s/%s: %w", org, name, err)
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM jobs WHERE org = ? AND name = ?`), org, name)
	if err != nil {
		return nil, fmt.Errorf("delete job %s/%s: %w", org, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("job %s/%s: %w", org, name, ErrNotFound)
	}
	for _, t := range []string{"job_log_chunks", "job_artifacts"} {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+t+` WHERE org = ? AND job = ?`), org, name); err != nil {
			return nil, fmt.Errorf("delete job %s/%s: %s: %w", org, name, t, err)
		}
	}
	if err := s.commit(ctx, tx, Change{What: ChangeJob, Org: org, Name: name}); err != nil {
		return nil, fmt.Errorf("delete job %s/%s: %w", org, name, err)
	}
	return keys, nil
}

// ClaimJob gives the oldest queued job of a runner group to a pod: its
// attempt becomes running on pod (namespace/pod) with the runner group's
// timeout. A running attempt the same pod still holds is failed first (the
// pod restarted). ErrNotFound: nothing is queued.
func (s *Store) ClaimJob(ctx context.Context, org, group, namespace, pod string, timeout time.Duration) (Job, error) {
	id := fmt.Sprintf("runner group %s/%s pod %s/%s", org, group, namespace, pod)
	now := s.nowNano()
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE jobs SET phase = ?, message = ?, finished_at = ? WHERE org = ? AND runner_group = ? AND phase = ? AND pod = ? AND pod_namespace = ?`),
		JobFailed, fmt.Sprintf("runner pod %s/%s restarted while running the job", namespace, pod), now, org, group, JobRunning, pod, namespace); err != nil {
		return Job{}, fmt.Errorf("claim for %s: %w", id, err)
	}
	for range 50 {
		name, err := scanRow(ctx, s, s.db, func(sc scanner) (string, error) {
			var n string
			return n, sc.Scan(&n)
		}, `SELECT name FROM jobs WHERE org = ? AND runner_group = ? AND phase = ? ORDER BY created_at, name LIMIT 1`, org, group, JobQueued)
		if err != nil {
			return Job{}, fmt.Errorf("claim for %s: %w", id, err)
		}
		err = s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
			res, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET phase = ?, pod = ?, pod_namespace = ?, started_at = ?, last_event_at = ?, timeout_ns = ?,
			execution_count = execution_count + 1 WHERE org = ? AND name = ? AND phase = ?`),
				JobRunning, pod, namespace, now, now, int64(timeout), org, name, JobQueued)
			if err != nil {
				return nil, err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return nil, errNoRow // another pod took it: next
			}
			return []Change{{What: ChangeJob, Org: org, Name: name}}, nil
		})
		if err == nil {
			return s.GetJob(ctx, org, name)
		}
		if !errors.Is(err, errNoRow) {
			return Job{}, fmt.Errorf("claim for %s: %w", id, err)
		}
	}
	return Job{}, fmt.Errorf("claim for %s: %w", id, ErrConflict)
}

// ReleaseJob puts a job claimed by pod back in the queue, if nothing
// happened to it since (no event after the claim): for a claim whose answer
// could not be delivered.
func (s *Store) ReleaseJob(ctx context.Context, org, name, namespace, pod string) error {
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET phase = ?, pod = '', pod_namespace = '', started_at = 0, last_event_at = 0, timeout_ns = 0
		WHERE org = ? AND name = ? AND phase = ? AND pod = ? AND pod_namespace = ? AND last_event_at = started_at AND log_seq = 0`),
			JobQueued, org, name, JobRunning, pod, namespace)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, ErrConflict
		}
		return []Change{{What: ChangeJob, Org: org, Name: name}}, nil
	})
	if err != nil {
		return fmt.Errorf("release job %s/%s: %w", org, name, err)
	}
	return nil
}

// LogChunk is a piece of a job's output.
type LogChunk struct {
	Seq    int64
	Stream string
	Data   []byte
}

// ErrLogCapReached is returned (with the cancel reason) by AddJobEvents
// when output was dropped because the attempt reached its log cap.
var ErrLogCapReached = errors.New("log cap reached")

// AddJobEvents records that the attempt running on pod is alive and appends
// its output (pod "": whichever pod runs it), up to maxLogBytes per attempt
// (0: no cap): output beyond it is dropped, with one marker chunk on
// stderr, and ErrLogCapReached is returned with the cancel reason. It
// returns the cancel reason asked of the attempt (empty: none). An attempt
// that is not running on that pod any more is ErrConflict (a deleted job
// ErrNotFound).
func (s *Store) AddJobEvents(ctx context.Context, org, name string, attempt int64, namespace, pod string, logs []LogChunk, maxLogBytes int64) (string, error) {
	id := fmt.Sprintf("job %s/%s attempt %d", org, name, attempt)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("events of %s: %w", id, err)
	}
	defer tx.Rollback()
	now := s.nowNano()
	var size int64
	for _, l := range logs {
		size += int64(len(l.Data))
	}
	capped := maxLogBytes > 0
	var seq, logBytes int64
	var reason string
	err = tx.QueryRowContext(ctx, s.q(`UPDATE jobs SET last_event_at = ?,
		log_seq = log_seq + CASE WHEN ? = 0 OR log_bytes + ? <= ? THEN ? WHEN log_bytes <= ? THEN 1 ELSE 0 END,
		log_bytes = log_bytes + ?
		WHERE org = ? AND name = ? AND attempt = ? AND phase = ? AND (? = '' OR (pod = ? AND pod_namespace = ?))
		RETURNING log_seq, log_bytes, cancel_reason`), now,
		boolInt(capped), size, maxLogBytes, len(logs), maxLogBytes,
		size, org, name, attempt, JobRunning, pod, pod, namespace).Scan(&seq, &logBytes, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		if _, gerr := s.GetJob(ctx, org, name); gerr != nil {
			return "", fmt.Errorf("events of %s: %w", id, gerr)
		}
		return "", fmt.Errorf("events of %s: not running on pod %s/%s: %w", id, namespace, pod, ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("events of %s: %w", id, err)
	}
	old := logBytes - size
	var dropped bool
	switch {
	case !capped || old+size <= maxLogBytes:
	case old <= maxLogBytes: // the first events over the cap: one marker
		logs = []LogChunk{{Stream: "stderr", Data: []byte(fmt.Sprintf("\n[sandboxmesh: output beyond %d bytes is not kept]\n", maxLogBytes))}}
		dropped = true
	default:
		logs, dropped = nil, true
	}
	first := seq - int64(len(logs)) + 1
	for i, l := range logs {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO job_log_chunks (org, job, attempt, seq, stream, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			org, name, attempt, first+int64(i), l.Stream, l.Data, now); err != nil {
			return "", fmt.Errorf("events of %s: log: %w", id, err)
		}
	}
	var cs []Change
	if len(logs) > 0 {
		cs = append(cs, Change{What: ChangeJobLogs, Org: org, Name: name})
	}
	if err := s.commit(ctx, tx, cs...); err != nil {
		return "", fmt.Errorf("events of %s: %w", id, err)
	}
	if dropped && size > 0 {
		return reason, fmt.Errorf("events of %s: %d bytes dropped: %w", id, size, ErrLogCapReached)
	}
	return reason, nil
}

// CancelQueuedJobs cancels the queued jobs of a runner group (canceled by
// reason with message) and returns how many.
func (s *Store) CancelQueuedJobs(ctx context.Context, org, group, reason, message string) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET phase = ?, canceled_by = ?, message = ?, finished_at = ? WHERE org = ? AND runner_group = ? AND phase = ?`),
			JobCanceled, reason, message, s.nowNano(), org, group, JobQueued)
		if err != nil {
			return nil, err
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return nil, nil
		}
		return []Change{{What: ChangeJob, Org: org}}, nil
	})
	if err != nil {
		return 0, fmt.Errorf("cancel queued jobs of runner group %s/%s: %w", org, group, err)
	}
	return n, nil
}

// FinishJob ends the attempt running on pod (pod "": whichever pod runs it): succeeded for exit code 0,
// canceled when a cancel was asked and the runner stopped the process
// (canceled), failed otherwise. ErrConflict: not running on that pod.
func (s *Store) FinishJob(ctx context.Context, org, name string, attempt int64, namespace, pod string, exitCode int64, message string, canceled bool) (Job, error) {
	id := fmt.Sprintf("job %s/%s attempt %d", org, name, attempt)
	now := s.nowNano()
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET finished_at = ?, exit_code = ?, message = ?,
		phase = CASE WHEN cancel_reason <> '' AND ? = 1 THEN ? WHEN ? = 0 THEN ? ELSE ? END,
		canceled_by = CASE WHEN cancel_reason <> '' AND ? = 1 THEN cancel_reason ELSE '' END
		WHERE org = ? AND name = ? AND attempt = ? AND phase = ? AND (? = '' OR (pod = ? AND pod_namespace = ?))`),
			now, exitCode, message, boolInt(canceled), JobCanceled, exitCode, JobSucceeded, JobFailed, boolInt(canceled),
			org, name, attempt, JobRunning, pod, pod, namespace)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, errNoRow
		}
		return []Change{{What: ChangeJob, Org: org, Name: name}}, nil
	})
	if errors.Is(err, errNoRow) {
		if _, gerr := s.GetJob(ctx, org, name); gerr != nil {
			return Job{}, fmt.Errorf("finish %s: %w", id, gerr)
		}
		return Job{}, fmt.Errorf("finish %s: not running on pod %s/%s: %w", id, namespace, pod, ErrConflict)
	}
	if err != nil {
		return Job{}, fmt.Errorf("finish %s: %w", id, err)
	}
	return s.GetJob(ctx, org, name)
}

// SweepJobs ends the attempts whose runner is gone or overdue: running
// attempts without an event for lostAfter fail; running attempts past their
// timeout get a timeout cancel; attempts asked to cancel more than grace ago
// are canceled without the runner. It returns the jobs it ended.
func (s *Store) SweepJobs(ctx context.Context, lostAfter, grace time.Duration) ([]Job, error) {
	now := s.nowNano()
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE jobs SET cancel_reason = 'timeout', cancel_at = ? WHERE phase = ? AND cancel_reason = '' AND timeout_ns > 0 AND started_at + timeout_ns < ?`),
		now, JobRunning, now); err != nil {
		return nil, fmt.Errorf("sweep jobs: timeouts: %w", err)
	}
	var out []Job
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		lost, err := scanRows(ctx, s, tx, scanJob, `UPDATE jobs SET phase = ?, finished_at = ?,
		message = 'runner pod ' || pod_namespace || '/' || pod || ' stopped reporting (deleted or crashed)'
		WHERE phase = ? AND last_event_at < ? RETURNING `+jobCols, JobFailed, now, JobRunning, now-int64(lostAfter))
		if err != nil {
			return nil, fmt.Errorf("lost runners: %w", err)
		}
		canceled, err := scanRows(ctx, s, tx, scanJob, `UPDATE jobs SET phase = ?, finished_at = ?, canceled_by = cancel_reason,
		message = 'the runner did not stop the job in time'
		WHERE phase = ? AND cancel_reason <> '' AND cancel_at < ? RETURNING `+jobCols, JobCanceled, now, JobRunning, now-int64(grace))
		if err != nil {
			return nil, fmt.Errorf("cancels: %w", err)
		}
		out = append(lost, canceled...)
		cs := make([]Change, len(out))
		for i, j := range out {
			cs[i] = Change{What: ChangeJob, Org: j.Org, Name: j.Name}
		}
		return cs, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sweep jobs: %w", err)
	}
	return out, nil
}

// ReadJobLogs returns up to limit chunks of an attempt's stream after seq, in order.
func (s *Store) ReadJobLogs(ctx context.Context, org, name string, attempt int64, stream string, after int64, limit int) ([]LogChunk, error) {
	out, err := scanRows(ctx, s, s.db, scanChunk, `SELECT seq, stream, data FROM job_log_chunks WHERE org = ? AND job = ? AND attempt = ? AND stream = ? AND seq > ? ORDER BY seq LIMIT ?`,
		org, name, attempt, stream, after, limit)
	if err != nil {
		return nil, fmt.Errorf("logs of job %s/%s attempt %d: %w", org, name, attempt, err)
	}
	return out, nil
}

// LastJobLogs returns the last limit chunks of an attempt's stream, newest first.
func (s *Store) LastJobLogs(ctx context.Context, org, name string, attempt int64, stream string, limit int) ([]LogChunk, error) {
	out, err := scanRows(ctx, s, s.db, scanChunk, `SELECT seq, stream, data FROM job_log_chunks WHERE org = ? AND job = ? AND attempt = ? AND stream = ? ORDER BY seq DESC LIMIT ?`,
		org, name, attempt, stream, limit)
	if err != nil {
		return nil, fmt.Errorf("logs of job %s/%s attempt %d: %w", org, name, attempt, err)
	}
	return out, nil
}

func scanChunk(sc scanner) (LogChunk, error) {
	var c LogChunk
	return c, sc.Scan(&c.Seq, &c.Stream, &c.Data)
}

// Artifact is the metadata of a stored artifact of an attempt.
type Artifact struct {
	Org, Job    string
	Attempt     int64
	Space, Path string
	// StorageKey names the bytes in the artifact store.
	StorageKey  string
	Size        int64
	ContentType string
	SHA256      string
	Meta        map[string]string
	CreatedAt   time.Time
}

const artifactCols = `org, job, attempt, space, path, storage_key, size, content_type, sha256, meta, created_at`

func scanArtifact(sc scanner) (Artifact, error) {
	var a Artifact
	var meta string
	var created int64
	if err := sc.Scan(&a.Org, &a.Job, &a.Attempt, &a.Space, &a.Path, &a.StorageKey, &a.Size, &a.ContentType, &a.SHA256, &meta, &created); err != nil {
		return Artifact{}, err
	}
	if meta != "" && meta != "{}" {
		if err := json.Unmarshal([]byte(meta), &a.Meta); err != nil {
			return Artifact{}, fmt.Errorf("meta of artifact %s: %w", a.Path, err)
		}
	}
	a.CreatedAt = fromNano(created)
	return a, nil
}

// PutArtifact stores (or replaces) an artifact's metadata. The job must
// exist (ErrNotFound otherwise).
func (s *Store) PutArtifact(ctx context.Context, a Artifact) error {
	id := fmt.Sprintf("artifact %s of job %s/%s attempt %d", a.Path, a.Org, a.Job, a.Attempt)
	meta := "{}"
	if len(a.Meta) > 0 {
		b, err := json.Marshal(a.Meta)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		meta = string(b)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM jobs WHERE org = ? AND name = ?`), a.Org, a.Job).Scan(&n); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: job: %w", id, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO job_artifacts (`+artifactCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (org, job, attempt, space, path) DO UPDATE SET storage_key = excluded.storage_key, size = excluded.size,
		content_type = excluded.content_type, sha256 = excluded.sha256, meta = excluded.meta, created_at = excluded.created_at`),
		a.Org, a.Job, a.Attempt, a.Space, a.Path, a.StorageKey, a.Size, a.ContentType, a.SHA256, meta, s.nowNano()); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	return tx.Commit()
}

// GetArtifact returns an artifact's metadata or ErrNotFound.
func (s *Store) GetArtifact(ctx context.Context, org, job string, attempt int64, space, path string) (Artifact, error) {
	a, err := scanRow(ctx, s, s.db, scanArtifact, `SELECT `+artifactCols+` FROM job_artifacts WHERE org = ? AND job = ? AND attempt = ? AND space = ? AND path = ?`,
		org, job, attempt, space, path)
	if err != nil {
		return Artifact{}, fmt.Errorf("artifact %s of job %s/%s attempt %d: %w", path, org, job, attempt, err)
	}
	return a, nil
}

// ListArtifacts returns the artifacts of an attempt in a space, by path.
func (s *Store) ListArtifacts(ctx context.Context, org, job string, attempt int64, space string) ([]Artifact, error) {
	out, err := scanRows(ctx, s, s.db, scanArtifact, `SELECT `+artifactCols+` FROM job_artifacts WHERE org = ? AND job = ? AND attempt = ? AND space = ? ORDER BY path`,
		org, job, attempt, space)
	if err != nil {
		return nil, fmt.Errorf("artifacts of job %s/%s attempt %d: %w", org, job, attempt, err)
	}
	return out, nil
}
