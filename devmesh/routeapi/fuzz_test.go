package routeapi

import (
	"encoding/json"
	"testing"
)

// FuzzWatchMessages feeds arbitrary JSON watch messages to the client's apply path: it must never
// panic, and a table it accepts must answer lookups for every route it lists.
func FuzzWatchMessages(f *testing.F) {
	f.Add(`{"type":"snapshot","epoch":"e","version":2,"routes":[{"workload":{"namespace":"a","name":"b"},"routingKey":"k","destination":{"kind":"fork","host":"h","ports":[{"port":80,"destinationPort":8080}]}}]}`)
	f.Add(`{"type":"delta","epoch":"e","version":3,"changes":[{"op":"remove","route":{"workload":{"namespace":"a","name":"b"},"routingKey":"k"}}]}`)
	f.Add(`{"type":"delta","version":3,"changes":[{"op":"add","route":{"workload":{"namespace":"a","name":"b"},"routingKey":"k2","destination":{"kind":"baseline"}}}]}`)
	f.Add(`{"type":"heartbeat","version":1}`)
	f.Add(`{"type":"bogus"}`)
	f.Add(`{"type":"snapshot","routes":[{"destination":{"kind":"fork","ports":[{"port":-1}]}}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := NewClient(ClientConfig{Target: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var msg WatchResponse
		if json.Unmarshal([]byte(s), &msg) != nil {
			return
		}
		if c.apply(&msg, 1) != nil {
			return
		}
		tab := c.Table()
		for _, r := range tab.Routes() {
			for _, p := range append(r.Destination.Ports, PortMapping{Port: 1}) {
				if _, ok := tab.Lookup(r.Workload, r.RoutingKey, p.Port); !ok {
					t.Fatalf("route %+v listed but not found", r)
				}
			}
		}
		if len(tab.Routes()) != tab.Len() {
			t.Fatalf("Len %d != %d routes", tab.Len(), len(tab.Routes()))
		}
	})
}
