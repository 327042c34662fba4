package script_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// TestHTTP runs each http function against a real server; the scripts assert with assert.eq, so a passing
// case has no check errors.
func TestHTTP(t *testing.T) {
	cases := []struct{ name, src string }{
		{"get with params and headers", `
res = http.get("http://frontend.hotrod:8080/echo?a=1", params={"b": "2", "c": [3, "4"]}, headers={"X-Key": "k"})
assert.eq(res.status_code, 200)
assert.eq(res.status, "200 OK")
assert.true(res.ok)
j = res.json()
assert.eq(j["method"], "GET")
assert.eq(j["query"], {"a": ["1"], "b": ["2"], "c": ["3", "4"]})
assert.eq(j["headers"]["x-key"], "k")
assert.eq(j["headers"]["user-agent"], "sandboxmesh-smart-test")
assert.eq(res.url, "http://frontend.hotrod:8080/echo?a=1&b=2&c=3&c=4")
`},
		{"post json_body", `
res = http.post("http://x/echo", json_body={"a": [1, 2], "b": True})
j = json.decode(res.body())
assert.eq(j["method"], "POST")
assert.eq(json.decode(j["body"]), {"a": [1, 2], "b": True})
assert.eq(j["headers"]["content-type"], "application/json")
`},
		{"put json", `
j = http.put("http://x/echo", json=[1, "two"]).json()
assert.eq(j["method"], "PUT")
assert.eq(j["body"], '[1,"two"]')
`},
		{"delete", `assert.eq(http.delete("http://x/echo").json()["method"], "DELETE")`},
		{"patch string body", `
j = http.patch("http://x/echo", body="raw", headers={"content-type": "text/plain"}).json()
assert.eq(j["method"], "PATCH")
assert.eq(j["body"], "raw")
assert.eq(j["headers"]["content-type"], "text/plain")
`},
		{"bytes body", `assert.eq(http.post("http://x/echo", body=b"\x01z").json()["body"], "\x01z")`},
		{"form body", `
j = http.post("http://x/echo", form_body={"a": "1", "b": ["2", "3"]}).json()
assert.eq(j["body"], "a=1&b=2&b=3")
assert.eq(j["headers"]["content-type"], "application/x-www-form-urlencoded")
`},
		{"basic auth", `assert.eq(http.get("http://x/echo", auth=("u", "p")).json()["headers"]["authorization"], "Basic dTpw")`},
		{"head", `
res = http.head("http://x/echo")
assert.eq(res.status_code, 200)
assert.eq(res.body(), "")
`},
		{"options", `assert.eq(http.options("http://x/echo").json()["method"], "OPTIONS")`},
		{"request", `
assert.eq(http.request("patch", "http://x/echo").json()["method"], "PATCH")
assert.eq(http.request(method="DELETE", url="http://x/echo").json()["method"], "DELETE")
`},
		{"headers are case-insensitive", `
res = http.get("http://x/echo")
h = res.headers
assert.eq(h["Content-Type"], "application/json")
assert.eq(h["content-type"], "application/json")
assert.eq(h.get("X-CUSTOM"), "yes")
assert.eq(h.get("missing", "d"), "d")
assert.true("x-custom" in h)
assert.true("X-Custom" in h)
assert.eq(h["x-multi"], "a, b")
assert.true("x-custom" in h.keys())
assert.eq(len([k for k in h]), len(h))
assert.eq(res.encoding, "application/json")
assert.eq(dict(h)["x-custom"], "yes")
assert.eq(json.decode(json.encode(h))["x-custom"], "yes")
`},
		{"None means not given", `assert.eq(http.get("http://x/echo", params=None, headers=None, auth=None).status_code, 200)`},
		{"error statuses are responses", `
res = http.get("http://x/status/404")
assert.eq(res.status_code, 404)
assert.true(not res.ok)
assert.eq(res.text, "status 404")
assert.eq(http.get("http://x/status/302").ok, True)
`},
		{"host header", `
assert.eq(http.get("http://frontend.hotrod:8080/echo").json()["host"], "frontend.hotrod:8080")
assert.eq(http.get("http://x/echo", headers={"host": "route.hotrod"}).json()["host"], "route.hotrod")
`},
		{"json depth", `
assert.eq(json.decode("[" * 20000, default="deep"), "deep")
assert.eq(json.decode("[[1]]"), [[1]])
assert.eq(json.decode('"[[[["'), "[[[[")
`},
		{"keyword url as in Signadot's examples", `
res = http.get(url="http://x/echo", capture=True, name="apiHealth")
ck = smart_test.check("api-health")
if res.status_code != 200:
    ck.error("Health check failed with status: {}", res.status_code)
data = json.decode(res.body())
for field in ["method", "path"]:
    if field not in data:
        ck.error("Missing required field: {}", field)
assert.true(ck, "check passed")
`},
		{"per-call timeout within bound", `assert.eq(http.get("http://x/slow?ms=1", timeout=2).text, "done")`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := runScript(t, tc.src, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !res.Passed() {
				t.Fatalf("checks failed:\n%s", failures(res))
			}
		})
	}
}

