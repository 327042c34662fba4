package script_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// hotrodTest is a smart test for HotROD's frontend: it asks for a ride for two customers, captures the
// dispatch calls for the traffic diff and checks the answers.
const hotrodTest = `
frontend = "http://frontend.hotrod.svc:8080"
for customer in ["123", "392"]:
    res = http.get(frontend + "/dispatch", params={"customer": customer, "nonse": "0.5"},
                   capture=True, name="dispatch-" + customer)
    ck = smart_test.check("dispatch-" + customer)
    if res.status_code != 200:
        ck.error("dispatch for {} returned {}", customer, res.status_code)
        continue
    ride = res.json()
    if "driver" not in ride:
        ck.error("no driver in {}", ride)
    if ride.get("eta", 0) > 60:
        ck.error("eta {}s is more than a minute", ride["eta"])
print("rides requested:", 2)
`

// ExampleRun runs a HotROD-like smart test. The Doer sends every request to the service under test (here a
// local server) whatever host the script names, as an executor does; the Capture hook adds the capture id.
func ExampleRun() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"driver": "T751", "eta": 120, "capture": r.Header.Get("X-Capture-Id")})
	}))
	defer srv.Close()
	target, _ := url.Parse(srv.URL)

	res, err := script.Run(context.Background(), script.Config{
		Filename: "hotrod.star",
		Source:   hotrodTest,
		HTTP:     rewriteDoer{target: target, client: &http.Client{Timeout: 5 * time.Second}},
		Capture: func(c script.Capture) http.Header {
			return http.Header{"X-Capture-Id": {fmt.Sprintf("exec-1/%d", c.Index)}}
		},
		Timeout: time.Minute,
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, c := range res.Checks {
		fmt.Printf("check %s: %d errors\n", c.Name, len(c.Errors))
		for _, e := range c.Errors {
			fmt.Printf("  %s: %s\n", e.SourcePosition, e.Message)
		}
	}
	for _, c := range res.Captures {
		fmt.Printf("capture %d %s %s %s -> %d\n", c.Index, c.Name, c.Method, c.URL, c.StatusCode)
	}
	fmt.Println(res.Logs, res.Passed())
	// Output:
	// check dispatch-123: 1 errors
	//   hotrod.star:14:17: eta 120s is more than a minute
	// check dispatch-392: 1 errors
	//   hotrod.star:14:17: eta 120s is more than a minute
	// capture 0 dispatch-123 GET http://frontend.hotrod.svc:8080/dispatch?customer=123&nonse=0.5 -> 200
	// capture 1 dispatch-392 GET http://frontend.hotrod.svc:8080/dispatch?customer=392&nonse=0.5 -> 200
	// [rides requested: 2] false
}
