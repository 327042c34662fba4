package nats

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
)

// FuzzDecideMatchesExtract checks the consumer's fast path (headers the propagation does not read are not
// extracted; all-lower-case names are looked up directly) against the plain case-insensitive extraction:
// same routing key for any headers.
func FuzzDecideMatchesExtract(f *testing.F) {
	f.Add("baggage", "sm-routing-key=abc", "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("Baggage", "a=1,sm-routing-key=k1", "x-other", "1")
	f.Add("uberctx-sm-routing-key", "k2", "UBERCTX-SM-ROUTING-KEY", "k3")
	f.Add("ot-baggage-sm-routing-key", "k4", "tracestate", "sm=routingkey:k5")
	f.Add("x-sandboxmesh-routing-key", "k6", "", "")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		id := mq.Identity{Baseline: routeapi.WorkloadRef{Namespace: "n", Name: "w"}}
		k := &core{id: id, prop: mq.DefaultPropagation, fields: mq.DefaultPropagation.HeaderFields(), sel: mq.NewSelector(id, nil)}
		h := nats.Header{n1: {v1}}
		h[n2] = append(h[n2], v2)
		_, want := mq.DefaultPropagation.Extract(context.Background(), HeaderCarrier(h))
		_, got, _ := k.decide(context.Background(), h)
		if got != want {
			t.Fatalf("fast path key %q, case-insensitive extraction %q, headers %q", got, want, h)
		}
	})
}
