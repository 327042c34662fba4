package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs/artifacts"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// blobCount counts the blobs the filesystem artifact store keeps under dir.
func blobCount(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type jobsEnv struct {
	*env
	arts string // folder of the filesystem artifact store
}

func newJobsEnv(t testing.TB, driver string) *jobsEnv {
	arts := t.TempDir()
	as, err := artifacts.NewFS(arts)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvTB(t, driver, func(c *api.Config) {
		c.SmartTests.CaptureGrace = -1 // tests that send captures wait for them themselves
		c.Jobs = jobs.Config{Artifacts: as, LostAfter: 3 * time.Second, CancelGrace: 700 * time.Millisecond,
			SweepInterval: 50 * time.Millisecond, ClaimPoll: 100 * time.Millisecond, LogPoll: 50 * time.Millisecond, MaxArtifactBytes: 1 << 20}
	})
	return &jobsEnv{env: e, arts: arts}
}

// runnerToken reads a runner group's token from the agent's state, as the agent does.
func (e *jobsEnv) runnerToken(t testing.TB, name string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v2/agent/state?wait=0s", nil)
	req.Header.Set(apitypes.HeaderClusterToken, e.tokenA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st apitypes.AgentState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, o := range st.Objects {
		if o.Kind == "runnergroup" && o.Name == name && !o.Deleted {
			if !strings.HasPrefix(o.RunnerToken, apitypes.RunnerTokenPrefix) {
				t.Fatalf("runner group %s without token: %+v", name, o)
			}
			return o.RunnerToken
		}
		if o.Kind != "runnergroup" && o.RunnerToken != "" {
			t.Fatalf("%s %s carries a runner token", o.Kind, o.Name)
		}
	}
	t.Fatalf("runner group %s not in the agent's state", name)
	return ""
}

func (e *jobsEnv) runner(t testing.TB, group, token, pod string) *client.RunnerClient {
	t.Helper()
	rc, err := client.NewRunnerClient(e.http.URL, "acme", group, token, "sandboxmesh-jobs", pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func (e *jobsEnv) applyGroup(t testing.TB, name, timeout string) {
	t.Helper()
	rg, err := e.acme.ApplyRunnerGroup(context.Background(), "acme", &client.RunnerGroup{Name: name, Spec: apitypes.RunnerGroupSpec{Cluster: "c1", JobTimeout: timeout,
		PodTemplate: json.RawMessage(`{"spec":{"containers":[{"name":"main","image":"busybox"}]}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if rg.Spec.Namespace != apitypes.DefaultRunnerNamespace || rg.Spec.Scaling == nil || rg.Spec.Scaling.Manual.DesiredPods != 1 {
		t.Fatalf("defaults not applied: %+v", rg.Spec)
	}
}

func waitPhase(t *testing.T, c *client.Client, name, phase string) *client.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := c.GetJob(context.Background(), "acme", name)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status.Phase == phase {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: phase %s, want %s: %+v", name, j.Status.Phase, phase, j.Status)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestJobsEndToEnd plays a runner pod against a real server over loopback:
// submit, claim, output streamed live and resumed from a cursor, artifact
// upload and download, finish, output kept in the system space.
func TestJobsEndToEnd(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newJobsEnv(t, d)
			ctx := context.Background()
			e.applyGroup(t, "rg", "1h")
			sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("sb", nil))
			if err != nil {
				t.Fatal(err)
			}
			rc := e.runner(t, "rg", e.runnerToken(t, "rg"), "p1")

			claimed := make(chan *apitypes.RunnerJob, 1)
			go func() {
				j, err := rc.Claim(ctx, 10*time.Second)
				if err != nil {
					t.Error(err)
				}
				claimed <- j
			}()
			time.Sleep(100 * time.Millisecond) // the claim waits
			spec := apitypes.JobSpec{RunnerGroup: "rg", NamePrefix: "e2e", Script: "#!/bin/sh\necho hi\n", Env: []apitypes.EnvVar{{Name: "FOO", Value: "bar"}},
				RoutingContext: &apitypes.JobRoutingContext{Sandbox: "sb"}, UploadArtifact: []apitypes.ArtifactToUpload{{Path: "out/report.xml", Meta: map[string]string{"kind": "junit"}}}}
			job, err := e.acme.SubmitJob(ctx, "acme", spec)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(job.Name, "e2e-") || len(job.Name) != len("e2e-")+5 || job.Status.Phase != "queued" || job.Status.RoutingKey != sb.RoutingKey {
				t.Fatalf("submitted: %+v", job)
			}
			var rj *apitypes.RunnerJob
			select {
			case rj = <-claimed:
			case <-time.After(5 * time.Second):
				t.Fatal("the waiting claim was not woken by the submit")
			}
			if rj == nil || rj.Name != job.Name || rj.Attempt != 0 || rj.Script != spec.Script || rj.RoutingKey != sb.RoutingKey || rj.TimeoutSeconds != 3600 {
				t.Fatalf("claimed: %+v", rj)
			}
			env := map[string]string{}
			for _, v := range rj.Env {
				env[v.Name] = v.Value
			}
			if env["FOO"] != "bar" || env["SIGNADOT_ROUTING_KEY"] != sb.RoutingKey || env["SANDBOXMESH_SANDBOX_NAME"] != "sb" || env["SIGNADOT_CONTROL_JOB_NAME"] != job.Name {
				t.Fatalf("env: %v", env)
			}
			if _, err := e.runner(t, "rg", e.runnerToken(t, "rg"), "p9").Events(ctx, job.Name, 0, nil); !errors.Is(err, client.ErrConflict) {
				t.Fatalf("events from another pod: %v", err)
			}
			if j := waitPhase(t, e.acme, job.Name, "running"); j.Status.Attempts[0].State.Running.PodName != "p1" {
				t.Fatalf("running: %+v", j.Status.Attempts[0])
			}

			// live stream
			msgs := make(chan client.JobLogMessage, 16)
			streamDone := make(chan error, 1)
			go func() {
				streamDone <- e.acme.StreamJobLogs(ctx, "acme", job.Name, client.LogStreamOptions{}, func(m client.JobLogMessage) error { msgs <- m; return nil })
			}()
			next := func() client.JobLogMessage {
				t.Helper()
				select {
				case m := <-msgs:
					return m
				case <-time.After(5 * time.Second):
					t.Fatal("no log message within 5s")
				}
				return client.JobLogMessage{}
			}
			for i, line := range []string{"line1\n", "line2\n"} {
				ans, err := rc.Events(ctx, job.Name, 0, []apitypes.LogChunk{{Stream: "stdout", Data: []byte(line)}, {Stream: "stderr", Data: []byte("err" + line)}})
				if err != nil || ans.Cancel {
					t.Fatalf("events: %+v %v", ans, err)
				}
				if m := next(); m.Message != line || m.Cursor == "" {
					t.Fatalf("message %d: %+v", i, m)
				}
			}
			first := ""
			_ = e.acme.StreamJobLogs(ctx, "acme", job.Name, client.LogStreamOptions{TailLines: 1, MaxReconnects: -1}, func(m client.JobLogMessage) error {
				first = m.Message
				return errors.New("stop")
			})
			if first != "line2\n" {
				t.Fatalf("tailLines=1: %q", first)
			}

			// artifacts
			payload := make([]byte, 300<<10)
			_, _ = rand.Read(payload)
			if _, err := rc.UploadArtifact(ctx, job.Name, 0, "out/other.xml", "text/xml", bytes.NewReader(payload), -1); err == nil || apiErr(t, err).Status != 400 {
				t.Fatalf("upload of a path not in spec: %v", err)
			}
			if _, err := rc.UploadArtifact(ctx, job.Name, 0, "../../etc/passwd", "", bytes.NewReader(payload), -1); err == nil || apiErr(t, err).Fields[0].Path != "path" {
				t.Fatalf("upload of an escaping path: %v", err)
			}
			if _, err := rc.UploadArtifact(ctx, job.Name, 0, "out/report.xml", "", bytes.NewReader(make([]byte, 2<<20)), -1); err == nil || apiErr(t, err).Status != 413 {
				t.Fatalf("upload of a too large artifact: %v", err)
			}
			a, err := rc.UploadArtifact(ctx, job.Name, 0, "out/report.xml", "application/xml", bytes.NewReader(payload), int64(len(payload)))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(payload)
			if a.ChecksumSHA256 != hex.EncodeToString(sum[:]) || a.ContentLength != int64(len(payload)) {
				t.Fatalf("uploaded: %+v", a)
			}
			if _, err := rc.Events(ctx, job.Name, 0, []apitypes.LogChunk{{Stream: "stdout", Data: []byte("line3\n")}}); err != nil {
				t.Fatal(err)
			}
			if m := next(); m.Message != "line3\n" {
				t.Fatalf("message 3: %+v", m)
			}
			fin, err := rc.Finish(ctx, job.Name, 0, apitypes.RunnerFinish{ExitCode: 0})
			if err != nil || fin.Status.Phase != "succeeded" || fin.Status.Attempts[0].State.Succeeded == nil {
				t.Fatalf("finish: %+v %v", fin, err)
			}
			select {
			case err := <-streamDone:
				if err != nil {
					t.Fatalf("stream: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the stream did not end with EOF after the finish")
			}
			if _, err := rc.Events(ctx, job.Name, 0, nil); !errors.Is(err, client.ErrConflict) {
				t.Fatalf("events after finish: %v", err)
			}

			// resume from the cursor of line1
			var cur1 string
			var got []string
			if err := e.acme.StreamJobLogs(ctx, "acme", job.Name, client.LogStreamOptions{}, func(m client.JobLogMessage) error {
				if cur1 == "" {
					cur1 = m.Cursor
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := e.acme.StreamJobLogs(ctx, "acme", job.Name, client.LogStreamOptions{Cursor: cur1}, func(m client.JobLogMessage) error {
				got = append(got, m.Message)
				return nil
			}); err != nil || strings.Join(got, "") != "line2\nline3\n" {
				t.Fatalf("resumed: %q %v", got, err)
			}
			err = e.acme.StreamJobLogs(ctx, "acme", job.Name, client.LogStreamOptions{Type: "stderr", Cursor: cur1}, func(client.JobLogMessage) error { return nil })
			if ae := apiErr(t, err); ae.Status != 400 || ae.Fields[0].Path != "cursor" {
				t.Fatalf("stdout cursor on stderr: %+v", ae)
			}

			info, err := e.acme.ArtifactInfo(ctx, "acme", job.Name, 0, "", "out/report.xml")
			if err != nil || info.ChecksumSHA256 != hex.EncodeToString(sum[:]) || info.ContentType != "application/xml" || info.Metadata["kind"] != "junit" {
				t.Fatalf("info: %+v %v", info, err)
			}
			var buf bytes.Buffer
			if _, err := e.acme.DownloadArtifact(ctx, "acme", job.Name, 0, "", "out/report.xml", &buf); err != nil || !bytes.Equal(buf.Bytes(), payload) {
				t.Fatalf("download: %d bytes, %v", buf.Len(), err)
			}
			buf.Reset()
			if _, err := e.acme.DownloadArtifact(ctx, "acme", job.Name, 0, "system", "stdout", &buf); err != nil || buf.String() != "line1\nline2\nline3\n" {
				t.Fatalf("stdout: %q %v", buf.String(), err)
			}
			sys, err := e.acme.ListArtifacts(ctx, "acme", job.Name, 0, "system")
			if err != nil || len(sys) != 2 || sys[0].Path != "stderr" || sys[1].Path != "stdout" {
				t.Fatalf("system space: %+v %v", sys, err)
			}
			if _, err := e.other.GetJob(ctx, "other", job.Name); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("job seen from another org: %v", err)
			}
			if list, err := e.acme.ListJobs(ctx, "acme", client.JobFilter{TargetSandbox: "sb", Phase: "succeeded"}); err != nil || len(list) != 1 {
				t.Fatalf("list: %+v %v", list, err)
			}

			// delete: logs and artifacts go
			if err := e.acme.DeleteJob(ctx, "acme", job.Name); err != nil {
				t.Fatal(err)
			}
			if n := blobCount(t, e.arts); n != 0 {
				t.Fatalf("%d artifacts left after the delete", n)
			}
			if _, err := e.acme.ArtifactInfo(ctx, "acme", job.Name, 0, "", "out/report.xml"); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("artifact after delete: %v", err)
			}
		})
	}
}

// TestJobsCancelLostAndTimeout: cancel of queued and running jobs, a runner
// that stops reporting, and jobTimeout.
func TestJobsCancelLostAndTimeout(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newJobsEnv(t, d)
			ctx := context.Background()
			e.applyGroup(t, "rg", "1h")
			e.applyGroup(t, "short", "1s")
			rc := e.runner(t, "rg", e.runnerToken(t, "rg"), "p1")
			submit := func(group string) string {
				j, err := e.acme.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: group, Command: []string{"sleep", "100"}})
				if err != nil {
					t.Fatal(err)
				}
				return j.Name
			}
			// queued → canceled at once
			q := submit("rg")
			if j, err := e.acme.CancelJob(ctx, "acme", q); err != nil || j.Status.Phase != "canceled" || j.Status.Attempts[0].State.Canceled.CanceledBy != "apiRequest" {
				t.Fatalf("cancel queued: %+v %v", j, err)
			}
			if j, err := rc.Claim(ctx, 0); err != nil || j != nil {
				t.Fatalf("claimed a canceled job: %+v %v", j, err)
			}
			// running → the runner is told, and finishes canceled
			r := submit("rg")
			if j, err := rc.Claim(ctx, time.Second); err != nil || j == nil || j.Name != r {
				t.Fatalf("claim: %+v %v", j, err)
			}
			if _, err := e.acme.CancelJob(ctx, "acme", r); err != nil {
				t.Fatal(err)
			}
			ans, err := rc.Events(ctx, r, 0, nil)
			if err != nil || !ans.Cancel || ans.Reason != "apiRequest" {
				t.Fatalf("heartbeat after cancel: %+v %v", ans, err)
			}
			if j, err := rc.Finish(ctx, r, 0, apitypes.RunnerFinish{ExitCode: 143, Canceled: true}); err != nil || j.Status.Phase != "canceled" {
				t.Fatalf("finish canceled: %+v %v", j, err)
			}
			// a runner that stops reporting: failed by the sweeper
			lost := submit("rg")
			if j, err := rc.Claim(ctx, time.Second); err != nil || j == nil || j.Name != lost {
				t.Fatalf("claim: %+v %v", j, err)
			}
			j := waitPhase(t, e.acme, lost, "failed")
			if msg := j.Status.Attempts[0].State.Failed.Message; msg != "runner pod sandboxmesh-jobs/p1 stopped reporting (deleted or crashed)" {
				t.Fatalf("lost runner: %q", msg)
			}
			// jobTimeout: cancel asked at 1s, canceled after the grace period without a finish
			rs := e.runner(t, "short", e.runnerToken(t, "short"), "p2")
			slow := submit("short")
			if j, err := rs.Claim(ctx, time.Second); err != nil || j == nil || j.TimeoutSeconds != 1 {
				t.Fatalf("claim: %+v %v", j, err)
			}
			asked := false
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				ans, err := rs.Events(ctx, slow, 0, nil)
				if errors.Is(err, client.ErrConflict) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				asked = asked || (ans.Cancel && ans.Reason == "timeout")
				time.Sleep(100 * time.Millisecond)
			}
			j = waitPhase(t, e.acme, slow, "canceled")
			if !asked || j.Status.Attempts[0].State.Canceled.CanceledBy != "timeout" {
				t.Fatalf("timeout: asked=%v %+v", asked, j.Status.Attempts[0])
			}
			// the runner group's status counts its jobs
			submit("rg")
			rg, err := e.acme.GetRunnerGroup(ctx, "acme", "rg")
			if err != nil || rg.Status.Executions.Queued != 1 || rg.Status.Executions.Running != 0 {
				t.Fatalf("status: %+v %v", rg.Status, err)
			}
		})
	}
}

// TestJobsBadInput: bad submissions get 400 with the field path and store nothing.
func TestJobsBadInput(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newJobsEnv(t, d)
			ctx := context.Background()
			e.applyGroup(t, "rg", "")
			if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("sb", nil)); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name, body, path string
				status           int
			}{
				{"unknown runner group", `{"spec":{"runnerGroup":"nope","script":"#!/bin/sh"}}`, "spec.runnerGroup", 400},
				{"unknown sandbox", `{"spec":{"runnerGroup":"rg","script":"#!/bin/sh","routingContext":{"sandbox":"nope"}}}`, "spec.routingContext.sandbox", 400},
				{"sandbox and routegroup", `{"spec":{"runnerGroup":"rg","script":"#!/bin/sh","routingContext":{"sandbox":"sb","routegroup":"x"}}}`, "spec.routingContext", 400},
				{"no script or command", `{"spec":{"runnerGroup":"rg"}}`, "spec.script", 400},
				{"script without #!", `{"spec":{"runnerGroup":"rg","script":"echo hi"}}`, "spec.script", 400},
				{"huge script", `{"spec":{"runnerGroup":"rg","script":"#!/bin/sh\n` + strings.Repeat("#", apitypes.MaxScriptBytes) + `"}}`, "spec.script", 400},
				{"artifact path escape", `{"spec":{"runnerGroup":"rg","command":["x"],"uploadArtifact":[{"path":"../../etc/shadow"}]}}`, "spec.uploadArtifact[0].path", 400},
				{"reserved env", `{"spec":{"runnerGroup":"rg","command":["x"],"env":[{"name":"SIGNADOT_ROUTING_KEY","value":"x"}]}}`, "spec.env[0].name", 400},
				{"unknown field", `{"spec":{"runnerGroup":"rg","command":["x"],"bogus":1}}`, "spec.bogus", 400},
				{"traffic manager", `{"spec":{"runnerGroup":"rg","command":["x"],"trafficManager":{"enabled":true}}}`, "spec.trafficManager", 400},
				{"name given", `{"name":"mine","spec":{"runnerGroup":"rg","command":["x"]}}`, "name", 400},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/api/v2/orgs/acme/jobs", strings.NewReader(tc.body))
					req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					var er apitypes.ErrorResponse
					if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != tc.status || er.Code != tc.status || er.RequestID == "" || len(er.Fields) == 0 || !strings.HasPrefix(er.Fields[0].Path, tc.path) {
						t.Fatalf("answer %d %+v, want %d at %s", resp.StatusCode, er, tc.status, tc.path)
					}
				})
			}
			if list, err := e.acme.ListJobs(ctx, "acme", client.JobFilter{}); err != nil || len(list) != 0 {
				t.Fatalf("bad submissions stored jobs: %+v %v", list, err)
			}
			// bad runner groups
			_, err := e.acme.ApplyRunnerGroup(ctx, "acme", &client.RunnerGroup{Name: "bad", Spec: apitypes.RunnerGroupSpec{Cluster: "c1", JobTimeout: "soon"}})
			if ae := apiErr(t, err); ae.Status != 400 || ae.Fields[0].Path != "spec.jobTimeout" {
				t.Fatalf("bad runner group: %+v", ae)
			}
			_, err = e.acme.ApplyRunnerGroup(ctx, "acme", &client.RunnerGroup{Name: "bad", Spec: apitypes.RunnerGroupSpec{Cluster: "nope"}})
			if ae := apiErr(t, err); ae.Status != 400 || ae.Fields[0].Path != "spec.cluster" {
				t.Fatalf("runner group of an unknown cluster: %+v", ae)
			}
			_, err = e.acme.ApplyRunnerGroup(ctx, "acme", &client.RunnerGroup{Name: "bad", Spec: apitypes.RunnerGroupSpec{Cluster: "c1",
				PodTemplate: json.RawMessage(`{"spec":{"containers":"main"}}`)}})
			if ae := apiErr(t, err); ae.Status != 400 || ae.Fields[0].Path != "spec.podTemplate" {
				t.Fatalf("bad pod template: %+v", ae)
			}
			_, err = e.acme.ApplyRunnerGroup(ctx, "acme", &client.RunnerGroup{Name: "rg", Spec: apitypes.RunnerGroupSpec{Cluster: "c1", Namespace: "elsewhere"}})
			if ae := apiErr(t, err); ae.Status != 400 || ae.Fields[0].Path != "spec.namespace" {
				t.Fatalf("namespace change: %+v", ae)
			}
			if _, err := e.acme.GetRunnerGroup(ctx, "acme", "bad"); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("bad runner group stored: %v", err)
			}
			// bad cursor
			j, err := e.acme.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "rg", Command: []string{"x"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, cur := range []string{"garbage!", "eyJ2IjoxLCJrIjoiYWJjIiwicyI6MX0", strings.Repeat("A", 1000)} {
				err = e.acme.StreamJobLogs(ctx, "acme", j.Name, client.LogStreamOptions{Cursor: cur}, func(client.JobLogMessage) error { return nil })
				if ae := apiErr(t, err); ae.Status != 400 || ae.Fields[0].Path != "cursor" {
					t.Fatalf("cursor %q: %+v", cur, ae)
				}
			}
			for _, p := range []string{"../x", "a\x00b", ""} {
				_, err = e.acme.ArtifactInfo(ctx, "acme", j.Name, 0, "", p)
				if ae := apiErr(t, err); ae.Status != 400 || ae.Fields[0].Path != "path" {
					t.Fatalf("artifact path %q: %+v", p, ae)
				}
			}
		})
	}
}

// TestRunnerTokens: runner tokens work only on runner routes, only for
// their live group and its jobs; API keys never work on runner routes.
func TestRunnerTokens(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newJobsEnv(t, d)
			ctx := context.Background()
			e.applyGroup(t, "rg", "")
			e.applyGroup(t, "rg2", "")
			tok, tok2 := e.runnerToken(t, "rg"), e.runnerToken(t, "rg2")
			if tok == tok2 {
				t.Fatal("two runner groups share a token")
			}
			j, err := e.acme.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "rg", Command: []string{"x"}})
			if err != nil {
				t.Fatal(err)
			}
			// a runner token on user routes
			for _, h := range []func(*http.Request){
				func(r *http.Request) { r.Header.Set(apitypes.HeaderAPIKey, tok) },
				func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) },
			} {
				req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v2/orgs/acme/jobs/"+j.Name, nil)
				h(req)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("runner token on a user route: %d", resp.StatusCode)
				}
			}
			// an API key on runner routes
			for _, path := range []string{"/api/v2/runner/claim", "/api/v2/runner/jobs/" + j.Name + "/attempts/0/finish"} {
				req, _ := http.NewRequest(http.MethodPost, e.http.URL+path, strings.NewReader(`{"pod":"p","namespace":"n"}`))
				req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
				req.Header.Set("Authorization", "Bearer "+e.keyA)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("API key on %s: %d", path, resp.StatusCode)
				}
			}
			// the token of rg2 under rg's name, a forged token, another org
			for _, rc := range []*client.RunnerClient{e.runner(t, "rg", tok2, "p"), e.runner(t, "rg", tok+"x", "p"), e.runner(t, "rg", "smr_", "p")} {
				if _, err := rc.Claim(ctx, 0); !errors.Is(err, client.ErrUnauthorized) {
					t.Fatalf("wrong token: %v", err)
				}
			}
			other, _ := client.NewRunnerClient(e.http.URL, "other", "rg", tok, "ns", "p", nil)
			if _, err := other.Claim(ctx, 0); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("token under another org: %v", err)
			}
			// rg2's runner cannot touch rg's job
			rc2 := e.runner(t, "rg2", tok2, "p")
			if _, err := rc2.Events(ctx, j.Name, 0, nil); !errors.Is(err, client.ErrForbidden) {
				t.Fatalf("foreign job: %v", err)
			}
			if _, err := rc2.Finish(ctx, j.Name, 0, apitypes.RunnerFinish{}); !errors.Is(err, client.ErrForbidden) {
				t.Fatalf("foreign job finish: %v", err)
			}
			// a re-created group gets a new token; the old one stops working;
			// the queued job is canceled with the group
			if err := e.acme.DeleteRunnerGroup(ctx, "acme", "rg"); err != nil {
				t.Fatal(err)
			}
			if j, err := e.acme.GetJob(ctx, "acme", j.Name); err != nil || j.Status.Phase != "canceled" || j.Status.Attempts[0].State.Canceled.CanceledBy != "internal" {
				t.Fatalf("queued job of a deleted group: %+v %v", j, err)
			}
			if _, err := e.runner(t, "rg", tok, "p").Claim(ctx, 0); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("token of a deleted group: %v", err)
			}
			e.applyGroup(t, "rg", "")
			if fresh := e.runnerToken(t, "rg"); fresh == tok {
				t.Fatal("a re-created group kept its token")
			}
			if _, err := e.runner(t, "rg", tok, "p").Claim(ctx, 0); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("old token of a re-created group: %v", err)
			}
			// the runner group never shows its token to users
			req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v2/orgs/acme/runnergroups", nil)
			req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte(apitypes.RunnerTokenPrefix)) || !bytes.Contains(body, []byte(`"executions"`)) {
				t.Fatalf("runner group list: %s", body)
			}
			_ = fmt.Sprint()
		})
	}
}

