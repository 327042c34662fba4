package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/proxy"
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
	_, lport, _ := net.SplitHostPort(listen)
	_, aport, _ := net.SplitHostPort(aln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen-host", "127.0.0.1", "--admin-listen", admin, "--drain-delay", "0s"}, env(map[string]string{
			"SANDBOXMESH_NAMESPACE": "shop", "SANDBOXMESH_WORKLOAD": "cart", "SANDBOXMESH_PORTS": lport + ":" + aport,
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
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
