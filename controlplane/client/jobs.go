package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// Wire types of jobs.
type (
	// RunnerGroup is a job runner group.
	RunnerGroup = apitypes.RunnerGroup
	// Job is a job.
	Job = apitypes.Job
	// JobLogMessage is one message of a job's log stream.
	JobLogMessage = apitypes.JobLogMessage
	// Artifact describes a stored artifact.
	Artifact = apitypes.Artifact
)

// ---- runner groups ----

// ApplyRunnerGroup creates or updates a runner group (the name comes from rg.Name).
func (c *Client) ApplyRunnerGroup(ctx context.Context, org string, rg *RunnerGroup, opts ...RequestOption) (*RunnerGroup, error) {
	var out RunnerGroup
	if err := c.do(ctx, http.MethodPut, orgPath(org, "runnergroups", rg.Name), nil, rg, &out, opts...); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetRunnerGroup returns a runner group with its status.
func (c *Client) GetRunnerGroup(ctx context.Context, org, name string) (*RunnerGroup, error) {
	var out RunnerGroup
	if err := c.do(ctx, http.MethodGet, orgPath(org, "runnergroups", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListRunnerGroups returns every runner group of an org.
func (c *Client) ListRunnerGroups(ctx context.Context, org string) ([]RunnerGroup, error) {
	return listAll[RunnerGroup](ctx, c, orgPath(org, "runnergroups"), nil)
}

// DeleteRunnerGroup deletes a runner group.
func (c *Client) DeleteRunnerGroup(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "runnergroups", name), nil, nil, nil)
}

// ---- jobs ----

// SubmitJob submits a job; the answer carries the name the server chose.
func (c *Client) SubmitJob(ctx context.Context, org string, spec apitypes.JobSpec) (*Job, error) {
	var out Job
	if err := c.do(ctx, http.MethodPost, orgPath(org, "jobs"), nil, Job{Spec: spec}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetJob returns a job.
func (c *Client) GetJob(ctx context.Context, org, name string) (*Job, error) {
	var out Job
	if err := c.do(ctx, http.MethodGet, orgPath(org, "jobs", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// JobFilter selects jobs in ListJobs; empty fields match everything.
type JobFilter struct {
	RunnerGroup   string
	TargetSandbox string
	// Phase is queued, running, succeeded, failed or canceled.
	Phase string
}

func (f JobFilter) query() url.Values {
	q := url.Values{}
	if f.RunnerGroup != "" {
		q.Set("runnerGroup", f.RunnerGroup)
	}
	if f.TargetSandbox != "" {
		q.Set("targetSandbox", f.TargetSandbox)
	}
	if f.Phase != "" {
		q.Set("phase", f.Phase)
	}
	return q
}

// ListJobs returns an org's jobs matching f, oldest first.
func (c *Client) ListJobs(ctx context.Context, org string, f JobFilter) ([]Job, error) {
	return listAll[Job](ctx, c, orgPath(org, "jobs"), f.query())
}

// ListJobsPage returns one page of an org's jobs matching f.
func (c *Client) ListJobsPage(ctx context.Context, org string, f JobFilter, p PageOptions) (*Page[Job], error) {
	return listPage[Job](ctx, c, orgPath(org, "jobs"), f.query(), p)
}

// CancelJob cancels a job (a running one stops through its runner).
func (c *Client) CancelJob(ctx context.Context, org, name string) (*Job, error) {
	var out Job
	if err := c.do(ctx, http.MethodPut, orgPath(org, "jobs", name, "cancel"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteJob deletes a job with its logs and artifacts.
func (c *Client) DeleteJob(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "jobs", name), nil, nil, nil)
}

// ---- raw requests (streams, downloads, uploads) ----

// open sends a request whose answer is read by the caller (no timeout of
// the client's own: ctx bounds it); error answers become *APIError.
func (c *Client) open(ctx context.Context, method, path string, q url.Values, body io.Reader, set func(*http.Request)) (*http.Response, error) {
	return openRaw(ctx, c.base, c.http, method, path, q, body, func(r *http.Request) {
		for k, vs := range c.header {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		r.Header.Set(apitypes.HeaderAPIKey, c.key)
		if set != nil {
			set(r)
		}
	})
}

func openRaw(ctx context.Context, base *url.URL, hc *http.Client, method, path string, q url.Values, body io.Reader, set func(*http.Request)) (*http.Response, error) {
	u := *base
	u.Path = base.Path + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	set(req)
	streaming := *hc
	streaming.Timeout = 0
	resp, err := streaming.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, apiError(resp, data, method, u.Redacted())
	}
	return resp, nil
}

// ---- logs ----

// LogStreamOptions selects what StreamJobLogs reads.
type LogStreamOptions struct {
	// Attempt of the job (default 0).
	Attempt int64
	// Type is stdout (default) or stderr.
	Type string
	// Cursor resumes after the message that carried it.
	Cursor string
	// TailLines starts with the last n lines (without Cursor).
	TailLines int
	// MaxReconnects bounds the reconnections (with the last cursor) after
	// the connection breaks before the end; default 5, negative: none.
	MaxReconnects int
}

// maxSSELine bounds one line of a log stream.
const maxSSELine = 32 << 20

// ErrLogStream wraps the error event of a log stream.
var ErrLogStream = errors.New("log stream error")

// StreamJobLogs reads a job attempt's output stream (Server-Sent Events)
// and calls fn for every message, in order, until the attempt has finished
// and everything was read (nil), fn fails (its error), the server reports
// an error (ErrLogStream) or ctx ends. A broken connection is resumed from
// the last message's cursor.
func (c *Client) StreamJobLogs(ctx context.Context, org, job string, opt LogStreamOptions, fn func(JobLogMessage) error) error {
	maxRe := opt.MaxReconnects
	if maxRe == 0 {
		maxRe = 5
	}
	cursor, failures := opt.Cursor, 0
	for {
		progressed, err := c.streamOnce(ctx, org, job, opt, cursor, func(m JobLogMessage) error {
			cursor = m.Cursor
			return fn(m)
		})
		if err == nil || ctx.Err() != nil {
			return err
		}
		var ae *APIError
		var ce callbackError
		if errors.As(err, &ce) {
			return ce.err
		}
		if errors.As(err, &ae) || errors.Is(err, ErrLogStream) {
			return err
		}
		if progressed {
			failures = 0
		}
		if failures++; maxRe < 0 || failures > maxRe {
			return err
		}
		opt.TailLines = 0 // resume by cursor (or from the start)
		select {
		case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// callbackError carries an error of StreamJobLogs' fn.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// streamOnce reads one connection of a log stream; progressed reports
// whether it delivered a message.
func (c *Client) streamOnce(ctx context.Context, org, job string, opt LogStreamOptions, cursor string, fn func(JobLogMessage) error) (progressed bool, err error) {
	q := url.Values{}
	if opt.Type != "" {
		q.Set("type", opt.Type)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	} else if opt.TailLines > 0 {
		q.Set("tailLines", strconv.Itoa(opt.TailLines))
	}
	path := orgPath(org, "jobs", job, "attempts", strconv.FormatInt(opt.Attempt, 10), "logs", "stream")
	resp, err := c.open(ctx, http.MethodGet, path, q, nil, func(r *http.Request) { r.Header.Set("Accept", "text/event-stream") })
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			ev, d := event, strings.Join(data, "\n")
			event, data = "", nil
			switch ev {
			case "message":
				var m JobLogMessage
				if err := json.Unmarshal([]byte(d), &m); err != nil {
					return progressed, fmt.Errorf("log stream of job %s: bad message: %w", job, err)
				}
				if err := fn(m); err != nil {
					return progressed, callbackError{err}
				}
				progressed = true
			case "signal":
				if d == "EOF" {
					return progressed, nil
				}
			case "error":
				var e apitypes.JobLogError
				_ = json.Unmarshal([]byte(d), &e)
				return progressed, fmt.Errorf("job %s: %w: %s", job, ErrLogStream, e.Error)
			}
		case strings.HasPrefix(line, ":"): // comment (keep-alive)
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimPrefix(line, "data:")
			data = append(data, strings.TrimPrefix(d, " "))
		}
	}
	if err := sc.Err(); err != nil {
		return progressed, fmt.Errorf("log stream of job %s: %w", job, err)
	}
	return progressed, fmt.Errorf("log stream of job %s: %w", job, io.ErrUnexpectedEOF)
}

// ---- artifacts ----

func artifactPath(org, job string, attempt int64, parts ...string) string {
	return orgPath(org, append([]string{"artifacts", "jobs", job, "attempts", strconv.FormatInt(attempt, 10)}, parts...)...)
}

func spaceQuery(space string) url.Values {
	q := url.Values{}
	if space != "" {
		q.Set("space", space)
	}
	return q
}

// ListArtifacts lists a job attempt's artifacts in space ("" or user: the
// files of spec.uploadArtifact; system: stdout and stderr).
func (c *Client) ListArtifacts(ctx context.Context, org, job string, attempt int64, space string) ([]Artifact, error) {
	var out []Artifact
	if err := c.do(ctx, http.MethodGet, artifactPath(org, job, attempt), spaceQuery(space), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// ArtifactInfo describes one artifact (size, content type, SHA-256, metadata).
func (c *Client) ArtifactInfo(ctx context.Context, org, job string, attempt int64, space, path string) (*Artifact, error) {
	q := spaceQuery(space)
	q.Set("path", path)
	var out Artifact
	if err := c.do(ctx, http.MethodGet, artifactPath(org, job, attempt, "objects"), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DownloadArtifact writes an artifact's bytes to w and returns how many it
// wrote; a short copy is an error.
func (c *Client) DownloadArtifact(ctx context.Context, org, job string, attempt int64, space, path string, w io.Writer) (int64, error) {
	q := spaceQuery(space)
	q.Set("path", path)
	resp, err := c.open(ctx, http.MethodGet, artifactPath(org, job, attempt, "objects", "download"), q, nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download artifact %s of job %s: %w", path, job, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("download artifact %s of job %s: got %d of %d bytes: %w", path, job, n, resp.ContentLength, io.ErrUnexpectedEOF)
	}
	return n, nil
}

// ---- runner side ----

// RunnerClient is the runner protocol's client (docs/jobs.md): what a
// runner pod uses to claim jobs of its runner group, report output and
// heartbeats, upload artifacts and finish. It authenticates with the
// runner group's token; the pod names itself in every request.
type RunnerClient struct {
	base              *url.URL
	http              *http.Client
	org, group, token string
	namespace, pod    string
}

// NewRunnerClient returns a runner client of the runner group org/group
// with its token, for pod namespace/pod. hc nil: a client with a 60s
// timeout for the short requests (claims and uploads have none of their own:
// ctx bounds them).
func NewRunnerClient(baseURL, org, group, token, namespace, pod string, hc *http.Client) (*RunnerClient, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("runner client: base URL %q: want http(s)://host[:port]", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &RunnerClient{base: u, http: hc, org: org, group: group, token: token, namespace: namespace, pod: pod}, nil
}

func (r *RunnerClient) auth(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set(apitypes.HeaderRunnerOrg, r.org)
	req.Header.Set(apitypes.HeaderRunnerGroup, r.group)
	req.Header.Set(apitypes.HeaderRunnerPod, r.namespace+"/"+r.pod)
}

func (r *RunnerClient) call(ctx context.Context, method, path string, q url.Values, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := openRaw(ctx, r.base, r.http, method, path, q, body, func(req *http.Request) {
		r.auth(req)
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent || out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

func runnerJobPath(job string, attempt int64, what string) string {
	return "/api/v2/runner/jobs/" + url.PathEscape(job) + "/attempts/" + strconv.FormatInt(attempt, 10) + "/" + what
}

// Claim asks for the oldest queued job of the runner group, waiting up to
// wait; nil when none came. A job the pod was still running is failed by
// the control plane (the pod restarted).
func (r *RunnerClient) Claim(ctx context.Context, wait time.Duration) (*apitypes.RunnerJob, error) {
	var out apitypes.RunnerClaimAnswer
	ctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	code, err := r.call(ctx, http.MethodPost, "/api/v2/runner/claim", url.Values{"wait": {wait.String()}},
		apitypes.RunnerClaim{Pod: r.pod, Namespace: r.namespace}, &out)
	if err != nil || code == http.StatusNoContent {
		return nil, err
	}
	return &out.Job, nil
}

// Events reports output (none: a heartbeat) and answers whether to cancel.
// An error matching ErrConflict means the attempt is not running on this pod
// any more: stop the process.
func (r *RunnerClient) Events(ctx context.Context, job string, attempt int64, logs []apitypes.LogChunk) (*apitypes.RunnerEventsAnswer, error) {
	var out apitypes.RunnerEventsAnswer
	if _, err := r.call(ctx, http.MethodPost, runnerJobPath(job, attempt, "events"), nil, apitypes.RunnerEvents{Logs: logs}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UploadArtifact uploads a file named in the job's spec.uploadArtifact
// (size -1 when unknown).
func (r *RunnerClient) UploadArtifact(ctx context.Context, job string, attempt int64, path, contentType string, body io.Reader, size int64) (*Artifact, error) {
	resp, err := openRaw(ctx, r.base, r.http, http.MethodPut, runnerJobPath(job, attempt, "artifacts"), url.Values{"path": {path}}, body, func(req *http.Request) {
		r.auth(req)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if size >= 0 {
			req.ContentLength = size
		}
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out Artifact
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("upload artifact %s of job %s: decode answer: %w", path, job, err)
	}
	return &out, nil
}

// Finish reports the end of the attempt.
func (r *RunnerClient) Finish(ctx context.Context, job string, attempt int64, fin apitypes.RunnerFinish) (*Job, error) {
	var out Job
	if _, err := r.call(ctx, http.MethodPost, runnerJobPath(job, attempt, "finish"), nil, fin, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
