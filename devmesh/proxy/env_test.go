package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// echo is what test backends answer.
type echo struct {
	Name    string      `json:"name"`
	Proto   string      `json:"proto"`
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Host    string      `json:"host"`
	Header  http.Header `json:"header"`
	BodyLen int         `json:"bodyLen"`
}

var (
	holdMu    sync.Mutex
	holdChans = map[string]chan struct{}{}
)

// holdRelease returns the channel that releases the /hold response with this id.
func holdRelease(id string) chan struct{} {
	holdMu.Lock()
	defer holdMu.Unlock()
	c, ok := holdChans[id]
	if !ok {
		c = make(chan struct{})
		holdChans[id] = c
	}
	return c
}

// backend is an HTTP/1.1 + h2c test app that echoes requests and serves special paths.
func backend(t testing.TB, name string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", name)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{Name: name, Proto: r.Proto, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header, BodyLen: int(n)})
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		// Streams n chunks, one per `gap`; the client checks the first arrives before the last is sent.
		w.Header().Set("X-Backend", name)
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := range n {
			fmt.Fprintf(w, "chunk-%d\n", i)
			http.NewResponseController(w).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		// Sends one line, then holds the response open until the client says (via the release
		// registry) that it has read that line: proves the proxy streams instead of buffering.
		w.Header().Set("X-Backend", name)
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-holdRelease(r.URL.Query().Get("id")):
		case <-r.Context().Done():
			return
		case <-time.After(30 * time.Second):
		}
		_, _ = io.WriteString(w, "last\n")
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Reject") != "" {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s got %d bytes err=%v", name, n, err)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte(name+":"), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("X-Backend", name)
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", name+"-sum")
	})
	s := httptest.NewUnstartedServer(mux)
	var pr http.Protocols
	pr.SetHTTP1(true)
	pr.SetUnencryptedHTTP2(true)
	s.Config.Protocols = &pr
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func portOf(t testing.TB, addr string) int32 {
	t.Helper()
	if strings.HasPrefix(addr, "http://") {
		addr = strings.TrimPrefix(addr, "http://")
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// env is a running sidecar in front of a baseline app with two forks and a real route server.
type env struct {
	t                  testing.TB
	base, fork1, fork2 *httptest.Server
	appPort            int32
	rs                 *routeapi.Server
	rsAddr             string
	grpcSrv            *grpc.Server
	client             *routeapi.Client
	p                  *Proxy
	url                string
	workload           routeapi.WorkloadRef
	cancel             context.CancelFunc
	clientDone         chan struct{}
}

type envOpts struct {
	cfg         func(*Config)
	extraPorts  []PortMapping
	beforeStart func(*Proxy)
	// routes, when set, replaces the route server client as the sidecar's RouteSource.
	routes RouteSource
}

var testWorkload = routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "cart"}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{t: t, workload: testWorkload}
	e.base, e.fork1, e.fork2 = backend(t, "baseline"), backend(t, "fork1"), backend(t, "fork2")
	e.appPort = portOf(t, e.base.URL)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.rsAddr = lis.Addr().String()
	e.rs = routeapi.NewServer(routeapi.ServerConfig{})
	e.grpcSrv = grpc.NewServer()
	e.rs.Register(e.grpcSrv)
	go func() { _ = e.grpcSrv.Serve(lis) }()
	t.Cleanup(e.grpcSrv.Stop)

	e.client, err = routeapi.NewClient(routeapi.ClientConfig{Target: e.rsAddr, Workloads: []routeapi.WorkloadRef{e.workload}, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.clientDone = make(chan struct{})
	go func() { _ = e.client.Run(ctx); close(e.clientDone) }()

	keys, err := routingkey.NewExtractor(routingkey.Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}, CustomHeaders: []string{"X-Sandbox"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Workload:     e.workload,
		Ports:        append([]PortMapping{{Listen: 0, App: e.appPort}}, o.extraPorts...),
		ListenHost:   "127.0.0.1",
		AdminListen:  "127.0.0.1:0",
		DrainTimeout: 5 * time.Second,
	}
	cfg.DisableFastPath = os.Getenv("DEVMESH_TEST_NETHTTP") != "" // TestSuiteOnNetHTTPPath
	cfg.EventLoop = os.Getenv("DEVMESH_TEST_EVENT_LOOP")          // TestSuiteOnEventLoops
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	lvl := slog.LevelError
	if os.Getenv("DEVMESH_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	var src RouteSource = e.client
	if o.routes != nil {
		src = o.routes
	}
	e.p, err = New(cfg, src, keys, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.beforeStart != nil {
		o.beforeStart(e.p)
	}
	if err := e.p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + e.p.Addr(e.appPort)
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.p.Shutdown(ctx)
	e.cancel()
	<-e.clientDone
}

// forkRoute routes key to the fork server s (a port mapping from the app port to s's port).
func (e *env) forkRoute(key string, s *httptest.Server) routeapi.Route {
	return routeapi.Route{Workload: e.workload, RoutingKey: key, Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "sandboxes", Name: "sb-" + key},
		Kind:    routeapi.DestinationFork,
		Host:    "127.0.0.1",
		Ports:   []routeapi.PortMapping{{Port: e.appPort, DestinationPort: portOf(e.t, s.URL)}},
	}}
}

// publish publishes routes and waits until the sidecar's client has them.
func (e *env) publish(routes ...routeapi.Route) {
	e.t.Helper()
	v, err := e.rs.PublishWorkload(context.Background(), e.workload, routes)
	if err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.client.Version() < v {
		if time.Now().After(deadline) {
			e.t.Fatalf("route version %d not received (have %d)", v, e.client.Version())
		}
		time.Sleep(time.Millisecond)
	}
}

// do sends a request through the sidecar with the given headers and decodes the echo.
func (e *env) do(c *http.Client, method, path string, h http.Header, body io.Reader) (*http.Response, echo, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, vs := range h {
		if strings.EqualFold(k, "Host") {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ec echo
	_ = json.Unmarshal(b, &ec)
	return resp, ec, b
}

// grpcEcho is a bidirectional-streaming gRPC test service using the JSON codec (no protoc).
type grpcMsg struct {
	Text string `json:"text"`
}

// grpcBackend serves test.Echo/Chat; its response header carries x-backend, x-saw-hop and extraHeader
// (key, value pairs).
func grpcBackend(t testing.TB, name string, extraHeader ...string) (addr string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Echo",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName: "Chat", ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				md, _ := metadata.FromIncomingContext(stream.Context())
				_ = stream.SendHeader(metadata.Pairs(append([]string{"x-backend", name, "x-saw-hop", strings.Join(md.Get(strings.ToLower(HopHeader)), ",")}, extraHeader...)...))
				for {
					var m grpcMsg
					if err := stream.RecvMsg(&m); err != nil {
						if err == io.EOF {
							stream.SetTrailer(metadata.Pairs("x-final", name+"-done"))
							return nil
						}
						return err
					}
					if err := stream.SendMsg(&grpcMsg{Text: name + ":" + m.Text}); err != nil {
						return err
					}
				}
			},
		}},
	}, struct{}{})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}
