package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Thin handlers of runner groups, jobs, their logs and artifacts, and of
// the runner protocol; controlplane/jobs does the work (docs/jobs.md).

// maxJobBody bounds a job submission: a script of up to
// apitypes.MaxScriptBytes plus the rest of the spec, so that too large a
// script is a field error rather than a truncated body.
const maxJobBody = apitypes.MaxScriptBytes + 1<<20

// sseKeepAlive is how often an idle log stream sends a comment, so that
// proxies keep it open and a dead client is noticed.
const sseKeepAlive = 15 * time.Second

func (s *Server) registerJobs(o string) {
	user := s.authUser
	s.handle(http.MethodGet, o+"/runnergroups", user, s.orgAccess, s.listRunnerGroups)
	s.handle(http.MethodPut, o+"/runnergroups/:name", user, s.orgAccess, s.applyRunnerGroup)
	s.handle(http.MethodGet, o+"/runnergroups/:name", user, s.orgAccess, s.getRunnerGroup)
	s.handle(http.MethodDelete, o+"/runnergroups/:name", user, s.orgAccess, s.deleteRunnerGroup)

	s.handle(http.MethodPost, o+"/jobs", user, s.orgAccess, s.submitJob)
	s.handle(http.MethodGet, o+"/jobs", user, s.orgAccess, s.listJobs)
	s.handle(http.MethodGet, o+"/jobs/:name", user, s.orgAccess, s.getJob)
	s.handle(http.MethodDelete, o+"/jobs/:name", user, s.orgAccess, s.deleteJob)
	s.handle(http.MethodPut, o+"/jobs/:name/cancel", user, s.orgAccess, s.cancelJob)
	s.handle(http.MethodGet, o+"/jobs/:name/attempts/:attempt/logs/stream", user, s.orgAccess, s.streamJobLogs)

	a := o + "/artifacts/jobs/:name/attempts/:attempt"
	s.handle(http.MethodGet, a, user, s.orgAccess, s.listArtifacts)
	s.handle(http.MethodGet, a+"/objects", user, s.orgAccess, s.artifactInfo)
	s.handle(http.MethodGet, a+"/objects/download", user, s.orgAccess, s.downloadArtifact)

	r := "/api/v2/runner"
	s.handle(http.MethodPost, r+"/claim", s.authRunner, s.runnerClaim)
	s.handle(http.MethodPost, r+"/jobs/:name/attempts/:attempt/events", s.authRunner, s.runnerPod, s.runnerEvents)
	s.handle(http.MethodPut, r+"/jobs/:name/attempts/:attempt/artifacts", s.authRunner, s.runnerPod, s.runnerArtifact)
	s.handle(http.MethodPost, r+"/jobs/:name/attempts/:attempt/finish", s.authRunner, s.runnerPod, s.runnerFinish)
}

// failJobs maps the jobs service's errors to HTTP answers (the rest as failErr).
func (s *Server) failJobs(c *gin.Context, what string, err error) {
	var ve *jobs.ValidationError
	switch {
	case errors.As(err, &ve):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, ve.Error(), ve.Fields...)
	case errors.Is(err, jobs.ErrUnauthorized):
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "invalid runner token for this runner group")
	case errors.Is(err, jobs.ErrForbidden):
		s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, what+" is not a job of this runner group")
	case errors.Is(err, jobs.ErrTooLarge):
		s.fail(c, http.StatusRequestEntityTooLarge, apitypes.ReasonTooLarge, trimWrap(err))
	case errors.Is(err, jobs.ErrNoArtifactStore):
		s.fail(c, http.StatusServiceUnavailable, apitypes.ReasonUnavailable, "artifact storage is not configured on this control plane")
	case errors.Is(err, store.ErrBadCursor):
		s.failListErr(c, what, err)
	default:
		s.failErr(c, what, err)
	}
}

// ---- runner groups ----

