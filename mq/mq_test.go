package mq_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/routes"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var (
	worker = routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "worker"}
	other  = routeapi.WorkloadRef{Namespace: "shop", Name: "other"}
)

func route(w routeapi.WorkloadRef, key, sandbox string, kind routeapi.DestinationKind) routeapi.Route {
	d := routeapi.Destination{Sandbox: routeapi.SandboxRef{Namespace: "shop", Name: sandbox}, Kind: kind}
	if kind != routeapi.DestinationBaseline {
		d.Host = sandbox + "-worker.shop.svc"
	}
	return routeapi.Route{Workload: w, RoutingKey: key, Destination: d}
}

// groupRoute is a route group's route: Signadot's route groups name the group, and the destination is the
// fork of sandbox.
func groupRoute(w routeapi.WorkloadRef, key, group, sandbox string) routeapi.Route {
	r := route(w, key, sandbox, routeapi.DestinationFork)
	r.Destination.Sandbox = routeapi.SandboxRef{Namespace: "shop", Name: group, Kind: routeapi.OwnerRouteGroup}
	return r
}

type staticSource struct{ t *routeapi.Table }

func (s staticSource) Table() *routeapi.Table { return s.t }

func TestSelectorDecide(t *testing.T) {
	tbl, err := routeapi.NewTable(1, []routeapi.Route{
		route(worker, "keya", "sb-a", routeapi.DestinationFork),
		groupRoute(worker, "groupkey", "rg-1", "sb-a"),     // a route group's key leads to sb-a's fork
		groupRoute(worker, "groupgone", "rg-2", "sb-gone"), // a route group's key of a fork sb-a does not share
		route(worker, "keyl", "sb-l", routeapi.DestinationLocal),
		route(worker, "keyv", "sb-v", routeapi.DestinationBaseline), // virtual workload
		route(other, "keyo", "sb-o", routeapi.DestinationFork),
	})
	if err != nil {
		t.Fatal(err)
	}
	base := mq.NewSelector(mq.Identity{Baseline: routeapi.WorkloadRef{Namespace: "shop", Name: "worker"}}, staticSource{tbl})
	sbA := mq.NewSelector(mq.Identity{Baseline: worker, Sandbox: "sb-a", RoutingKey: "keya"}, staticSource{tbl})
	sbB := mq.NewSelector(mq.Identity{Baseline: worker, Sandbox: "sb-b", RoutingKey: "keyb"}, staticSource{tbl})
	for _, tc := range []struct {
		key            string
		base, sbA, sbB mq.Decision
	}{
		{"", mq.Process, mq.SkipNoKey, mq.SkipNoKey},
		{"keya", mq.SkipRoutedAway, mq.Process, mq.SkipNotMine},
		{"groupkey", mq.SkipRoutedAway, mq.Process, mq.SkipNotMine},
		{"groupgone", mq.SkipRoutedAway, mq.SkipNotMine, mq.SkipNotMine},
		{"keyl", mq.SkipRoutedAway, mq.SkipNotMine, mq.SkipNotMine},
		{"keyv", mq.Process, mq.SkipNotMine, mq.SkipNotMine},
		{"keyo", mq.Process, mq.SkipNotMine, mq.SkipNotMine}, // routed for another workload only
		{"unknown", mq.Process, mq.SkipNotMine, mq.SkipNotMine},
		// sb-b's own key before (or after) its route is in the table: the fork keeps it, the baseline too
		// (at-least-once while a route appears or goes).
		{"keyb", mq.Process, mq.SkipNotMine, mq.Process},
	} {
		if got := base.Decide(tc.key); got != tc.base {
			t.Errorf("baseline Decide(%q) = %s, want %s", tc.key, got, tc.base)
		}
		if got := sbA.Decide(tc.key); got != tc.sbA {
			t.Errorf("sb-a Decide(%q) = %s, want %s", tc.key, got, tc.sbA)
		}
		if got := sbB.Decide(tc.key); got != tc.sbB {
			t.Errorf("sb-b Decide(%q) = %s, want %s", tc.key, got, tc.sbB)
		}
	}
	// No table at all: the baseline takes everything, a sandbox its own key.
	none := mq.NewSelector(mq.Identity{Baseline: worker}, nil)
	if !none.Accept("keya") || mq.NewSelector(mq.Identity{Baseline: worker, Sandbox: "sb-a", RoutingKey: "keya"}, nil).Accept("zz") {
		t.Error("selectors without a table decided wrong")
	}
}

func TestSelectorAllocatesNothing(t *testing.T) {
	tbl, _ := routeapi.NewTable(1, []routeapi.Route{route(worker, "keya", "sb-a", routeapi.DestinationFork)})
	s := mq.NewSelector(mq.Identity{Baseline: worker}, staticSource{tbl})
	if n := testing.AllocsPerRun(100, func() { s.Accept("keya"); s.Accept("") }); n != 0 {
		t.Fatalf("Accept allocates %v times", n)
	}
}

