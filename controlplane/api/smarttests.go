package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/smarttests"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// Thin handlers of smart tests and their executions; controlplane/smarttests
// does the work (docs/smart-tests.md).

// maxSmartTestBody bounds a test: its script plus the rest of the spec.
const maxSmartTestBody = apitypes.MaxSmartTestScriptBytes + 256<<10

func (s *Server) registerSmartTests(o string) {
	user := s.authUser
	t := o + "/tests"
	s.handle(http.MethodGet, t, user, s.orgAccess, s.listSmartTests)
	s.handle(http.MethodGet, t+"/executions", user, s.orgAccess, s.listAllTestExecutions)
	s.handle(http.MethodGet, t+"/executions/:id", user, s.orgAccess, s.getTestExecution)
	s.handle(http.MethodPut, t+"/executions/:id/cancel", user, s.orgAccess, s.cancelTestExecution)
	s.handle(http.MethodGet, t+"/executions/:id/traffic-diff", user, s.orgAccess, s.getTrafficDiff)
	s.handle(http.MethodGet, t+"/executions/:id/traffic-diff-findings", user, s.orgAccess, s.getTrafficDiffFindings)
	s.handle(http.MethodPut, t+"/:name", user, s.orgAccess, s.applySmartTest)
	s.handle(http.MethodGet, t+"/:name", user, s.orgAccess, s.getSmartTest)
	s.handle(http.MethodDelete, t+"/:name", user, s.orgAccess, s.deleteSmartTest)
	s.handle(http.MethodPost, t+"/:name/executions", user, s.orgAccess, s.createTestExecution)
	s.handle(http.MethodGet, t+"/:name/executions", user, s.orgAccess, s.listTestExecutions)
	// Signadot's paths of one execution, under its test.
	s.handle(http.MethodGet, t+"/:name/executions/:id", user, s.orgAccess, s.testOfExecution, s.getTestExecution)
	s.handle(http.MethodPost, t+"/:name/executions/:id/cancel", user, s.orgAccess, s.testOfExecution, s.cancelTestExecution)
	s.handle(http.MethodGet, t+"/:name/executions/:id/traffic-diff", user, s.orgAccess, s.testOfExecution, s.getTrafficDiff)
}

// testOfExecution checks that the execution of a …/tests/:name/executions/:id
// route is one of that test's (404 otherwise).
func (s *Server) testOfExecution(c *gin.Context) {
	name, ok := s.validTestName(c)
	if !ok {
		return
	}
	id, ok := s.validExecutionID(c)
	if !ok {
		return
	}
	if err := s.tests.ExecutionOf(c.Request.Context(), c.Param("org"), name, id); err != nil {
		s.failTests(c, fmt.Sprintf("test execution %q of smart test %q", id, name), err)
		return
	}
	c.Next()
}

// MaxCaptureBatchBytes bounds one batch of captures an agent relays (a sidecar's batch of 64 captures with
// bodies of up to 64 KiB each, base64-encoded, fits).
const MaxCaptureBatchBytes = 16 << 20

// agentCaptures answers POST /api/v2/agent/captures: a JSON array of smarttest/diff.Capture that the
// capture points of the agent's cluster recorded, stored with their executions (smarttests.IngestCaptures).
func (s *Server) agentCaptures(c *gin.Context) {
	a := agentIdentity(c)
	body, ok := s.readBody(c, MaxCaptureBatchBytes)
	if !ok {
		return
	}
	var batch []diff.Capture
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&batch); err != nil || dec.More() {
		msg := "want a JSON array of captures"
		if err != nil {
			msg += ": " + err.Error()
		}
		s.fail(c, http.StatusBadRequest, apitypes.ReasonMalformed, msg)
		return
	}
	res, err := s.tests.IngestCaptures(c.Request.Context(), a.Org, a.Cluster, batch)
	if err != nil {
		s.failTests(c, fmt.Sprintf("captures of cluster %q", a.Cluster), err)
		return
	}
	c.JSON(http.StatusOK, res)
}