func (s *Server) runnerGroupView(ctx context.Context, o store.Object) apitypes.RunnerGroup {
	v, err := s.jobs.RunnerGroupView(ctx, o)
	if err != nil {
		s.log.ErrorContext(ctx, "runner group view", "org", o.Org, "name", o.Name, "err", err)
	}
	return v
}

func (s *Server) listRunnerGroups(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "runner groups", func(p store.PageRequest) (store.Page[store.Object], error) {
		return s.st.ListObjects(ctx, store.KindRunnerGroup, org, store.ObjectSelector{}, p)
	}, func(o store.Object) apitypes.RunnerGroup { return s.runnerGroupView(ctx, o) })
}

func (s *Server) applyRunnerGroup(c *gin.Context) {
	name, ok := s.validName(c, "name", "name")
	if !ok {
		return
	}
	ifv, ok := ifVersion(c)
	if !ok {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, `If-Match must be a version in quotes, e.g. "3"`)
		return
	}
	var req apitypes.RunnerGroup
	if _, ok := s.decodeWire(c, &req, apitypes.RunnerGroupWireRules); !ok {
		return
	}
	o, created, err := s.jobs.ApplyRunnerGroup(c.Request.Context(), c.Param("org"), name, req, ifv)
	if err != nil {
		s.failJobs(c, "runner group "+name, err)
		return
	}
	if created {
		c.Header(apitypes.HeaderCreated, "true")
	}
	c.Header("ETag", fmt.Sprintf(`"%d"`, o.Version))
	c.JSON(http.StatusOK, s.runnerGroupView(c.Request.Context(), o))
}

func (s *Server) getRunnerGroup(c *gin.Context) {
	name, ok := s.validName(c, "name", "name")
	if !ok {
		return
	}
	o, err := s.st.Get(c.Request.Context(), store.KindRunnerGroup, c.Param("org"), name)
	if err != nil {
		s.failErr(c, fmt.Sprintf("runner group %q", name), err)
		return
	}
	c.Header("ETag", fmt.Sprintf(`"%d"`, o.Version))
	c.JSON(http.StatusOK, s.runnerGroupView(c.Request.Context(), o))
}