// TestHTTPArgumentErrors checks that bad arguments stop the script with an error naming the function and the
// argument, at the script line.
func TestHTTPArgumentErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"url type", `http.get(42)`, "http.get: for parameter url: got int, want string"},
		{"url scheme", `http.get("ftp://x/a")`, `http.get: url: "ftp://x/a" is not an absolute http or https URL`},
		{"relative url", `http.post("/echo")`, "http.post: url:"},
		{"unparsable url", `http.get("http://[::1")`, "http.get: url:"},
		{"header value type", `http.get("http://x/echo", headers={"a": {}})`, `http.get: headers: "a": got dict`},
		{"header key type", `http.get("http://x/echo", headers={1: "a"})`, "http.get: headers: key 1: got int"},
		{"header value newline", `http.get("http://x/echo", headers={"a": "b\nc"})`, `http.get: headers: "A": invalid header`},
		{"header name", `http.get("http://x/echo", headers={"a b": "c"})`, "invalid header name"},
		{"params type", `http.get("http://x/echo", params=[1])`, "http.get: params: got list, want dict"},
		{"body type", `http.post("http://x/echo", body=1)`, "http.post: body: got int, want string or bytes"},
		{"two bodies", `http.post("http://x/echo", body="a", json_body={})`, "give at most one"},
		{"json not encodable", `http.post("http://x/echo", json_body={"f": len})`, "http.post: json_body:"},
		{"negative timeout", `http.get("http://x/echo", timeout=-1)`, "http.get: timeout: -1 out of range"},
		{"timeout above bound", `http.get("http://x/echo", timeout=60)`, "http.get: timeout: 1m0s is not in (0, 5s]"},
		{"timeout type", `http.get("http://x/echo", timeout="1s")`, "http.get: timeout: got string"},
		{"unknown method", `http.request("TRACE", "http://x/echo")`, `http.request: method: "TRACE" is not one of`},
		{"missing method", `http.request()`, "http.request: missing argument for method"},
		{"unknown argument", `http.get("http://x/echo", verify=False)`, "unexpected keyword argument"},
		{"auth shape", `http.get("http://x/echo", auth=("u",))`, `http.get: auth: got ("u",), want (username, password)`},
		{"json of non-JSON", `http.get("http://x/status/200").json()`, "response.json: body is not JSON"},
		{"json too deep", `json.decode("[" * 20000)`, "json.decode: JSON nests deeper than 10000 levels at offset 10000"},
		{"response json too deep", `http.get("http://x/deep?n=1000000").json()`, "response.json: body is not JSON: json.decode: JSON nests deeper than 10000"},
		{"connection failure", `http.get("http://x/slow?ms=5000", timeout=0.05)`, "http.get http://127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runScript(t, "x = 1\n"+tc.src+"\n", nil)
			var se *script.Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *script.Error", err, err)
			}
			if !strings.Contains(se.Msg, tc.want) {
				t.Fatalf("message %q does not contain %q", se.Msg, tc.want)
			}
			if se.Kind != script.KindRuntime || se.Pos.Line != 2 || se.Pos.File != "t.star" {
				t.Fatalf("kind %s at %s, want runtime at t.star:2", se.Kind, se.Pos)
			}
		})
	}
}

// TestHTTPWithoutClient checks the error when the executor gave no Doer.
func TestHTTPWithoutClient(t *testing.T) {
	_, err := runScript(t, `http.get("http://x/echo")`, func(c *script.Config) { c.HTTP = nil })
	if err == nil || !strings.Contains(err.Error(), "no HTTP client is configured") {
		t.Fatalf("err = %v", err)
	}
}

// TestCapture checks that capture=True requests get the hook's headers, others do not, and the captures are
// listed in order with their status.
func TestCapture(t *testing.T) {
	var seen []script.Capture
	res, err := runScript(t, `
a = http.get("http://frontend/echo", capture=True, name="first", headers={"X-Capture-Id": "script"})
assert.eq(a.json()["headers"]["x-capture-id"], "exec-1/0")
b = http.get("http://frontend/echo")
assert.true("x-capture-id" not in b.json()["headers"], "no capture header without capture=True")
c = http.post("http://frontend/status/503", capture=True)
assert.eq(c.status_code, 503)
`, func(c *script.Config) {
		c.Capture = func(cp script.Capture) http.Header {
			seen = append(seen, cp)
			return http.Header{"x-capture-id": {"exec-1/" + string(rune('0'+cp.Index))}}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("checks failed:\n%s", failures(res))
	}
	if len(seen) != 2 || seen[0].Name != "first" || seen[1].Index != 1 {
		t.Fatalf("hook saw %+v", seen)
	}
	want := []script.Capture{
		{Index: 0, Name: "first", Method: "GET", URL: "http://frontend/echo", StatusCode: 200, Pos: script.SourcePosition{File: "t.star", Line: 2, Col: 13}},
		{Index: 1, Method: "POST", URL: "http://frontend/status/503", StatusCode: 503, Pos: script.SourcePosition{File: "t.star", Line: 6, Col: 14}},
	}
	if len(res.Captures) != len(want) {
		t.Fatalf("captures %+v", res.Captures)
	}
	for i := range want {
		if res.Captures[i] != want[i] {
			t.Errorf("capture %d = %+v, want %+v", i, res.Captures[i], want[i])
		}
	}
	if res.Requests != 3 {
		t.Errorf("Requests = %d, want 3", res.Requests)
	}
}

// TestCaptureFailure checks that a captured request that fails is listed with its error.
func TestCaptureFailure(t *testing.T) {
	res, err := runScript(t, `http.get("http://x/slow?ms=5000", capture=True, name="slow", timeout=0.05)`, nil)
	if err == nil {
		t.Fatal("want an error")
	}
	if len(res.Captures) != 1 || res.Captures[0].Error == "" || res.Captures[0].StatusCode != 0 {
		t.Fatalf("captures %+v", res.Captures)
	}
}