func TestIdentityValidateAndScopedName(t *testing.T) {
	id := mq.Identity{Baseline: worker, Sandbox: "feature-x", RoutingKey: "abc123"}
	if err := id.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := id.ScopedName("orders"); got != "orders-sandbox-feature-x" {
		t.Errorf("ScopedName = %q", got)
	}
	if got := (mq.Identity{Baseline: worker, Sandbox: "a.b", RoutingKey: "abc123"}).ScopedName("orders"); got != "orders-sandbox-a-b" {
		t.Errorf("dotted ScopedName = %q", got)
	}
	if got := (mq.Identity{Baseline: worker}).ScopedName("orders"); got != "orders" {
		t.Errorf("baseline ScopedName = %q", got)
	}
	for _, bad := range []mq.Identity{
		{Baseline: routeapi.WorkloadRef{Name: "w"}},
		{Baseline: routeapi.WorkloadRef{Namespace: "n"}},
		{Baseline: routeapi.WorkloadRef{Namespace: "n", Name: "w", Kind: "StatefulSet"}},
		{Baseline: worker, Sandbox: "Bad.Name", RoutingKey: "abc123"},
		{Baseline: worker, Sandbox: "ok"},
		{Baseline: worker, RoutingKey: "abc123"},
		{Baseline: worker, Sandbox: "ok", RoutingKey: "bad key"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

func TestIdentityFromEnv(t *testing.T) {
	t.Setenv(mq.EnvBaselineNamespace, "shop")
	t.Setenv(mq.EnvBaselineName, "worker")
	t.Setenv(mq.EnvBaselineKind, "")
	t.Setenv(mq.EnvSandboxName, "")
	t.Setenv(mq.EnvRoutingKey, "")
	id, err := mq.IdentityFromEnv()
	if err != nil || id.Baseline != worker || id.IsSandbox() {
		t.Fatalf("baseline identity = %+v, %v", id, err)
	}
	t.Setenv(mq.EnvSandboxName, "feature-x")
	t.Setenv(mq.EnvRoutingKey, "abc123")
	t.Setenv(mq.EnvBaselineKind, "Rollout")
	id, err = mq.IdentityFromEnv()
	if err != nil || !id.IsSandbox() || id.RoutingKey != "abc123" || id.Baseline.Kind != "Rollout" {
		t.Fatalf("sandbox identity = %+v, %v", id, err)
	}
	t.Setenv(mq.EnvBaselineName, "")
	if _, err := mq.IdentityFromEnv(); !errors.Is(err, mq.ErrNoIdentity) {
		t.Fatalf("without a baseline: %v, want ErrNoIdentity", err)
	}
}

func TestPropagationRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	m, _ := baggage.NewMemberRaw("tenant", "acme")
	bag, _ := baggage.New(m)
	ctx = baggage.ContextWithBaggage(ctx, bag)
	ctx = routingkey.WithKey(ctx, "abc123")

	h := propagation.MapCarrier{}
	mq.DefaultPropagation.Inject(ctx, h)
	if h["traceparent"] == "" || h["baggage"] == "" {
		t.Fatalf("headers = %v, want traceparent and baggage", h)
	}
	if len(h) > 2 {
		t.Errorf("headers = %v: only the W3C headers should be written", h)
	}
	got, key := mq.DefaultPropagation.Extract(context.Background(), h)
	if key != "abc123" {
		t.Fatalf("key = %q", key)
	}
	if trace.SpanContextFromContext(got).TraceID() != tid {
		t.Error("trace id lost")
	}
	if baggage.FromContext(got).Member("tenant").Value() != "acme" {
		t.Error("other baggage lost")
	}
	// Other header forms are read too.
	if _, key := mq.DefaultPropagation.Extract(context.Background(), propagation.MapCarrier{"uberctx-sm-routing-key": "k2"}); key != "k2" {
		t.Errorf("uberctx key = %q", key)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Baggage", "sm-routing-key=k3")
	if key, _ := routingkey.FromContext(mq.DefaultPropagation.FromHTTP(r)); key != "k3" {
		t.Errorf("FromHTTP key = %q", key)
	}
	if _, key := mq.DefaultPropagation.Extract(context.Background(), propagation.MapCarrier{}); key != "" {
		t.Errorf("no headers: key = %q", key)
	}
}

// TestRoutesClientFollowsTheServer runs a real route server's lookup API and checks that a Client's copy,
// and so a Selector's decisions, follow what is published.
func TestRoutesClientFollowsTheServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := routeapi.NewServer(routeapi.ServerConfig{})
	hs := httptest.NewServer(srv.LookupHandler())
	defer hs.Close()
	c, err := routes.New(routes.Config{URL: hs.URL, Workload: worker, MinInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Run(ctx) }()
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	base := mq.NewSelector(mq.Identity{Baseline: worker}, c)
	if !base.Accept("keya") {
		t.Fatal("baseline skipped a key with no route")
	}
	v, err := srv.Publish(ctx, []routeapi.Route{
		route(worker, "keya", "sb-a", routeapi.DestinationFork),
		route(other, "keyo", "sb-o", routeapi.DestinationFork),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	if base.Accept("keya") || !base.Accept("keyo") {
		t.Fatal("after publish: baseline decisions wrong")
	}
	if n := c.Table().Len(); n != 1 {
		t.Errorf("copy holds %d routes, want only the worker's 1", n)
	}
	v, _ = srv.Publish(ctx, nil)
	if err := c.WaitVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	if !base.Accept("keya") {
		t.Fatal("after the route went: baseline still skips keya")
	}
}

func TestRoutesNewRefusesBadConfig(t *testing.T) {
	t.Setenv(routes.EnvURL, "")
	if _, err := routes.New(routes.Config{}); !errors.Is(err, routes.ErrNoURL) {
		t.Errorf("no URL: %v", err)
	}
	for _, u := range []string{"ftp://x", "http://", "::"} {
		if _, err := routes.New(routes.Config{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := routes.New(routes.Config{URL: "http://x", Workload: routeapi.WorkloadRef{Name: "w"}}); err == nil {
		t.Error("workload without namespace accepted")
	}
}