func (s *Server) deleteRunnerGroup(c *gin.Context) {
	name, ok := s.validName(c, "name", "name")
	if !ok {
		return
	}
	if err := s.jobs.DeleteRunnerGroup(c.Request.Context(), c.Param("org"), name); err != nil {
		s.failErr(c, fmt.Sprintf("runner group %q", name), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// ---- jobs ----

func (s *Server) submitJob(c *gin.Context) {
	var req apitypes.Job
	if _, ok := s.decodeWireLimit(c, &req, apitypes.JobWireRules, max(s.cfg.MaxBodyBytes, maxJobBody)); !ok {
		return
	}
	j, err := s.jobs.Submit(c.Request.Context(), c.Param("org"), req)
	if err != nil {
		s.failJobs(c, "job", err)
		return
	}
	c.JSON(http.StatusOK, j) // 200 like Signadot's create-job
}

func (s *Server) listJobs(c *gin.Context) {
	q := c.Request.URL.Query()
	f := store.JobFilter{RunnerGroup: q.Get("runnerGroup"), Sandbox: q.Get("targetSandbox"), Phase: q.Get("phase")}
	if f.RunnerGroup != "" {
		if fe := apitypes.ValidateObjectName("runnerGroup", f.RunnerGroup); fe != nil {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid filter: "+fe.Error(), *fe)
			return
		}
	}
	if f.Sandbox != "" {
		if fe := apitypes.ValidateObjectName("targetSandbox", f.Sandbox); fe != nil {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid filter: "+fe.Error(), *fe)
			return
		}
	}
	switch f.Phase {
	case "", store.JobQueued, store.JobRunning, store.JobSucceeded, store.JobFailed, store.JobCanceled:
	default:
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid filter: phase", apitypes.FieldError{Path: "phase", Message: "want queued, running, succeeded, failed or canceled"})
		return
	}
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "jobs", func(p store.PageRequest) (store.Page[store.Job], error) { return s.jobs.List(ctx, org, f, p) }, jobs.View)
}

// validJobName checks the :name of a job route (namePrefix-xxxxx, at most 38 characters).
func (s *Server) validJobName(c *gin.Context) (string, bool) {
	name := c.Param("name")
	if fe := apitypes.ValidateDNSName("name", name); fe != nil {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid job name: "+fe.Error(), *fe)
		return "", false
	}
	return name, true
}

func (s *Server) getJob(c *gin.Context) {
	name, ok := s.validJobName(c)
	if !ok {
		return
	}
	j, err := s.jobs.Get(c.Request.Context(), c.Param("org"), name)
	if err != nil {
		s.failJobs(c, fmt.Sprintf("job %q", name), err)
		return
	}
	c.JSON(http.StatusOK, j)
}

func (s *Server) deleteJob(c *gin.Context) {
	name, ok := s.validJobName(c)
	if !ok {
		return
	}
	if err := s.jobs.Delete(c.Request.Context(), c.Param("org"), name); err != nil {
		s.failJobs(c, fmt.Sprintf("job %q", name), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

func (s *Server) cancelJob(c *gin.Context) {
	name, ok := s.validJobName(c)
	if !ok {
		return
	}
	j, err := s.jobs.Cancel(c.Request.Context(), c.Param("org"), name)
	if err != nil {
		s.failJobs(c, fmt.Sprintf("job %q", name), err)
		return
	}
	c.JSON(http.StatusOK, j)
}

// attemptParam reads :attempt (an integer >= 0).
func (s *Server) attemptParam(c *gin.Context) (int64, bool) {
	n, err := strconv.ParseInt(c.Param("attempt"), 10, 64)
	if err != nil || n < 0 {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "attempt must be an integer >= 0", apitypes.FieldError{Path: "attempt", Message: "want an integer >= 0"})
		return 0, false
	}
	return n, true
}

// streamJobLogs streams an attempt's output as Server-Sent Events: event
// "message" with data {"message","cursor"}, "signal" with data EOF once the
// attempt finished and everything was sent, "error" with data {"error"}.
func (s *Server) streamJobLogs(c *gin.Context) {
	name, ok := s.validJobName(c)
	if !ok {
		return
	}
	attempt, ok := s.attemptParam(c)
	if !ok {
		return
	}
	q := c.Request.URL.Query()
	tail := 0
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "tailLines must be an integer >= 0", apitypes.FieldError{Path: "tailLines", Message: "want an integer >= 0"})
			return
		}
		tail = n
	}
	ctx := c.Request.Context()
	r, err := s.jobs.OpenLogs(ctx, c.Param("org"), name, attempt, q.Get("type"), q.Get("cursor"), tail)
	if err != nil {
		s.failJobs(c, fmt.Sprintf("job %q attempt %d", name, attempt), err)
		return
	}
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(event, data string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(max(s.cfg.WriteTimeout, 10*time.Second)))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := io.WriteString(w, ": stream open\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, sseKeepAlive)
		msgs, eof, err := r.Next(rctx)
		cancel()
		switch {
		case err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			_ = rc.SetWriteDeadline(time.Now().Add(max(s.cfg.WriteTimeout, 10*time.Second)))
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
			continue
		case err != nil:
			if ctx.Err() == nil {
				msg := "internal error (request ID " + c.GetString(ctxRequestID) + ")"
				if errors.Is(err, store.ErrNotFound) {
					msg = "the job was deleted"
				} else {
					s.log.ErrorContext(ctx, "job log stream", "job", name, "err", err, "requestId", c.GetString(ctxRequestID))
				}
				b, _ := json.Marshal(apitypes.JobLogError{Error: msg})
				send("error", string(b))
			}
			return
		}
		for _, m := range msgs {
			b, _ := json.Marshal(m)
			if !send("message", string(b)) {
				return
			}
		}
		if eof {
			send("signal", "EOF")
			return
		}
	}
}

// ---- artifacts ----

func (s *Server) artifactParams(c *gin.Context) (string, int64, bool) {
	name, ok := s.validJobName(c)
	if !ok {
		return "", 0, false
	}
	attempt, ok := s.attemptParam(c)
	return name, attempt, ok
}

func (s *Server) listArtifacts(c *gin.Context) {
	name, attempt, ok := s.artifactParams(c)
	if !ok {
		return
	}
	as, err := s.jobs.ListArtifacts(c.Request.Context(), c.Param("org"), name, attempt, c.Query("space"))
	if err != nil {
		s.failJobs(c, fmt.Sprintf("job %q", name), err)
		return
	}
	c.JSON(http.StatusOK, as)
}

func (s *Server) artifactInfo(c *gin.Context) {
	name, attempt, ok := s.artifactParams(c)
	if !ok {
		return
	}
	a, err := s.jobs.ArtifactInfo(c.Request.Context(), c.Param("org"), name, attempt, c.Query("space"), c.Query("path"))
	if err != nil {
		s.failJobs(c, fmt.Sprintf("artifact %q of job %q", c.Query("path"), name), err)
		return
	}
	c.JSON(http.StatusOK, a)
}

func (s *Server) downloadArtifact(c *gin.Context) {
	name, attempt, ok := s.artifactParams(c)
	if !ok {
		return
	}
	a, rc, err := s.jobs.OpenArtifact(c.Request.Context(), c.Param("org"), name, attempt, c.Query("space"), c.Query("path"))
	if err != nil {
		s.failJobs(c, fmt.Sprintf("artifact %q of job %q", c.Query("path"), name), err)
		return
	}
	defer rc.Close()
	ct := a.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := c.Writer.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(a.ContentLength, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", "attachment")
	h.Set("Sandboxmesh-Checksum-Sha256", a.ChecksumSHA256)
	// A large artifact outlives Config.WriteTimeout: allow a generous rate.
	setWriteDeadline(c.Writer, time.Now().Add(max(s.cfg.WriteTimeout, time.Duration(a.ContentLength/(256<<10))*time.Second)))
	c.Status(http.StatusOK)
	_, _ = io.Copy(c.Writer, rc)
}

// ---- runner protocol ----

const (
	ctxRunner    = "sm.runner"
	ctxRunnerPod = "sm.runnerPod"
)

// authRunner authenticates a runner token (Authorization: Bearer smr_…) for
// the runner group named by the Sandboxmesh-Runner-Org and -Group headers.
// API keys and cluster tokens are refused here, as runner tokens are on
// every other route.
func (s *Server) authRunner(c *gin.Context) {
	tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || !strings.HasPrefix(tok, apitypes.RunnerTokenPrefix) {
		msg := "missing runner token: send Authorization: Bearer smr_… with the Sandboxmesh-Runner-Org and Sandboxmesh-Runner-Group headers"
		if apiKeyFrom(c.Request.Header) != "" || c.GetHeader(apitypes.HeaderClusterToken) != "" {
			msg = "runner routes accept only a runner token, not an API key or cluster token"
		}
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, msg)
		return
	}
	r, err := s.jobs.AuthenticateRunner(c.Request.Context(), c.GetHeader(apitypes.HeaderRunnerOrg), c.GetHeader(apitypes.HeaderRunnerGroup), tok)
	if err != nil {
		s.failJobs(c, "runner token", err)
		return
	}
	c.Set(ctxRunner, r)
	c.Next()
}

func runnerOf(c *gin.Context) jobs.Runner {
	v, _ := c.Get(ctxRunner)
	r, _ := v.(jobs.Runner)
	return r
}

// runnerPod reads the optional Sandboxmesh-Runner-Pod header (namespace/pod):
// with it, the attempt must be running on that pod.
func (s *Server) runnerPod(c *gin.Context) {
	h := c.GetHeader(apitypes.HeaderRunnerPod)
	if h == "" {
		c.Next()
		return
	}
	ns, pod, ok := strings.Cut(h, "/")
	if !ok || apitypes.ValidateDNSName("namespace", ns) != nil || apitypes.ValidateText("pod", pod, 253, true) != nil || strings.Contains(pod, "/") {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "the "+apitypes.HeaderRunnerPod+" header must be namespace/pod",
			apitypes.FieldError{Path: apitypes.HeaderRunnerPod, Message: "want namespace/pod"})
		return
	}
	c.Set(ctxRunnerPod, jobs.Pod{Namespace: ns, Name: pod})
	c.Next()
}