// previewCaptureSink returns the preview proxy's Capture: captures recorded at the preview capture point
// are kept like the agents' (smarttests.IngestCaptures), by one goroutine until ctx ends, so that a
// preview request never waits for the store; beyond a queue of 256 they are dropped (and logged).
func (s *Server) previewCaptureSink(ctx context.Context) func(org, cluster string, c diff.Capture) {
	type item struct {
		org, cluster string
		c            diff.Capture
	}
	q := make(chan item, 256)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case it := <-q:
				ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if _, err := s.tests.IngestCaptures(ictx, it.org, it.cluster, []diff.Capture{it.c}); err != nil {
					s.log.WarnContext(ictx, "keep a capture of the preview proxy", "org", it.org, "capture", it.c.ID, "err", err)
				}
				cancel()
			}
		}
	}()
	return func(org, cluster string, c diff.Capture) {
		select {
		case q <- item{org, cluster, c}:
		default:
			s.log.Warn("preview capture dropped: queue full", "org", org, "capture", c.ID)
		}
	}
}

// failTests maps the smart test service's errors to HTTP answers (the rest as failErr).
func (s *Server) failTests(c *gin.Context, what string, err error) {
	var ve *smarttests.ValidationError
	switch {
	case errors.As(err, &ve):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, ve.Error(), ve.Fields...)
	case errors.Is(err, smarttests.ErrNotFinished):
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, trimWrap(err)+": the traffic diff is made when it finishes")
	case errors.Is(err, smarttests.ErrNoDiff):
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, err.Error())
	case errors.Is(err, diff.ErrBadCategory):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, err.Error(), apitypes.FieldError{Path: "category", Message: "want red or yellow"})
	case errors.Is(err, store.ErrBadCursor):
		s.failListErr(c, what, err)
	default:
		s.failErr(c, what, err)
	}
}

func (s *Server) validTestName(c *gin.Context) (string, bool) {
	name := c.Param("name")
	if fe := apitypes.ValidateSmartTestName("name", name); fe != nil {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid test name: "+fe.Error(), *fe)
		return "", false
	}
	return name, true
}

var reExecutionID = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

func (s *Server) validExecutionID(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if !reExecutionID.MatchString(id) {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid execution id", apitypes.FieldError{Path: "id", Message: fmt.Sprintf("%q is not an execution id", id)})
		return "", false
	}
	return id, true
}

// ---- tests ----

func (s *Server) listSmartTests(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "smart tests", func(p store.PageRequest) (store.Page[store.SmartTest], error) {
		return s.tests.List(ctx, org, p)
	}, smarttests.TestView)
}

func (s *Server) applySmartTest(c *gin.Context) {
	name, ok := s.validTestName(c)
	if !ok {
		return
	}
	ifv, ok := ifVersion(c)
	if !ok {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, `If-Match must be a version in quotes, e.g. "3"`)
		return
	}
	var req apitypes.SmartTest
	if _, ok := s.decodeWireLimit(c, &req, apitypes.SmartTestWireRules, max(s.cfg.MaxBodyBytes, maxSmartTestBody)); !ok {
		return
	}
	t, created, err := s.tests.Apply(c.Request.Context(), c.Param("org"), name, req, ifv)
	if err != nil {
		s.failTests(c, fmt.Sprintf("smart test %q", name), err)
		return
	}
	if created {
		c.Header(apitypes.HeaderCreated, "true")
	}
	c.Header("ETag", fmt.Sprintf(`"%d"`, t.Version))
	c.JSON(http.StatusOK, t)
}

func (s *Server) getSmartTest(c *gin.Context) {
	name, ok := s.validTestName(c)
	if !ok {
		return
	}
	t, err := s.tests.Get(c.Request.Context(), c.Param("org"), name)
	if err != nil {
		s.failTests(c, fmt.Sprintf("smart test %q", name), err)
		return
	}
	c.Header("ETag", fmt.Sprintf(`"%d"`, t.Version))
	c.JSON(http.StatusOK, t)
}

