package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

func h(kv ...string) http.Header {
	out := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Add(kv[i], kv[i+1])
	}
	return out
}

func TestHeaderFormsRouteToFork(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.publish(e.forkRoute("abc", e.fork1), e.forkRoute("abcd", e.fork2))
	c := &http.Client{}
	cases := []struct {
		name string
		hdr  http.Header
		want string
	}{
		{"no key", nil, "baseline"},
		{"baggage alone", h("Baggage", "sm-routing-key=abc"), "fork1"},
		{"baggage among members with properties", h("Baggage", "userId=alice, sm-routing-key = abc;prop=1 , isProduction=false"), "fork1"},
		{"second baggage header", h("Baggage", "a=b", "Baggage", "sm-routing-key=abcd"), "fork2"},
		{"second key name", h("Baggage", "sd-routing-key=abc"), "fork1"},
		{"tracestate", h("Tracestate", "vendor=x,sm-routing-key=abcd"), "fork2"},
		{"ot-baggage", h("Ot-Baggage-Sm-Routing-Key", "abc"), "fork1"},
		{"uberctx", h("Uberctx-Sm-Routing-Key", "abc"), "fork1"},
		{"b3 baggage-", h("Baggage-Sm-Routing-Key", "abcd"), "fork2"},
		{"custom header", h("X-Sandbox", "abc"), "fork1"},
		{"prefix of a key is not the key", h("Baggage", "sm-routing-key=ab"), "baseline"},
		{"unknown key", h("Baggage", "sm-routing-key=zzz"), "baseline"},
		{"other member name", h("Baggage", "xsm-routing-key=abc"), "baseline"},
		{"malformed baggage", h("Baggage", ";;==,,sm-routing-key"), "baseline"},
		{"invalid key chars", h("Baggage", "sm-routing-key=ABC"), "baseline"},
		{"own hop header forces local", h("Baggage", "sm-routing-key=abc", HopHeader, "shop/Deployment/cart"), "baseline"},
		{"foreign hop header (leaked by an app) does not", h("Baggage", "sm-routing-key=abc", HopHeader, "shop/Deployment/other"), "fork1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, ec, body := e.do(c, "GET", "/x?q=1", tc.hdr, nil)
			if resp.StatusCode != 200 || ec.Name != tc.want {
				t.Fatalf("status %d backend %q, want %q (%s)", resp.StatusCode, ec.Name, tc.want, body)
			}
			if ec.Path != "/x?q=1" {
				t.Fatalf("path %q", ec.Path)
			}
			hop := ec.Header.Get(HopHeader)
			if tc.want == "baseline" && hop != "" {
				t.Fatalf("app saw hop header %q", hop)
			}
			if tc.want != "baseline" && hop != "shop/Deployment/cart" {
				t.Fatalf("fork did not get hop header")
			}
		})
	}
	// A header the client names in Connection is hop-by-hop (RFC 9110 §7.6.1): it is stripped, and the
	// key is read after stripping, so the request goes where a request without it goes and the
	// destination never gets a request routed by a key it cannot see (docs/routing-key.md).
	hopCases := []struct {
		name      string
		hdr       http.Header
		want      string
		forwarded map[string]string // header -> value the destination must see ("" = absent)
	}{
		{"baggage named in Connection", h("Connection", "baggage", "Baggage", "sm-routing-key=abc"), "baseline", map[string]string{"Baggage": ""}},
		{"named in upper case, among other tokens", h("Connection", "keep-alive, BAGGAGE", "Baggage", "sm-routing-key=abc"), "baseline", map[string]string{"Baggage": ""}},
		{"several baggage fields all go", h("Connection", "Baggage", "Baggage", "a=b", "Baggage", "sm-routing-key=abc"), "baseline", map[string]string{"Baggage": ""}},
		{"tracestate named in Connection", h("Connection", "tracestate", "Tracestate", "sm-routing-key=abcd"), "baseline", map[string]string{"Tracestate": ""}},
		{"custom header named in Connection", h("Connection", "x-sandbox", "X-Sandbox", "abc"), "baseline", map[string]string{"X-Sandbox": ""}},
		{"stripped baggage does not hide a forwarded tracestate", h("Connection", "baggage", "Baggage", "sm-routing-key=abc", "Tracestate", "sm-routing-key=abcd"), "fork2", map[string]string{"Baggage": "", "Tracestate": "sm-routing-key=abcd"}},
		{"Connection naming another header keeps the key", h("Connection", "x-other", "X-Other", "1", "Baggage", "sm-routing-key=abc"), "fork1", map[string]string{"Baggage": "sm-routing-key=abc", "X-Other": ""}},
	}
	for _, tc := range hopCases {
		t.Run(tc.name, func(t *testing.T) {
			resp, ec, body := e.do(c, "GET", "/", tc.hdr, nil)
			if resp.StatusCode != 200 || ec.Name != tc.want {
				t.Fatalf("status %d backend %q, want %q (%s)", resp.StatusCode, ec.Name, tc.want, body)
			}
			for k, want := range tc.forwarded {
				if got := strings.Join(ec.Header.Values(k), ","); got != want {
					t.Errorf("%s at %s = %q, want %q", k, ec.Name, got, want)
				}
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.publish(e.forkRoute("abc", e.fork1))
	c := &http.Client{}
	t.Run("spoofed headers replaced, hop-by-hop stripped, host kept", func(t *testing.T) {
		hdr := h("X-Forwarded-For", "6.6.6.6", "X-Forwarded-Host", "evil", "X-Forwarded-Proto", "https",
			"Forwarded", "for=6.6.6.6", "Connection", "X-Secret, keep-alive", "X-Secret", "s", "Proxy-Authorization", "x",
			"Baggage", "sm-routing-key=abc", "Host", "cart.shop.svc:8080")
		_, ec, _ := e.do(c, "GET", "/", hdr, nil)
		if ec.Name != "fork1" {
			t.Fatalf("backend %q", ec.Name)
		}
		checks := map[string]string{
			"X-Forwarded-For":     "127.0.0.1",
			"X-Forwarded-Host":    "cart.shop.svc:8080",
			"X-Forwarded-Proto":   "http",
			"Forwarded":           `for=127.0.0.1;host="cart.shop.svc:8080";proto=http`,
			"X-Secret":            "",
			"Proxy-Authorization": "",
			"Baggage":             "sm-routing-key=abc",
		}
		for k, want := range checks {
			if got := strings.Join(ec.Header.Values(k), "|"); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if ec.Host != "cart.shop.svc:8080" {
			t.Errorf("Host = %q", ec.Host)
		}
	})
	t.Run("trusted peer is appended to", func(t *testing.T) {
		e2 := newEnv(t, envOpts{cfg: func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }})
		_, ec, _ := e2.do(c, "GET", "/", h("X-Forwarded-For", "10.0.0.1", "X-Forwarded-Proto", "https", "Forwarded", "for=10.0.0.1"), nil)
		if got := ec.Header.Get("X-Forwarded-For"); got != "10.0.0.1, 127.0.0.1" {
			t.Errorf("XFF = %q", got)
		}
		if got := ec.Header.Get("X-Forwarded-Proto"); got != "https" {
			t.Errorf("XFP = %q", got)
		}
		if got := ec.Header.Get("Forwarded"); !strings.HasPrefix(got, "for=10.0.0.1, for=127.0.0.1") {
			t.Errorf("Forwarded = %q", got)
		}
	})
}

func TestHTTP1Features(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.publish(e.forkRoute("abc", e.fork1))
	for _, tc := range []struct {
		name, key, want string
	}{{"baseline", "", "baseline"}, {"fork", "abc", "fork1"}} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.key != "" {
				hdr.Set("Baggage", "sm-routing-key="+tc.key)
			}
			t.Run("keep-alive reuses one client connection", func(t *testing.T) {
				var conns atomic.Int32
				tr := &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
					conns.Add(1)
					return (&net.Dialer{}).DialContext(ctx, n, a)
				}}
				c := &http.Client{Transport: tr}
				for range 20 {
					_, ec, _ := e.do(c, "GET", "/", hdr, nil)
					if ec.Name != tc.want {
						t.Fatalf("backend %q", ec.Name)
					}
				}
				if conns.Load() != 1 {
					t.Fatalf("%d connections for 20 requests", conns.Load())
				}
			})
			t.Run("chunked upload streams", func(t *testing.T) {
				pr, pw := io.Pipe()
				go func() {
					for range 64 {
						_, _ = pw.Write(bytes.Repeat([]byte("x"), 16<<10))
					}
					_ = pw.Close()
				}()
				resp, _, body := e.do(&http.Client{}, "POST", "/upload", hdr, pr)
				if resp.StatusCode != 200 || string(body) != fmt.Sprintf("%s got %d bytes err=<nil>", tc.want, 64*16<<10) {
					t.Fatalf("status %d body %q", resp.StatusCode, body)
				}
			})
			t.Run("streamed response arrives before it ends", func(t *testing.T) {
				id := fmt.Sprintf("stream-%s-%d", tc.name, time.Now().UnixNano())
				req, _ := http.NewRequest("GET", e.url+"/hold?id="+id, nil)
				req.Header = hdr.Clone()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				// The backend holds the rest until we read the first line: a buffering proxy deadlocks here
				// (and the backend gives up after 30 s, which fails the test).
				line, err := br.ReadString('\n')
				if err != nil || line != "first\n" {
					t.Fatalf("first line %q err %v", line, err)
				}
				close(holdRelease(id))
				rest, err := io.ReadAll(br)
				if err != nil || string(rest) != "last\n" {
					t.Fatalf("rest %q err %v", rest, err)
				}
				if resp.Header.Get("X-Backend") != tc.want {
					t.Fatalf("backend %q", resp.Header.Get("X-Backend"))
				}
			})
			t.Run("trailers", func(t *testing.T) {
				req, _ := http.NewRequest("GET", e.url+"/trailer", nil)
				req.Header = hdr.Clone()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if got := resp.Trailer.Get("X-Checksum"); got != tc.want+"-sum" {
					t.Fatalf("trailer %q", got)
				}
			})
			t.Run("expect 100-continue", func(t *testing.T) {
				for _, reject := range []bool{false, true} {
					conn, err := net.Dial("tcp", e.p.Addr(e.appPort))
					if err != nil {
						t.Fatal(err)
					}
					extra := ""
					if tc.key != "" {
						extra += "Baggage: sm-routing-key=" + tc.key + "\r\n"
					}
					if reject {
						extra += "X-Reject: 1\r\n"
					}
					fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n%s\r\n", extra)
					br := bufio.NewReader(conn)
					_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
					status, err := br.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if reject {
						if !strings.Contains(status, "413") {
							t.Fatalf("rejected upload: status %q", status)
						}
						conn.Close()
						continue
					}
					if !strings.Contains(status, "100 Continue") {
						t.Fatalf("status %q, want 100 Continue", status)
					}
					_, _ = br.ReadString('\n') // blank line after 100
					_, _ = io.WriteString(conn, "hello")
					// Several 1xx responses are allowed (the sidecar's own 100 and the upstream's relayed one).
					var resp *http.Response
					for resp == nil || resp.StatusCode/100 == 1 {
						if resp, err = http.ReadResponse(br, nil); err != nil {
							t.Fatal(err)
						}
					}
					b, _ := io.ReadAll(resp.Body)
					if !strings.Contains(string(b), tc.want+" got 5 bytes") {
						t.Fatalf("body %q", b)
					}
					conn.Close()
				}
			})
			t.Run("websocket upgrade", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				ws, _, err := websocket.Dial(ctx, "ws://"+e.p.Addr(e.appPort)+"/ws", &websocket.DialOptions{HTTPHeader: hdr})
				if err != nil {
					t.Fatal(err)
				}
				defer ws.CloseNow()
				for i := range 3 {
					msg := fmt.Sprintf("m%d", i)
					if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
						t.Fatal(err)
					}
					_, got, err := ws.Read(ctx)
					if err != nil || string(got) != tc.want+":"+msg {
						t.Fatalf("got %q err %v", got, err)
					}
				}
			})
		})
	}
}

