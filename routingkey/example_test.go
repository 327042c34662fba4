package routingkey_test

import (
	"fmt"
	"net/http"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

func Example() {
	e, err := routingkey.NewExtractor(routingkey.Config{
		KeyNames: []string{routingkey.DefaultKeyName, "sd-routing-key"}, // also read Signadot's name
	})
	if err != nil {
		panic(err)
	}

	in := http.Header{}
	in.Set("Baggage", "userId=alice, sd-routing-key=k7q2mz4xw3bd5nfe;ttl=60")
	key, ok := e.Extract(in)
	fmt.Println(key, ok)

	out := http.Header{}
	out.Set("Baggage", "userId=alice")
	e.Inject(out, key)
	fmt.Println(out.Get("Baggage"))
	fmt.Println(out.Get("Uberctx-Sd-Routing-Key"))

	for _, m := range e.HeaderMatchers(key)[:2] {
		fmt.Printf("%s ~ %s\n", m.Header, m.Regex)
	}
	// Output:
	// k7q2mz4xw3bd5nfe true
	// sm-routing-key=k7q2mz4xw3bd5nfe,sd-routing-key=k7q2mz4xw3bd5nfe,userId=alice
	// k7q2mz4xw3bd5nfe
	// baggage ~ (?s:.*,)?[ \t]*(?:sm-routing-key|sd-routing-key)[ \t]*=[ \t]*k7q2mz4xw3bd5nfe[ \t]*(?s:[;,].*)?
	// tracestate ~ (?s:.*,)?[ \t]*(?:sm-routing-key|sd-routing-key)=k7q2mz4xw3bd5nfe[ \t]*(?s:,.*)?
}

// ExampleExtractor_Middleware shows one-line propagation in an HTTP service:
// the middleware reads the key of incoming requests and the client's
// transport writes it into outgoing ones.
func ExampleExtractor_Middleware() {
	e := routingkey.Default
	client := &http.Client{Transport: e.Transport(nil)}
	handler := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://backend.default.svc/", nil)
		_, _ = client.Do(req) // carries the routing key of r
	}))
	_ = handler
}