func (s *Server) deleteSmartTest(c *gin.Context) {
	name, ok := s.validTestName(c)
	if !ok {
		return
	}
	if err := s.tests.Delete(c.Request.Context(), c.Param("org"), name); err != nil {
		s.failTests(c, fmt.Sprintf("smart test %q", name), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// ---- executions ----

func (s *Server) createTestExecution(c *gin.Context) {
	name, ok := s.validTestName(c)
	if !ok {
		return
	}
	var req apitypes.TestExecutionSpec
	if _, ok := s.decodeWire(c, &req, apitypes.TestExecutionWireRules); !ok {
		return
	}
	e, err := s.tests.CreateExecution(c.Request.Context(), c.Param("org"), name, req)
	if err != nil {
		s.failTests(c, fmt.Sprintf("smart test %q", name), err)
		return
	}
	c.JSON(http.StatusOK, e)
}

func (s *Server) listTestExecutions(c *gin.Context) {
	name, ok := s.validTestName(c)
	if !ok {
		return
	}
	if _, err := s.tests.Get(c.Request.Context(), c.Param("org"), name); err != nil {
		s.failTests(c, fmt.Sprintf("smart test %q", name), err)
		return
	}
	s.writeExecutions(c, store.TestExecutionFilter{Test: name})
}

func (s *Server) listAllTestExecutions(c *gin.Context) {
	q := c.Request.URL.Query()
	f := store.TestExecutionFilter{Test: q.Get("test"), Sandbox: q.Get("sandbox")}
	if f.Test != "" {
		if fe := apitypes.ValidateSmartTestName("test", f.Test); fe != nil {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid filter: "+fe.Error(), *fe)
			return
		}
	}
	if f.Sandbox != "" {
		if fe := apitypes.ValidateObjectName("sandbox", f.Sandbox); fe != nil {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid filter: "+fe.Error(), *fe)
			return
		}
	}
	s.writeExecutions(c, f)
}

func (s *Server) writeExecutions(c *gin.Context, f store.TestExecutionFilter) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "test executions", func(p store.PageRequest) (store.Page[store.TestExecution], error) {
		return s.tests.ListExecutions(ctx, org, f, p)
	}, func(e store.TestExecution) apitypes.TestExecution { return s.tests.View(ctx, e) })
}

func (s *Server) getTestExecution(c *gin.Context) {
	id, ok := s.validExecutionID(c)
	if !ok {
		return
	}
	e, err := s.tests.GetExecution(c.Request.Context(), c.Param("org"), id)
	if err != nil {
		s.failTests(c, fmt.Sprintf("test execution %q", id), err)
		return
	}
	c.JSON(http.StatusOK, e)
}

func (s *Server) cancelTestExecution(c *gin.Context) {
	id, ok := s.validExecutionID(c)
	if !ok {
		return
	}
	e, err := s.tests.CancelExecution(c.Request.Context(), c.Param("org"), id)
	if err != nil {
		s.failTests(c, fmt.Sprintf("test execution %q", id), err)
		return
	}
	c.JSON(http.StatusOK, e)
}

func (s *Server) getTrafficDiff(c *gin.Context) {
	id, ok := s.validExecutionID(c)
	if !ok {
		return
	}
	raw, err := s.tests.TrafficDiff(c.Request.Context(), c.Param("org"), id)
	if err != nil {
		s.failTests(c, fmt.Sprintf("test execution %q", id), err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", raw)
}

func (s *Server) getTrafficDiffFindings(c *gin.Context) {
	id, ok := s.validExecutionID(c)
	if !ok {
		return
	}
	n := 0
	if v := c.Query("maxFindings"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "maxFindings must be an integer >= 0", apitypes.FieldError{Path: "maxFindings", Message: "want an integer >= 0 (0: all)"})
			return
		}
	}
	fs, err := s.tests.TrafficDiffFindings(c.Request.Context(), c.Param("org"), id, c.Query("category"), n)
	if err != nil {
		s.failTests(c, fmt.Sprintf("test execution %q", id), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.TrafficDiffFindings{Findings: fs})
}
