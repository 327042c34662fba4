package executor

import (
	"net/http"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

const twentyRequests = `
for i in range(20):
    res = http.get(URL + "/eta", params={"customer": str(i)}, capture=True, name="eta-%d" % i)
    smart_test.check("eta", res.status_code == 200 and "eta" in json.decode(res.body()), "bad answer")
`

// BenchmarkExecuteTwentyRequests measures an execution (three runs) of a test of 20 captured requests
// against a local server whose answer depends on the routing key, beside its peer: the same script run three
// times by the bare runtime with a plain client (no routing key, no captures), so the difference is the
// executor's cost (key injection, recording, redaction).
func BenchmarkExecuteTwentyRequests(b *testing.B) {
	srv, _ := sandboxServer(b)
	cfg := testConfig(srv, twentyRequests)
	b.Run("executor", func(b *testing.B) {
		for b.Loop() {
			rep, err := Execute(b.Context(), cfg)
			if err != nil || len(rep.Runs[2].Captures) != 20 || rep.HasErrors() {
				b.Fatalf("err %v, report %+v", err, rep)
			}
		}
	})
	b.Run("script-peer", func(b *testing.B) {
		client := &http.Client{Transport: srv.Client().Transport}
		for b.Loop() {
			for range 3 {
				res, err := script.Run(b.Context(), script.Config{Source: cfg.Source, HTTP: client, Timeout: time.Minute})
				if err != nil || len(res.Captures) != 20 {
					b.Fatalf("err %v", err)
				}
			}
		}
	})
}
