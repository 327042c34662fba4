package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

const testToken = "smr_test-token"

// fakeCP is a small control plane speaking the four routes of the runner
// protocol, recording what the runner sends.
type fakeCP struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	queue      []apitypes.RunnerJob
	claims     int
	failClaims int                                // answer 500 to the first claims
	failEvents int                                // answer 503 to the first events requests
	events     map[string][]apitypes.RunnerEvents // by job name
	artifacts  map[string]map[string]fakeArtifact // job -> path
	cancel     map[string]string                  // job -> reason answered once output holds "started"
	conflict   map[string]bool                    // job -> answer 409 once output holds "started"
	finished   map[string]apitypes.RunnerFinish   // job -> finish
	finishedCh chan string
	badAuth    []string
}

type fakeArtifact struct {
	data        []byte
	contentType string
}

func newFakeCP(t *testing.T) *fakeCP {
	f := &fakeCP{t: t, events: map[string][]apitypes.RunnerEvents{}, artifacts: map[string]map[string]fakeArtifact{},
		cancel: map[string]string{}, conflict: map[string]bool{}, finished: map[string]apitypes.RunnerFinish{}, finishedCh: make(chan string, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/runner/claim", f.claim)
	mux.HandleFunc("POST /api/v2/runner/jobs/{name}/attempts/{n}/events", f.event)
	mux.HandleFunc("PUT /api/v2/runner/jobs/{name}/attempts/{n}/artifacts", f.artifact)
	mux.HandleFunc("POST /api/v2/runner/jobs/{name}/attempts/{n}/finish", f.finish)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken || r.Header.Get(apitypes.HeaderRunnerGroup) != "grp" ||
			r.Header.Get(apitypes.HeaderRunnerOrg) != "acme" || strings.Contains(r.URL.String(), "smr_") {
			f.mu.Lock()
			f.badAuth = append(f.badAuth, r.Method+" "+r.URL.String())
			f.mu.Unlock()
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.badAuth) > 0 {
			t.Errorf("requests without the runner's credentials (or with the token in the URL): %v", f.badAuth)
		}
	})
	return f
}

func (f *fakeCP) add(j apitypes.RunnerJob) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j.Org = "acme"
	f.queue = append(f.queue, j)
}

func (f *fakeCP) claim(w http.ResponseWriter, r *http.Request) {
	var c apitypes.RunnerClaim
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.Pod != "pod-1" || c.Namespace != "jobs" {
		http.Error(w, fmt.Sprintf("bad claim %+v %v", c, err), http.StatusBadRequest)
		return
	}
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil {
		http.Error(w, "bad wait", http.StatusBadRequest)
		return
	}
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		f.claims++
		if f.failClaims > 0 {
			f.failClaims--
			f.mu.Unlock()
			http.Error(w, `{"error":"database down"}`, http.StatusInternalServerError)
			return
		}
		if len(f.queue) > 0 {
			j := f.queue[0]
			f.queue = f.queue[1:]
			f.mu.Unlock()
			json.NewEncoder(w).Encode(apitypes.RunnerClaimAnswer{Job: j})
			return
		}
		f.mu.Unlock()
		if time.Now().After(deadline) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (f *fakeCP) event(w http.ResponseWriter, r *http.Request) {
	var ev apitypes.RunnerEvents
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	name := r.PathValue("name")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failEvents > 0 {
		f.failEvents--
		http.Error(w, `{"error":"control plane restarting"}`, http.StatusServiceUnavailable)
		return
	}
	if _, ok := f.finished[name]; ok {
		http.Error(w, `{"error":"attempt finished"}`, http.StatusConflict)
		return
	}
	f.events[name] = append(f.events[name], ev)
	started := strings.Contains(f.outputLocked(name, apitypes.LogStreamStdout), "started")
	if started && f.conflict[name] {
		http.Error(w, `{"error":"attempt not running on this pod"}`, http.StatusConflict)
		return
	}
	ans := apitypes.RunnerEventsAnswer{}
	if reason, ok := f.cancel[name]; ok && started {
		ans = apitypes.RunnerEventsAnswer{Cancel: true, Reason: reason}
	}
	json.NewEncoder(w).Encode(ans)
}

func (f *fakeCP) artifact(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil || int64(len(b)) != r.ContentLength {
		http.Error(w, "short body", http.StatusBadRequest)
		return
	}
	name := r.PathValue("name")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.artifacts[name] == nil {
		f.artifacts[name] = map[string]fakeArtifact{}
	}
	f.artifacts[name][r.URL.Query().Get("path")] = fakeArtifact{data: b, contentType: r.Header.Get("Content-Type")}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeCP) finish(w http.ResponseWriter, r *http.Request) {
	var fin apitypes.RunnerFinish
	if err := json.NewDecoder(r.Body).Decode(&fin); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	name := r.PathValue("name")
	f.mu.Lock()
	if _, ok := f.finished[name]; ok {
		f.mu.Unlock()
		http.Error(w, `{"error":"finished twice"}`, http.StatusConflict)
		f.t.Errorf("job %s finished twice", name)
		return
	}
	f.finished[name] = fin
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	f.finishedCh <- name
}

// outputLocked concatenates one stream of a job's events.
func (f *fakeCP) outputLocked(name, stream string) string {
	var b strings.Builder
	for _, ev := range f.events[name] {
		for _, c := range ev.Logs {
			if c.Stream == stream {
				b.Write(c.Data)
			}
		}
	}
	return b.String()
}

func (f *fakeCP) output(name, stream string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.outputLocked(name, stream)
}

// sequence is a job's output as (stream, text) runs in arrival order,
// consecutive pieces of one stream merged.
func (f *fakeCP) sequence(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var seq []string
	last := ""
	for _, ev := range f.events[name] {
		for _, c := range ev.Logs {
			if c.Stream == last {
				seq[len(seq)-1] += string(c.Data)
				continue
			}
			seq = append(seq, c.Stream+":"+string(c.Data))
			last = c.Stream
		}
	}
	return seq
}

// waitFinish waits for the finish of job name.
func (f *fakeCP) waitFinish(t *testing.T, name string) apitypes.RunnerFinish {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case n := <-f.finishedCh:
			if n == name {
				f.mu.Lock()
				defer f.mu.Unlock()
				return f.finished[n]
			}
		case <-timeout:
			t.Fatalf("job %s did not finish; stdout %q stderr %q", name, f.output(name, "stdout"), f.output(name, "stderr"))
		}
	}
}