// TestRunnerGroupStatusReport: the agent's status report of a runner group
// (pods) shows in the group's status with idle pods computed from the jobs;
// bad counts are refused.
func TestRunnerGroupStatusReport(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newJobsEnv(t, d)
			ctx := context.Background()
			e.applyGroup(t, "rg", "")
			report := func(body string) int {
				req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/api/v2/agent/status", strings.NewReader(body))
				req.Header.Set(apitypes.HeaderClusterToken, e.tokenA)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if code := report(`{"items":[{"kind":"runnergroup","org":"acme","name":"rg","version":1,"status":{"ready":true,"pods":{"ready":2,"notReady":1}}}]}`); code != 200 {
				t.Fatalf("report: %d", code)
			}
			if code := report(`{"items":[{"kind":"runnergroup","org":"acme","name":"rg","version":1,"status":{"pods":{"ready":-1}}}]}`); code != 400 {
				t.Fatalf("negative pods: %d", code)
			}
			if code := report(`{"items":[{"kind":"job","org":"acme","name":"rg","version":1,"status":{}}]}`); code != 400 {
				t.Fatalf("unknown kind: %d", code)
			}
			rg, err := e.acme.GetRunnerGroup(ctx, "acme", "rg")
			if err != nil || rg.Status.Pods != (apitypes.RunnerGroupPods{Ready: 2, NotReady: 1, Idle: 2}) {
				t.Fatalf("status: %+v %v", rg.Status, err)
			}
			if _, err := e.acme.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "rg", Command: []string{"x"}}); err != nil {
				t.Fatal(err)
			}
			if j, err := e.runner(t, "rg", e.runnerToken(t, "rg"), "p").Claim(ctx, time.Second); err != nil || j == nil {
				t.Fatalf("claim: %+v %v", j, err)
			}
			rg, err = e.acme.GetRunnerGroup(ctx, "acme", "rg")
			if err != nil || rg.Status.Pods.Idle != 1 || rg.Status.Executions.Running != 1 {
				t.Fatalf("status with a running job: %+v %v", rg.Status, err)
			}
		})
	}
}