func podOf(c *gin.Context) jobs.Pod {
	v, _ := c.Get(ctxRunnerPod)
	p, _ := v.(jobs.Pod)
	return p
}

func (s *Server) runnerClaim(c *gin.Context) {
	var req apitypes.RunnerClaim
	if !s.decode(c, &req) {
		return
	}
	wait := time.Duration(0)
	if v := c.Query("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "wait must be a duration, e.g. 25s", apitypes.FieldError{Path: "wait", Message: "want a duration such as 25s"})
			return
		}
		wait = d
	}
	setWriteDeadline(c.Writer, time.Now().Add(wait+longPollSlack))
	j, err := s.jobs.Claim(c.Request.Context(), runnerOf(c), jobs.Pod{Namespace: req.Namespace, Name: req.Pod}, wait)
	if err != nil {
		s.failJobs(c, "claim", err)
		return
	}
	if j == nil {
		c.Status(http.StatusNoContent)
		return
	}
	c.JSON(http.StatusOK, apitypes.RunnerClaimAnswer{Job: *j})
}

// failRunner answers a runner request about an attempt: a deleted job or
// an attempt no longer running on the pod is 409 (the runner stops).
func (s *Server) failRunner(c *gin.Context, name string, err error) {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, fmt.Sprintf("job %q: the attempt is not running on this pod (finished, canceled, deleted or given up); stop it", name))
		return
	}
	s.failJobs(c, fmt.Sprintf("job %q", name), err)
}