func TestH2CAndGRPC(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.publish(e.forkRoute("abc", e.fork1))
	var pr http.Protocols
	pr.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &pr}}
	t.Run("h2c", func(t *testing.T) {
		for _, tc := range []struct{ key, want string }{{"", "baseline"}, {"abc", "fork1"}} {
			hdr := http.Header{}
			if tc.key != "" {
				hdr.Set("Baggage", "sm-routing-key="+tc.key)
			}
			resp, ec, _ := e.do(h2, "GET", "/", hdr, nil)
			if resp.ProtoMajor != 2 || ec.Proto != "HTTP/2.0" || ec.Name != tc.want {
				t.Fatalf("client proto %s, app proto %s, backend %q", resp.Proto, ec.Proto, ec.Name)
			}
		}
	})

	t.Run("grpc bidi streaming with trailers", func(t *testing.T) {
		baseAddr, forkAddr := grpcBackend(t, "g-baseline"), grpcBackend(t, "g-fork")
		gApp := portOf(t, baseAddr)
		e2 := newEnv(t, envOpts{cfg: func(c *Config) {
			c.Ports = []PortMapping{{Listen: 0, App: gApp, Protocol: ProtocolH2C}}
		}})
		v, err := e2.rs.PublishWorkload(context.Background(), e2.workload, []routeapi.Route{{
			Workload: e2.workload, RoutingKey: "abc",
			Destination: routeapi.Destination{Sandbox: routeapi.SandboxRef{Name: "sb"}, Kind: routeapi.DestinationFork, Host: "127.0.0.1",
				Ports: []routeapi.PortMapping{{Port: gApp, DestinationPort: portOf(t, forkAddr)}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for e2.client.Version() < v {
			time.Sleep(time.Millisecond)
		}
		cc, err := grpc.NewClient(e2.p.Addr(gApp), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		desc := &grpc.StreamDesc{StreamName: "Chat", ServerStreams: true, ClientStreams: true}
		for _, tc := range []struct{ key, want, hop string }{{"", "g-baseline", ""}, {"abc", "g-fork", "shop/Deployment/cart"}} {
			ctx := context.Background()
			if tc.key != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "baggage", "x=y,sm-routing-key="+tc.key)
			}
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := cc.NewStream(ctx, desc, "/test.Echo/Chat", grpc.CallContentSubtype("json"))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if err := st.SendMsg(&grpcMsg{Text: fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
				var m grpcMsg
				if err := st.RecvMsg(&m); err != nil || m.Text != fmt.Sprintf("%s:%d", tc.want, i) {
					t.Fatalf("recv %q err %v", m.Text, err)
				}
			}
			_ = st.CloseSend()
			var m grpcMsg
			if err := st.RecvMsg(&m); err != io.EOF {
				t.Fatalf("end: %v", err)
			}
			hd, _ := st.Header()
			if got := hd.Get("x-backend"); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("header x-backend %v", got)
			}
			if got := hd.Get("x-saw-hop"); strings.Join(got, "") != tc.hop {
				t.Fatalf("app saw hop %v", got)
			}
			if got := st.Trailer().Get("x-final"); len(got) != 1 || got[0] != tc.want+"-done" {
				t.Fatalf("trailer %v", st.Trailer())
			}
			cancel()
		}
	})
}

func TestTCPPassThrough(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // upper-cases until EOF, then says bye and closes
				b, _ := io.ReadAll(c)
				_, _ = c.Write(append(bytes.ToUpper(b), []byte(" bye")...))
				c.Close()
			}()
		}
	}()
	tcpApp := portOf(t, ln.Addr().String())
	e := newEnv(t, envOpts{extraPorts: []PortMapping{{Listen: 0, App: tcpApp, Protocol: ProtocolTCP}}})
	c, err := net.Dial("tcp", e.p.Addr(tcpApp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nBaggage: sm-routing-key=abc\r\n\r\n") // looks like HTTP, is not routed
	_ = c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	if string(b) != "GET / HTTP/1.1\r\nBAGGAGE: SM-ROUTING-KEY=ABC\r\n\r\n bye" {
		t.Fatalf("got %q", b)
	}
}

func TestRedirectMode(t *testing.T) {
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "raw-tcp")
			c.Close()
		}
	}()
	tcpApp := portOf(t, tcpLn.Addr().String())
	var target atomic.Int32
	e := newEnv(t, envOpts{cfg: func(c *Config) {
		c.Ports = nil
		c.RedirectListen = "127.0.0.1:0"
		c.RedirectProtocols = map[int32]Protocol{tcpApp: ProtocolTCP}
	}, beforeStart: func(p *Proxy) {
		// Without NAT there is no SO_ORIGINAL_DST; the test stands in for the kernel.
		p.origDst = func(c net.Conn) (netip.AddrPort, error) {
			return netip.AddrPortFrom(netip.MustParseAddr("10.0.0.5"), uint16(target.Load())), nil
		}
	}})
	e.publish(e.forkRoute("abc", e.fork1))
	t.Run("http to the original port, routed", func(t *testing.T) {
		target.Store(e.appPort)
		e.url = "http://" + e.p.RedirectAddr()
		for _, tc := range []struct{ key, want string }{{"", "baseline"}, {"abc", "fork1"}} {
			hdr := http.Header{}
			if tc.key != "" {
				hdr.Set("Baggage", "sm-routing-key="+tc.key)
			}
			_, ec, _ := e.do(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, "GET", "/", hdr, nil)
			if ec.Name != tc.want {
				t.Fatalf("backend %q want %q", ec.Name, tc.want)
			}
		}
	})
	t.Run("tcp port passes through", func(t *testing.T) {
		target.Store(tcpApp)
		c, err := net.Dial("tcp", e.p.RedirectAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		if string(b) != "raw-tcp" {
			t.Fatalf("got %q", b)
		}
	})
	t.Run("real SO_ORIGINAL_DST on a connection that was not redirected", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		go func() { c, _ := net.Dial("tcp", ln.Addr().String()); time.Sleep(100 * time.Millisecond); c.Close() }()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Without conntrack the kernel answers ENOENT; with conntrack loaded (no NAT rule) it answers the
		// address that was dialled. Either way there is no panic and no made-up port.
		got, err := originalDst(c)
		if err == nil && got.String() != c.LocalAddr().String() {
			t.Fatalf("original destination %s, want %s (no NAT) or an error", got, c.LocalAddr())
		}
	})
}

