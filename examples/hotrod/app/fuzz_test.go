package app

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzDecodeAnswer feeds arbitrary answers of other services to the decoder:
// it never panics, always names the service, and a non-200 answer is always
// an error in the tree.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add(200, []byte(`{"service":"route","version":"v2","sandbox":"s","data":{"eta":"3m"}}`))
	f.Add(502, []byte(`{"service":"driver","calls":[{"service":"customer","error":"call customer: 404 Not Found"}]}`))
	f.Add(404, []byte(`{"code":"customer_not_found","error":"customer 9 not found","requestId":"x"}`))
	f.Add(503, []byte("<html>no healthy upstream</html>"))
	f.Add(200, []byte(`{"calls":[{"calls":[{}]}]}`))
	f.Add(200, []byte(`null`))
	f.Fuzz(func(t *testing.T, code int, body []byte) {
		n := decodeAnswer(Route, code, http.StatusText(code), body)
		if n.Service == "" {
			t.Errorf("no service in %+v", n)
		}
		if code != http.StatusOK && !n.HasError() {
			t.Errorf("status %d: no error in %+v", code, n)
		}
	})
}

// FuzzParseArgs parses arbitrary command lines: never a panic, and what
// parses yields configurations that validate or say why not.
func FuzzParseArgs(f *testing.F) {
	f.Add("frontend --route-url http://route:8083 --driver-addr driver:9082", "v1")
	f.Add("driver --grpc-addr=:0 --propagation library", "")
	f.Add("all --drain-delay 5s --log-format text", "sandbox-1")
	f.Add("route --shutdown-timeout=0s", "x")
	f.Add("customer --log-level=DEBUG extra", "")
	f.Fuzz(func(t *testing.T, line, env string) {
		getenv := func(k string) string {
			if k == "VERSION" || k == "SANDBOXMESH_SANDBOX_NAME" || k == "ROUTE_URL" {
				return env
			}
			return ""
		}
		o, err := ParseArgs(strings.Fields(line), getenv)
		if err != nil {
			return
		}
		for _, c := range o.Configs() {
			_ = c.Validate()
		}
	})
}
