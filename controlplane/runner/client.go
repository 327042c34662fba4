package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// Per-request timeouts (a claim waits ClaimWait plus claimSlack).
const (
	requestTimeout = 15 * time.Second
	claimSlack     = 15 * time.Second
	uploadTimeout  = 15 * time.Minute
)

// httpError is a non-2xx answer of the control plane.
type httpError struct {
	Method, Path string
	Status       int
	Msg          string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Msg)
}

func isStatus(err error, status int) bool {
	var he *httpError
	return errors.As(err, &he) && he.Status == status
}

func newTransport() http.RoundTripper {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // the claim long poll answers late; each request has a context deadline
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
}

// do sends one request of the runner protocol. body is JSON-encoded unless it
// is an io.Reader (sent raw with contentType and size). out, when not nil,
// receives a 200 answer's JSON. It returns the status of 2xx answers and an
// *httpError for others.
func (r *Runner) do(ctx context.Context, method, path string, q url.Values, body any, contentType string, size int64, out any) (int, error) {
	u := r.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd, contentType, size = bytes.NewReader(data), "application/json", int64(len(data))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if rd != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	req.Header.Set(apitypes.HeaderRunnerGroup, r.cfg.RunnerGroup)
	req.Header.Set(apitypes.HeaderRunnerOrg, r.cfg.Org)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "sandboxmesh-runner")
	resp, err := r.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return resp.StatusCode, &httpError{Method: method, Path: path, Status: resp.StatusCode, Msg: msg}
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// claim asks for a job, waiting up to ClaimWait; nil without error when
// nothing was queued.
func (r *Runner) claim(ctx context.Context) (*apitypes.RunnerJob, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ClaimWait+claimSlack)
	defer cancel()
	var ans apitypes.RunnerClaimAnswer
	q := url.Values{"wait": {r.cfg.ClaimWait.String()}}
	status, err := r.do(ctx, http.MethodPost, "/api/v2/runner/claim", q, apitypes.RunnerClaim{Pod: r.cfg.Pod, Namespace: r.cfg.Namespace}, "", 0, &ans)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent {
		return nil, nil
	}
	if ans.Job.Name == "" || ans.Job.Attempt < 0 {
		return nil, fmt.Errorf("claim: answer %d without a job name", status)
	}
	return &ans.Job, nil
}

func attemptPath(job *apitypes.RunnerJob, what string) string {
	return "/api/v2/runner/jobs/" + url.PathEscape(job.Name) + "/attempts/" + strconv.FormatInt(job.Attempt, 10) + "/" + what
}

func (r *Runner) events(ctx context.Context, job *apitypes.RunnerJob, ev apitypes.RunnerEvents) (apitypes.RunnerEventsAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var ans apitypes.RunnerEventsAnswer
	_, err := r.do(ctx, http.MethodPost, attemptPath(job, "events"), nil, ev, "", 0, &ans)
	return ans, err
}

func (r *Runner) upload(ctx context.Context, job *apitypes.RunnerJob, path string, body io.Reader, size int64, contentType string) error {
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	_, err := r.do(ctx, http.MethodPut, attemptPath(job, "artifacts"), url.Values{"path": {path}}, body, contentType, size, nil)
	return err
}

func (r *Runner) finish(ctx context.Context, job *apitypes.RunnerJob, f apitypes.RunnerFinish) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := r.do(ctx, http.MethodPost, attemptPath(job, "finish"), nil, f, "", 0, nil)
	return err
}