func TestForkDown(t *testing.T) {
	// Port 1 is never an ephemeral port, so no other test's listener can take it (a closed ephemeral
	// port can be reused at once); nothing listens there, so dialling it is refused.
	const deadPort = 1
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			e := newEnv(t, envOpts{cfg: func(c *Config) { c.FallbackToBaseline = fallback }})
			r := e.forkRoute("abc", e.fork1)
			r.Destination.Ports[0].DestinationPort = deadPort
			dns := e.forkRoute("dns", e.fork1)
			dns.Destination.Host = "no-such-fork.invalid"
			e.publish(r, dns)
			for _, key := range []string{"abc", "dns"} {
				resp, ec, body := e.do(&http.Client{}, "POST", "/upload", h("Baggage", "sm-routing-key="+key, "X-Request-Id", "rid-1"), strings.NewReader("payload"))
				if fallback {
					if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "baseline got 7 bytes") {
						t.Fatalf("fallback: %d %q", resp.StatusCode, body)
					}
					continue
				}
				_ = ec
				var eb errorBody
				if err := json.Unmarshal(body, &eb); err != nil {
					t.Fatalf("body %q: %v", body, err)
				}
				wantCode := map[string]int{"abc": 502, "dns": 503}[key]
				if resp.StatusCode != wantCode || eb.Sandbox != "sandboxes/sb-"+key || eb.Fork == "" || eb.RequestID != "rid-1" || eb.RoutingKey != key || !strings.HasPrefix(eb.Code, "fork_") {
					t.Fatalf("status %d body %+v", resp.StatusCode, eb)
				}
			}
		})
	}
}

