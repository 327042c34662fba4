package script_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// rewriteDoer sends every request to target (a test server on 127.0.0.1), keeping path and query, as an
// executor's Doer sends requests to the sandbox or baseline whatever host the script names.
type rewriteDoer struct {
	target *url.URL
	client *http.Client
}

func (d rewriteDoer) Do(req *http.Request) (*http.Response, error) {
	req.URL.Scheme = d.target.Scheme
	req.URL.Host = d.target.Host // req.Host keeps the script's host, as a Host header to the target
	return d.client.Do(req)
}

// newServer starts the test server: /echo returns the request as JSON, /status/N answers N, /big?n= answers
// n bytes, /slow?ms= waits, /deep?n= answers n "[", /dispatch is a hotrod-like JSON endpoint.
func newServer(t testing.TB) (*httptest.Server, script.Doer) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hdr := map[string]string{}
		for k, vs := range r.Header {
			hdr[strings.ToLower(k)] = strings.Join(vs, ",")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Custom", "yes")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "host": r.Host, "path": r.URL.Path, "query": r.URL.Query(), "headers": hdr, "body": string(body),
		})
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "status "+r.PathValue("code"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		_, _ = io.WriteString(w, strings.Repeat("x", n))
	})
	mux.HandleFunc("/deep", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		_, _ = io.WriteString(w, strings.Repeat("[", n))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			_, _ = io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/dispatch", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"customer": r.URL.Query().Get("customer"), "driver": "T7" + r.URL.Query().Get("customer"), "eta": 120,
			"requestId": r.Header.Get("X-Request-Id"),
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return srv, rewriteDoer{target: u, client: &http.Client{Timeout: 10 * time.Second}}
}

// runScript runs src against a fresh test server with small limits, after applying mutate.
func runScript(t testing.TB, src string, mutate func(*script.Config)) (*script.Result, error) {
	t.Helper()
	_, doer := newServer(t)
	cfg := script.Config{
		Filename:    "t.star",
		Source:      src,
		HTTP:        doer,
		MaxSteps:    1_000_000,
		Timeout:     10 * time.Second,
		HTTPTimeout: 5 * time.Second,
		MaxSleep:    time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return script.Run(ctx, cfg)
}

// failures formats every check error, for test messages.
func failures(res *script.Result) string {
	if res == nil {
		return "<nil result>"
	}
	var b strings.Builder
	for _, c := range res.Checks {
		for _, e := range c.Errors {
			b.WriteString(c.Name + ": " + e.Message + " at " + e.SourcePosition.String() + "\n")
		}
	}
	return b.String()
}