func (s *Server) runnerEvents(c *gin.Context) {
	name, attempt, ok := s.artifactParams(c)
	if !ok {
		return
	}
	var ev apitypes.RunnerEvents
	if _, ok := s.decodeWireLimit(c, &ev, nil, max(s.cfg.MaxBodyBytes, 8<<20)); !ok {
		return
	}
	ans, err := s.jobs.Events(c.Request.Context(), runnerOf(c), podOf(c), name, attempt, ev)
	if err != nil {
		s.failRunner(c, name, err)
		return
	}
	c.JSON(http.StatusOK, ans)
}

func (s *Server) runnerArtifact(c *gin.Context) {
	name, attempt, ok := s.artifactParams(c)
	if !ok {
		return
	}
	if c.Request.ContentLength > s.jobs.MaxArtifactBytes() {
		s.fail(c, http.StatusRequestEntityTooLarge, apitypes.ReasonTooLarge, fmt.Sprintf("artifact larger than %d bytes", s.jobs.MaxArtifactBytes()))
		return
	}
	a, err := s.jobs.UploadArtifact(c.Request.Context(), runnerOf(c), podOf(c), name, attempt, c.Query("path"), c.GetHeader("Content-Type"), c.Request.Body)
	if err != nil {
		s.failRunner(c, name, err)
		return
	}
	c.JSON(http.StatusOK, a)
}

func (s *Server) runnerFinish(c *gin.Context) {
	name, attempt, ok := s.artifactParams(c)
	if !ok {
		return
	}
	var fin apitypes.RunnerFinish
	if !s.decode(c, &fin) {
		return
	}
	j, err := s.jobs.Finish(c.Request.Context(), runnerOf(c), podOf(c), name, attempt, fin)
	if err != nil {
		s.failRunner(c, name, err)
		return
	}
	c.JSON(http.StatusOK, j)
}