func TestRouteServerDown(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.publish(e.forkRoute("abc", e.fork1))
	e.grpcSrv.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for e.client.Connected() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, ec, _ := e.do(&http.Client{}, "GET", "/", h("Baggage", "sm-routing-key=abc"), nil)
	if ec.Name != "fork1" {
		t.Fatalf("fail static: backend %q", ec.Name)
	}
	resp, err := http.Get("http://" + e.p.AdminAddr() + "/routes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rr RoutesResponse
	_ = json.NewDecoder(resp.Body).Decode(&rr)
	if !rr.Stale || rr.Source.Connected || len(rr.Routes) != 1 || rr.Source.LastError == "" {
		t.Fatalf("/routes = %+v", rr)
	}

	t.Run("no route server at start-up: everything local", func(t *testing.T) {
		e2 := newEnv(t, envOpts{})
		e2.grpcSrv.Stop()
		_, ec, _ := e2.do(&http.Client{}, "GET", "/", h("Baggage", "sm-routing-key=abc"), nil)
		if ec.Name != "baseline" {
			t.Fatalf("backend %q", ec.Name)
		}
	})
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, envOpts{cfg: func(c *Config) { c.ReadHeaderTimeout = 300 * time.Millisecond }})
	e.publish(e.forkRoute("abc", e.fork1))
	raw := func(t *testing.T, req string) string {
		c, err := net.Dial("tcp", e.p.Addr(e.appPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { _, _ = io.WriteString(c, req) }()
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	cases := []struct {
		name, req, want string
	}{
		{"garbage request line", "HELLO\r\n\r\n", "400"},
		{"invalid header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", "400"},
		{"header without colon", "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", "400"},
		{"control char in baggage", "GET / HTTP/1.1\r\nHost: x\r\nBaggage: sm-routing-key=abc\x01\r\n\r\n", "400"},
		{"1 MiB header", "GET / HTTP/1.1\r\nHost: x\r\nBaggage: sm-routing-key=abc," + strings.Repeat("a", 1<<20) + "\r\n\r\n", "431"},
		{"huge baggage under the limit routes by its member", "GET / HTTP/1.1\r\nHost: x\r\nBaggage: a=" + strings.Repeat("b", 9000) + ",sm-routing-key=abc\r\n\r\n", "200"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := raw(t, tc.req); !strings.Contains(got, tc.want) {
				t.Fatalf("status line %q, want %s", got, tc.want)
			}
		})
	}
	// The header limit is exactly MaxHeaderBytes (64 KiB by default) of request head: request line,
	// fields and the empty line that ends them, on the first request of a connection and on a later one.
	limit := e.p.cfg.MaxHeaderBytes
	for _, tc := range []struct {
		size int
		want string
	}{{limit - 1, "200"}, {limit, "200"}, {limit + 1, "431"}, {limit + 4096, "431"}} {
		t.Run(fmt.Sprintf("head of %d bytes", tc.size), func(t *testing.T) {
			if got := raw(t, headOf(t, tc.size)); !strings.Contains(got, tc.want) {
				t.Fatalf("status line %q, want %s", got, tc.want)
			}
		})
		t.Run(fmt.Sprintf("head of %d bytes after a keep-alive request", tc.size), func(t *testing.T) {
			rc := e.dialRaw(t)
			rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
				t.Fatalf("first request: %d", resp.StatusCode)
			}
			go func() { _, _ = io.WriteString(rc.c, headOf(t, tc.size)) }()
			line, _ := rc.br.ReadString('\n')
			if !strings.Contains(line, tc.want) {
				t.Fatalf("status line %q, want %s", line, tc.want)
			}
		})
		t.Run(fmt.Sprintf("head of %d bytes pipelined after a chunked upload", tc.size), func(t *testing.T) {
			rc := e.dialRaw(t)
			go func() {
				_, _ = io.WriteString(rc.c, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+headOf(t, tc.size))
			}()
			if resp, body := rc.read("POST"); resp.StatusCode != 200 || !strings.Contains(string(body), "got 5 bytes") {
				t.Fatalf("upload: %d %q", resp.StatusCode, body)
			}
			line, _ := rc.br.ReadString('\n')
			if !strings.Contains(line, tc.want) {
				t.Fatalf("status line %q, want %s", line, tc.want)
			}
		})
	}
	t.Run("slow client is cut off by the header timeout", func(t *testing.T) {
		c, err := net.Dial("tcp", e.p.Addr(e.appPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)                               // the server closes the connection
		if err != nil || time.Since(start) > 4*time.Second { // read-header-timeout is 300ms; 4s leaves room for a loaded machine
			t.Fatalf("slow client kept for %v (err %v)", time.Since(start), err)
		}
		// Other clients are served meanwhile.
		_, ec, _ := e.do(&http.Client{}, "GET", "/", nil, nil)
		if ec.Name != "baseline" {
			t.Fatal("not served")
		}
	})
}

// headOf returns a GET request whose head (request line, fields, empty line) is exactly n bytes.
func headOf(t testing.TB, n int) string {
	t.Helper()
	const pre, post = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ", "\r\n\r\n"
	pad := n - len(pre) - len(post)
	if pad < 1 {
		t.Fatalf("head of %d bytes is too small", n)
	}
	return pre + strings.Repeat("p", pad) + post
}

// TestRouteChangesUnderLoad swaps the route of one key between two forks and removal while clients
// hammer the sidecar: every request must succeed and land on a destination the key had at some point,
// and keyless requests must always reach the baseline.
func TestRouteChangesUnderLoad(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.publish(e.forkRoute("abc", e.fork1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var total, bad atomic.Int64
	var mu sync.Mutex
	var errs []string
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			withKey := w%2 == 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", e.url+"/", nil)
				if withKey {
					req.Header.Set("Baggage", "sm-routing-key=abc")
				}
				resp, err := c.Do(req)
				total.Add(1)
				if err != nil {
					bad.Add(1)
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				be := resp.Header.Get("X-Backend")
				ok := resp.StatusCode == 200 && (be == "baseline" || (withKey && (be == "fork1" || be == "fork2")))
				if !ok {
					bad.Add(1)
					mu.Lock()
					errs = append(errs, fmt.Sprintf("key=%v status=%d backend=%s", withKey, resp.StatusCode, be))
					mu.Unlock()
				}
			}
		}()
	}
	for i := range 60 {
		switch i % 3 {
		case 0:
			e.publish(e.forkRoute("abc", e.fork2))
		case 1:
			e.publish()
		case 2:
			e.publish(e.forkRoute("abc", e.fork1), e.forkRoute(fmt.Sprintf("other%d", i), e.fork2))
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d requests failed or misrouted: %v", bad.Load(), total.Load(), errs[:min(5, len(errs))])
	}
	if total.Load() < 50 {
		t.Fatalf("only %d requests", total.Load())
	}
	t.Logf("%d requests over 60 route swaps, none lost or misrouted", total.Load())
}

func TestTenThousandRoutes(t *testing.T) {
	e := newEnv(t, envOpts{})
	routes := make([]routeapi.Route, 0, 10000)
	for i := range 10000 {
		s := e.fork1
		if i%2 == 1 {
			s = e.fork2
		}
		routes = append(routes, e.forkRoute(fmt.Sprintf("key-%d", i), s))
	}
	e.publish(routes...)
	if n := e.client.Table().Len(); n != 10000 {
		t.Fatalf("client has %d routes", n)
	}
	c := &http.Client{}
	for _, i := range []int{0, 1, 4999, 9998, 9999} {
		want := "fork1"
		if i%2 == 1 {
			want = "fork2"
		}
		_, ec, _ := e.do(c, "GET", "/", h("Baggage", fmt.Sprintf("sm-routing-key=key-%d", i)), nil)
		if ec.Name != want {
			t.Fatalf("key-%d: backend %q want %q", i, ec.Name, want)
		}
	}
	_, ec, _ := e.do(c, "GET", "/", h("Baggage", "sm-routing-key=key-10000"), nil)
	if ec.Name != "baseline" {
		t.Fatalf("unknown key: %q", ec.Name)
	}
}

func TestAdminAndMetrics(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.publish(e.forkRoute("abc", e.fork1))
	_, _, _ = e.do(&http.Client{}, "GET", "/", h("Baggage", "sm-routing-key=abc"), nil)
	_, _, _ = e.do(&http.Client{}, "GET", "/", nil, nil)
	admin := "http://" + e.p.AdminAddr()
	cases := []struct {
		path     string
		code     int
		contains []string
	}{
		{"/healthz", 200, []string{"ok"}},
		{"/readyz", 200, []string{"ready"}},
		{"/routes", 200, []string{`"routingKey":"abc"`, `"connected":true`, `"stale":false`}},
		{"/metrics", 200, []string{
			`devmesh_requests_total{code="200",destination_kind="fork"} 1`,
			`devmesh_requests_total{code="200",destination_kind="local"} 1`,
			`devmesh_request_duration_seconds_bucket{destination_kind="fork"`,
			`devmesh_route_table_version `,
			`devmesh_route_table_age_seconds `,
			`devmesh_route_table_routes 1`,
			`devmesh_route_server_connected 1`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(admin + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("code %d", resp.StatusCode)
			}
			for _, s := range tc.contains {
				if !strings.Contains(string(b), s) {
					t.Errorf("missing %q in:\n%s", s, b)
				}
			}
		})
	}
}

func TestGracefulDrain(t *testing.T) {
	e := newEnv(t, envOpts{cfg: func(c *Config) { c.DrainDelay = 200 * time.Millisecond }})
	addr := e.p.Addr(e.appPort)
	// A streaming request in flight when draining starts must complete.
	req, _ := http.NewRequest("GET", e.url+"/stream?n=20", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.p.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	r2, err := http.Get("http://" + e.p.AdminAddr() + "/readyz")
	if err != nil || r2.StatusCode != 503 {
		t.Fatalf("readyz during drain: %v %v", r2, err)
	}
	r2.Body.Close()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(b), "chunk-") != 20 {
		t.Fatalf("in-flight request cut: %d chunks, err %v", strings.Count(string(b), "chunk-"), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("listener still open after drain")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no workload", Config{Ports: []PortMapping{{App: 1}}}, "namespace: required"},
		{"no ports", Config{Workload: testWorkload}, "ports or redirect-listen"},
		{"dup listen", Config{Workload: testWorkload, Ports: []PortMapping{{Listen: 1, App: 1}, {Listen: 1, App: 2}}}, "used twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil, noKeys{}, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

type noKeys struct{}

func (noKeys) Extract(http.Header) (string, bool) { return "", false }
