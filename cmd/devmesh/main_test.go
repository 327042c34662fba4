package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/devmesh/proxy"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParse(t *testing.T) {
	base := map[string]string{"SANDBOXMESH_NAMESPACE": "shop", "SANDBOXMESH_WORKLOAD": "cart", "SANDBOXMESH_PORTS": "15080:8080"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, o *options)
		err   string
	}{
		{"env only", nil, with("SANDBOXMESH_ROUTE_SERVER", "rs:15010", "SANDBOXMESH_KEY_NAMES", "sm-routing-key, sd-routing-key", "SANDBOXMESH_DRAIN_DELAY", "1s"), func(t *testing.T, o *options) {
			if o.cfg.Workload.Namespace != "shop" || o.cfg.Workload.Name != "cart" || o.routeServer != "rs:15010" || len(o.keyNames) != 2 || o.cfg.DrainDelay != time.Second {
				t.Fatalf("%+v", o)
			}
			if len(o.cfg.Ports) != 1 || o.cfg.Ports[0] != (proxy.PortMapping{Listen: 15080, App: 8080}) {
				t.Fatalf("ports %+v", o.cfg.Ports)
			}
		}, ""},
		{"flag wins over env", []string{"--workload", "other", "--fallback-to-baseline"}, with(), func(t *testing.T, o *options) {
			if o.cfg.Workload.Name != "other" || !o.cfg.FallbackToBaseline || o.cfg.DisableFastPath {
				t.Fatalf("%+v", o.cfg)
			}
		}, ""},
		{"fast path on by default, off by env", nil, with("SANDBOXMESH_HTTP1_FAST_PATH", "false"), func(t *testing.T, o *options) {
			if !o.cfg.DisableFastPath {
				t.Fatalf("fast path not disabled: %+v", o.cfg)
			}
		}, ""},
		{"event loops on a locked thread by default", nil, with(), func(t *testing.T, o *options) {
			if o.cfg.EventLoop != proxy.EventLoopThread {
				t.Fatalf("event loop %q", o.cfg.EventLoop)
			}
		}, ""},
		{"event loops off by env", nil, with("SANDBOXMESH_HTTP1_EVENT_LOOP", "off"), func(t *testing.T, o *options) {
			if o.cfg.EventLoop != proxy.EventLoopOff {
				t.Fatalf("event loop %q", o.cfg.EventLoop)
			}
		}, ""},
		{"redirect mode", nil, with("SANDBOXMESH_PORTS", "", "SANDBOXMESH_REDIRECT_LISTEN", ":15006", "SANDBOXMESH_PORT_PROTOCOLS", "5432,9090/h2c", "SANDBOXMESH_TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1"), func(t *testing.T, o *options) {
			if o.cfg.RedirectListen != ":15006" || o.cfg.RedirectProtocols[5432] != proxy.ProtocolTCP || len(o.cfg.TrustedProxies) != 2 {
				t.Fatalf("%+v", o.cfg)
			}
		}, ""},
		{"missing workload", nil, map[string]string{"SANDBOXMESH_NAMESPACE": "x", "SANDBOXMESH_PORTS": "1:2"}, nil, "--workload (SANDBOXMESH_WORKLOAD): required"},
		{"no ports", nil, with("SANDBOXMESH_PORTS", ""), nil, "one is required"},
		{"bad env duration", nil, with("SANDBOXMESH_DIAL_TIMEOUT", "soon"), nil, "SANDBOXMESH_DIAL_TIMEOUT"},
		{"bad ports", nil, with("SANDBOXMESH_PORTS", "x"), nil, "--ports"},
		{"bad cidr", nil, with("SANDBOXMESH_TRUSTED_PROXIES", "nope"), nil, "--trusted-proxies"},
		{"bad log level", []string{"--log-level", "loud"}, with(), nil, "--log-level"},
		{"capture off by default", nil, with(), func(t *testing.T, o *options) {
			if o.sink.URL != "" || o.cfg.CaptureMaxBodyBytes != capture.DefaultMaxBodyBytes {
				t.Fatalf("%+v %+v", o.sink, o.cfg)
			}
		}, ""},
		{"capture by env", nil, with("SANDBOXMESH_CAPTURE_URL", "http://agent:8080/captures", "SANDBOXMESH_CAPTURE_REDACT_HEADERS", "x-api-key, x-token",
			"SANDBOXMESH_CAPTURE_MAX_BODY_BYTES", "1024", "SANDBOXMESH_CAPTURE_QUEUE_SIZE", "10", "SANDBOXMESH_CAPTURE_FLUSH_INTERVAL", "2s"), func(t *testing.T, o *options) {
			if o.sink.URL != "http://agent:8080/captures" || o.sink.QueueSize != 10 || o.sink.FlushInterval != 2*time.Second ||
				o.cfg.CaptureMaxBodyBytes != 1024 || len(o.cfg.CaptureRedactHeaders) != 2 {
				t.Fatalf("%+v %+v", o.sink, o.cfg)
			}
		}, ""},
		{"negative capture body bound", nil, with("SANDBOXMESH_CAPTURE_MAX_BODY_BYTES", "-1"), nil, "--capture-max-body-bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parse(tc.args, env(tc.env), io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

// TestRunServesAndDrains runs the whole command (no route server) in front of a test app.
func TestRunServesAndDrains(t *testing.T) {
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "app") })}
	aln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = app.Serve(aln) }()
	defer app.Close()
	free := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}
	listen, admin := free(), free()
	captures := make(chan []byte, 10)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		captures <- b
	}))
	defer sink.Close()
	_, lport, _ := net.SplitHostPort(listen)
	_, aport, _ := net.SplitHostPort(aln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen-host", "127.0.0.1", "--admin-listen", admin, "--drain-delay", "0s"}, env(map[string]string{
			"SANDBOXMESH_NAMESPACE": "shop", "SANDBOXMESH_WORKLOAD": "cart", "SANDBOXMESH_PORTS": lport + ":" + aport,
			"SANDBOXMESH_CAPTURE_URL": sink.URL + "/captures", "SANDBOXMESH_CAPTURE_FLUSH_INTERVAL": "1h",
		}), io.Discard)
	}()
	var body []byte
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + listen + "/")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if string(body) != "app" {
		t.Fatalf("body %q", body)
	}
	req, _ := http.NewRequest("GET", "http://"+listen+"/x", nil)
	req.Header.Set(capture.Header, "ex.target.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The flush interval is an hour: the capture was shipped by the drain.
	select {
	case b := <-captures:
		var got []diff.Capture
		if err := json.Unmarshal(b, &got); err != nil || len(got) != 1 || got[0].ID != "ex.target.0" || got[0].Validate() != nil {
			t.Fatalf("sink got %s (%v)", b, err)
		}
	default:
		t.Fatal("the capture was not shipped at shutdown")
	}
}
