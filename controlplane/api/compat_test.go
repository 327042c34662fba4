package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// The Signadot compatibility suite (docs/signadot-compat.md): requests are the
// exact JSON that clients generated from Signadot's v2 swagger send (go-swagger
// serialises empty lists as null, openapi-generator sends explicit nulls,
// hand-written clients omit fields or send [] and {}), and answers are decoded
// strictly into structs that carry Signadot's field names plus SandboxMesh's
// documented extensions, so a renamed or stray field fails the suite.

// sdSandbox is Signadot's Sandbox model as SandboxMesh answers it.
type sdSandbox struct {
	Name       string        `json:"name"`
	Spec       sdSandboxSpec `json:"spec"`
	RoutingKey string        `json:"routingKey"`
	Endpoints  []sdEndpoint  `json:"endpoints"`
	Status     sdReadiness   `json:"status"`
	CreatedAt  string        `json:"createdAt"`
	UpdatedAt  string        `json:"updatedAt"`
	Version    int64         `json:"version"` // extension
}

type sdSandboxSpec struct {
	Cluster           string            `json:"cluster"`
	Description       string            `json:"description"`
	Labels            map[string]string `json:"labels"`
	TTL               *sdTTL            `json:"ttl"`
	Forks             []sdFork          `json:"forks"`
	Virtual           []json.RawMessage `json:"virtual"`
	Local             []json.RawMessage `json:"local"`
	Resources         []json.RawMessage `json:"resources"`
	DefaultRouteGroup *sdDefaultRG      `json:"defaultRouteGroup"`
	Endpoints         []sdHostEndpoint  `json:"endpoints"`
	LocalMachineID    string            `json:"localMachineID"`
	Routing           *struct {
		Forwards []json.RawMessage `json:"forwards"`
	} `json:"routing"`
	Middleware []json.RawMessage `json:"middleware"`
}

type sdTTL struct {
	Duration   string `json:"duration"`
	OffsetFrom string `json:"offsetFrom"`
}

type sdFork struct {
	ForkOf         sdForkOf          `json:"forkOf"`
	Customizations *sdCustomizations `json:"customizations"`
	Endpoints      []sdForkEndpoint  `json:"endpoints"`
}

type sdForkOf struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

type sdCustomizations struct {
	Images []struct {
		Image     string `json:"image"`
		Container string `json:"container"`
	} `json:"images"`
	Env   []json.RawMessage `json:"env"`
	Patch *struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"patch"`
}

type sdForkEndpoint struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

type sdHostEndpoint struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

type sdDefaultRG struct {
	Endpoints []sdSpecEndpoint `json:"endpoints"`
}

type sdSpecEndpoint struct {
	Name   string `json:"name"`
	Target string `json:"target"`
}

type sdEndpoint struct {
	Name        string `json:"name"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Protocol    string `json:"protocol"`
	RouteType   string `json:"routeType"`
	Target      string `json:"target"`
	URL         string `json:"url"`
	BaselineURL string `json:"baselineUrl"`
	Cluster     string `json:"cluster"`
}

type sdReadiness struct {
	Ready               bool              `json:"ready"`
	Reason              string            `json:"reason"`
	Message             string            `json:"message"`
	ScheduledDeleteTime string            `json:"scheduledDeleteTime"`
	Forks               []json.RawMessage `json:"forks"` // extension
}

type sdRouteGroup struct {
	Name       string `json:"name"`
	RoutingKey string `json:"routingKey"`
	Spec       struct {
		Cluster     string           `json:"cluster"`
		Description string           `json:"description"`
		Match       json.RawMessage  `json:"match"`
		Endpoints   []sdSpecEndpoint `json:"endpoints"`
		TTL         *sdTTL           `json:"ttl"`
	} `json:"spec"`
	Endpoints []struct {
		Name   string `json:"name"`
		Target string `json:"target"`
		URL    string `json:"url"`
	} `json:"endpoints"`
	Status struct {
		Ready               bool     `json:"ready"`
		Reason              string   `json:"reason"`
		Message             string   `json:"message"`
		MatchedSandboxes    []string `json:"matchedSandboxes"`
		ScheduledDeleteTime string   `json:"scheduledDeleteTime"`
	} `json:"status"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
	Version   int64  `json:"version"` // extension
}

type sdCluster struct {
	Name          string `json:"name"`
	CreatedAt     string `json:"createdAt"`
	ClusterConfig *struct {
		AllowedNamespaces []string `json:"allowedNamespaces"`
	} `json:"clusterConfig"`
	Operator *struct {
		Version string `json:"version"`
	} `json:"operator"`
	LastSeenAt string `json:"lastSeenAt"` // extension
}

// strict decodes b into v refusing unknown fields.
func strict(t *testing.T, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("strict decode into %T: %v\n%s", v, err, b)
	}
}

// present checks that the JSON object at path (dot-separated, numbers index
// lists) of b has the given keys, whatever their values.
func present(t *testing.T, b []byte, path string, keys ...string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Split(path, ".") {
		if p == "" {
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i := int(p[0] - '0')
			if i >= len(x) {
				t.Fatalf("%s: no item %d in %s", path, i, b)
			}
			v = x[i]
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object in %s", path, b)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Fatalf("%s has no %q in %s", path, k, b)
		}
	}
}

// goSwaggerSandbox is what a go-swagger client sends for a sandbox with one
// fork: every list it was not given is null (the model has no omitempty).
const goSwaggerSandbox = `{"endpoints":null,"name":"%s","spec":{"cluster":"c1","defaultRouteGroup":{"endpoints":null},
 "endpoints":null,"forks":[{"customizations":{"env":null,"images":[{"container":"","image":"cart:v2"}]},"endpoints":null,
 "forkOf":{"kind":"Deployment","name":"cart","namespace":"shop"}}],"local":null,"resources":null,"virtual":null,
 "middleware":null,"routing":null}}`

func TestSignadotCompatApplySandbox(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		fork := `"forks":[{"forkOf":{"kind":"Deployment","namespace":"shop","name":"cart"}}]`
		for _, tc := range []struct {
			name, body string
			code       int
			path, msg  string // a field error wanted on 4xx
		}{
			{"go-swagger nulls", strings.ReplaceAll(goSwaggerSandbox, "%s", "sb"), 200, "", ""},
			{"openapi-generator nulls everywhere", `{"name":"sb","routingKey":null,"endpoints":null,"status":null,"createdAt":null,"updatedAt":null,"defaults":null,
			  "spec":{"cluster":"c1","description":null,"labels":null,"ttl":null,"defaultRouteGroup":null,"endpoints":null,"local":null,"virtual":null,
			  "resources":null,"middleware":null,"routing":null,"connection":null,"localMachineID":null,"disableSandboxTrafficManager":null,
			  "forks":[{"name":null,"forkOf":{"kind":null,"namespace":"shop","name":"cart"},"endpoints":null,
			    "customizations":{"images":null,"env":[{"name":"A","value":null,"container":null,"operation":null,"valueFrom":null}],"patch":null}}]}}`, 200, "", ""},
			{"empty lists and objects", `{"name":"sb","endpoints":[],"spec":{"cluster":"c1","labels":{},"endpoints":[],"local":[],"virtual":[],"resources":[],
			  "middleware":[],"routing":{"forwards":[]},"connection":{},"localMachineID":"","disableSandboxTrafficManager":false,"defaultRouteGroup":{"endpoints":[]},
			  "forks":[{"forkOf":{"kind":"Deployment","namespace":"shop","name":"cart"},"endpoints":[],"customizations":{"images":[],"env":[]}}]}}`, 200, "", ""},
			{"omitted fields", `{"spec":{"cluster":"c1",` + fork + `}}`, 200, "", ""},
			{"override middleware of signadot local override", `{"spec":{"cluster":"c1",` + fork + `,"localMachineID":"m1","routing":{"forwards":[{"name":"override-1","port":8080,"toLocal":"localhost:8080","appProtocol":"http"}]},` +
				`"middleware":[{"name":"override","args":[{"name":"overrideHost","valueFrom":{"forward":"override-1"}},{"name":"policy","value":"{\"exceptStatusCodes\":[404]}"}],"match":[{"workload":"cart"}]}]}}`, 200, "", ""},
			{"other middleware refused", `{"spec":{"cluster":"c1",` + fork + `,"middleware":[{"name":"trafficwatch","args":[]}]}}`, 400, "spec.middleware[0].name", "unknown middleware"},
			{"override without its forward", `{"spec":{"cluster":"c1",` + fork + `,"middleware":[{"name":"override","args":[{"name":"overrideHost","valueFrom":{"forward":"nope"}}],"match":[{"workload":"cart"}]}]}}`, 400, "spec.middleware[0].args[0].valueFrom.forward", "not one of spec.routing.forwards"},
			{"forwards without a machine", `{"spec":{"cluster":"c1",` + fork + `,"routing":{"forwards":[{"name":"o-1","port":80,"toLocal":"localhost:8080"}]}}}`, 400, "spec.localMachineID", "required with spec.routing.forwards"},
			{"override matching no workload", `{"spec":{"cluster":"c1",` + fork + `,"localMachineID":"m1","routing":{"forwards":[{"name":"o-1","port":80,"toLocal":"localhost:8080"}]},"middleware":[{"name":"override","args":[{"name":"overrideHost","valueFrom":{"forward":"o-1"}}],"match":[{"workload":"x*"}]}]}}`, 400, "spec.middleware[0].match", "matches none"},
			{"traffic manager refused", `{"spec":{"cluster":"c1",` + fork + `,"disableSandboxTrafficManager":true}}`, 400, "spec.disableSandboxTrafficManager", "not supported"},
			{"bad machine ID refused", `{"spec":{"cluster":"c1",` + fork + `,"localMachineID":"M_1"}}`, 400, "spec.localMachineID", "machine id"},
			{"connection refused", `{"spec":{"cluster":"c1",` + fork + `,"connection":{"devboxId":"d1"}}}`, 400, "spec.connection.devboxId", "not supported"},
			{"fork name refused", `{"spec":{"cluster":"c1","forks":[{"name":"x","forkOf":{"namespace":"shop","name":"cart"}}]}}`, 400, "spec.forks[0].name", "not supported"},
			{"unknown field, full path", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"shop","name":"cart"},"customizations":{"foo":1}}]}}`, 400, "spec.forks[0].customizations.foo", "unknown field"},
			{"unknown top-level field", `{"spec":{"cluster":"c1",` + fork + `},"bogus":null}`, 400, "bogus", "unknown field"},
			{"wrong type, full path", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"shop","name":"cart"},"endpoints":[{"name":"w","port":"80"}]}]}}`, 400, "spec.forks[0].endpoints[0].port", "want integer"},
			{"fork endpoint unknown field", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"shop","name":"cart"},"endpoints":[{"name":"w","port":80,"x":1}]}]}}`, 400, "spec.forks[0].endpoints[0].x", "unknown field"},
			{"fork endpoint bad protocol", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"shop","name":"cart"},"endpoints":[{"name":"w","port":80,"protocol":"https"}]}]}}`, 400, "spec.forks[0].endpoints[0].protocol", "http, grpc or tcp"},
			{"host endpoint bad host", `{"spec":{"cluster":"c1",` + fork + `,"endpoints":[{"name":"w","host":"10.0.0.1","port":80}]}}`, 400, "spec.endpoints[0].host", "<service>.<namespace>.svc"},
			{"legacy endpoint clashes", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"shop","name":"cart"},"endpoints":[{"name":"web","port":80}]}],
			  "defaultRouteGroup":{"endpoints":[{"name":"web","target":"http://frontend.shop.svc:80"}]}}}`, 400, "spec.forks[0].endpoints[0].name", "also in spec.defaultRouteGroup.endpoints"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, er, body := e.raw("PUT", "/api/v2/orgs/acme/sandboxes/sb", e.keyA, tc.body)
				if resp.StatusCode != tc.code {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
				}
				if tc.code != 200 {
					if er.Code != tc.code || er.Error == "" || er.RequestID == "" || strings.Contains(er.Error, `unknown field "`) {
						t.Fatalf("error body: %s", body)
					}
					for _, f := range er.Fields {
						if f.Path == tc.path && strings.Contains(f.Message, tc.msg) {
							return
						}
					}
					t.Fatalf("no field %s (%q) in %s", tc.path, tc.msg, body)
				}
				var sb sdSandbox
				strict(t, body, &sb)
				if sb.Name != "sb" || sb.RoutingKey == "" || sb.Spec.Cluster != "c1" || len(sb.Spec.Forks) != 1 || sb.Endpoints == nil {
					t.Fatalf("answer: %s", body)
				}
				present(t, body, "status", "ready", "reason", "message")
			})
		}
	})
}

// TestSignadotCompatEndpoints: Signadot's deprecated forks[].endpoints and
// spec.endpoints become preview endpoints, are served as sent, survive a
// client sending the whole answer back, and answers carry baselineUrl,
// cluster and a scheduledDeleteTime computed from the TTL at apply.
func TestSignadotCompatEndpoints(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		body := `{"name":"legacy","spec":{"cluster":"c1","ttl":{"duration":"2h","offsetFrom":null},
		  "forks":[{"forkOf":{"kind":"Deployment","namespace":"shop","name":"cart"},"endpoints":[{"name":"cart","port":8080,"protocol":"http"}]}],
		  "endpoints":[{"name":"front","host":"frontend.shop.svc.cluster.local","port":80,"protocol":null}]}}`
		before := time.Now().Add(-time.Second)
		resp, _, b := e.raw("PUT", "/api/v2/orgs/acme/sandboxes/legacy", e.keyA, body)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		var sb sdSandbox
		strict(t, b, &sb)
		check := func(sb sdSandbox, raw []byte) {
			t.Helper()
			if len(sb.Spec.Forks[0].Endpoints) != 1 || sb.Spec.Forks[0].Endpoints[0] != (sdForkEndpoint{"cart", 8080, "http"}) {
				t.Fatalf("forks[0].endpoints not served as sent: %s", raw)
			}
			if len(sb.Spec.Endpoints) != 1 || sb.Spec.Endpoints[0].Host != "frontend.shop.svc.cluster.local" {
				t.Fatalf("spec.endpoints not served as sent: %s", raw)
			}
			want := map[string]sdEndpoint{
				"cart":  {Name: "cart", Host: "cart.shop.deploy", Port: 8080, Protocol: "http", RouteType: "host", Target: "http://cart.shop.deploy:8080", URL: "http://cart--legacy.preview.localhost", Cluster: "c1"},
				"front": {Name: "front", Host: "frontend.shop.svc", Port: 80, Protocol: "http", RouteType: "host", Target: "http://frontend.shop.svc:80", URL: "http://front--legacy.preview.localhost", BaselineURL: "http://frontend.shop.svc:80", Cluster: "c1"},
			}
			if len(sb.Endpoints) != len(want) {
				t.Fatalf("endpoints: %s", raw)
			}
			for i, ep := range sb.Endpoints {
				if ep != want[ep.Name] {
					t.Fatalf("endpoint %s: got %+v, want %+v", ep.Name, ep, want[ep.Name])
				}
				present(t, raw, "endpoints."+string(rune('0'+i)), "baselineUrl", "cluster")
			}
			at, err := time.Parse(time.RFC3339, sb.Status.ScheduledDeleteTime)
			if err != nil || at.Before(before.Add(2*time.Hour)) || at.After(time.Now().Add(2*time.Hour+time.Second)) {
				t.Fatalf("scheduledDeleteTime %q: want createdAt + 2h", sb.Status.ScheduledDeleteTime)
			}
		}
		check(sb, b)
		// A client sends back what it read (status, endpoints, createdAt and
		// the defaultRouteGroup entries the legacy endpoints became).
		resp, _, b2 := e.raw("PUT", "/api/v2/orgs/acme/sandboxes/legacy", e.keyA, string(b))
		if resp.StatusCode != 200 {
			t.Fatalf("round trip: %d %s", resp.StatusCode, b2)
		}
		var again sdSandbox
		strict(t, b2, &again)
		check(again, b2)
		if len(again.Spec.DefaultRouteGroup.Endpoints) != 2 {
			t.Fatalf("round trip duplicated endpoints: %s", b2)
		}
		resp, _, b3 := e.raw("GET", "/api/v2/orgs/acme/sandboxes/legacy", e.keyA, "")
		var got sdSandbox
		strict(t, b3, &got)
		if resp.StatusCode != 200 {
			t.Fatalf("get: %d %s", resp.StatusCode, b3)
		}
		check(got, b3)
		// The agent gets the spec the CRD has: the legacy fields are gone,
		// their endpoints are in defaultRouteGroup.
		resp, _, b5 := e.raw("GET", "/api/v2/agent/state?since=0&wait=0s", "", "", apitypes.HeaderClusterToken, e.tokenA)
		var st apitypes.AgentState
		if err := json.Unmarshal(b5, &st); err != nil || resp.StatusCode != 200 || len(st.Objects) != 1 {
			t.Fatalf("agent state: %d %v %s", resp.StatusCode, err, b5)
		}
		var crd v1alpha1.SandboxSpec
		strict(t, st.Objects[0].Spec, &crd)
		if len(crd.DefaultRouteGroup.Endpoints) != 2 {
			t.Fatalf("agent spec: %s", st.Objects[0].Spec)
		}
		resp, _, b4 := e.raw("GET", "/api/v2/orgs/acme/sandboxes", e.keyA, "")
		var list []sdSandbox
		strict(t, b4, &list)
		if resp.StatusCode != 200 || len(list) != 1 {
			t.Fatalf("list: %d %s", resp.StatusCode, b4)
		}
	})
}

func TestSignadotCompatRouteGroupsAndClusters(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		for _, tc := range []struct {
			name, body string
			code       int
			path       string
		}{
			{"nulls", `{"name":"rg","routingKey":null,"endpoints":null,"status":null,"defaults":null,"spec":{"cluster":"c1","description":null,
			  "match":{"label":{"key":"team","value":"cart*"},"any":null,"all":null},"endpoints":[{"name":"web","target":"http://frontend.shop.svc:8080"}],
			  "ttl":{"duration":"1d","offsetFrom":"createdAt"}}}`, 200, ""},
			{"nested criteria refused", `{"spec":{"cluster":"c1","match":{"any":[{"label":{"key":"a","value":"b"},"any":[{"label":{"key":"c","value":"d"}}]}]}}}`, 400, "spec.match.any[0].any[0]"},
			{"unknown field", `{"spec":{"cluster":"c1","match":{"label":{"key":"a","value":"b","regex":true}}}}`, 400, "spec.match.label.regex"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, er, body := e.raw("PUT", "/api/v2/orgs/acme/routegroups/rg", e.keyA, tc.body)
				if resp.StatusCode != tc.code {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
				}
				if tc.code != 200 {
					for _, f := range er.Fields {
						if f.Path == tc.path {
							return
						}
					}
					t.Fatalf("no field %s in %s", tc.path, body)
				}
				var rg sdRouteGroup
				strict(t, body, &rg)
				if rg.Status.MatchedSandboxes == nil || len(rg.Status.MatchedSandboxes) != 0 || rg.Status.ScheduledDeleteTime == "" {
					t.Fatalf("status: %s", body)
				}
			})
		}
		resp, _, b := e.raw("GET", "/api/v2/orgs/acme/clusters/c1", e.keyA, "")
		var cl sdCluster
		strict(t, b, &cl)
		if resp.StatusCode != 200 || cl.ClusterConfig == nil || cl.ClusterConfig.AllowedNamespaces == nil {
			t.Fatalf("cluster: %d %s", resp.StatusCode, b)
		}
		e.raw("PUT", "/api/v2/orgs/acme/clusters/c1/preview-policy", e.keyA, `{"allowedNamespaces":["shop"]}`)
		_, _, b = e.raw("GET", "/api/v2/orgs/acme/clusters/", e.keyA, "")
		var cls []sdCluster
		strict(t, b, &cls)
		if len(cls) != 1 || len(cls[0].ClusterConfig.AllowedNamespaces) != 1 || cls[0].ClusterConfig.AllowedNamespaces[0] != "shop" {
			t.Fatalf("clusters: %s", b)
		}
	})
}

// TestSignadotCompatRoutes: the routes Signadot clients call early, each
// authorised like its neighbours.
func TestSignadotCompatRoutes(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		type orgs struct {
			Orgs []struct {
				Name        string `json:"name"`
				DisplayName string `json:"displayName"`
			} `json:"orgs"`
		}
		t.Run("orgs", func(t *testing.T) {
			for _, tc := range []struct {
				name, key string
				code      int
				want      []string
			}{
				{"org key sees its org", e.keyA, 200, []string{"acme"}},
				{"admin key sees every org", e.adminSecret, 200, []string{"acme", "other"}},
				{"no key", "", 401, nil},
				{"bad key", "smk_nope", 401, nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp, er, b := e.raw("GET", "/api/v2/orgs/", tc.key, "")
					if resp.StatusCode != tc.code {
						t.Fatalf("%d %s", resp.StatusCode, b)
					}
					if tc.code != 200 {
						if er.Code != tc.code || er.RequestID == "" {
							t.Fatalf("error body %s", b)
						}
						return
					}
					var o orgs
					strict(t, b, &o)
					var names []string
					for _, x := range o.Orgs {
						names = append(names, x.Name)
					}
					if strings.Join(names, ",") != strings.Join(tc.want, ",") {
						t.Fatalf("orgs %v, want %v", names, tc.want)
					}
				})
			}
		})
		t.Run("meta openapi", func(t *testing.T) {
			_, _, a := e.raw("GET", "/api/v2/openapi.json", "", "")
			resp, _, b := e.raw("GET", "/api/v2/meta/openapi.json", "", "")
			if resp.StatusCode != 200 || !bytes.Equal(a, b) || !bytes.Contains(b, []byte(`"analyze-devmesh"`)) {
				t.Fatalf("%d, same=%v", resp.StatusCode, bytes.Equal(a, b))
			}
		})
		t.Run("explain", func(t *testing.T) {
			e.raw("PUT", "/api/v2/orgs/acme/sandboxes/sb", e.keyA, strings.ReplaceAll(goSwaggerSandbox, "%s", "sb"))
			resp, _, b := e.raw("GET", "/api/v2/orgs/acme/sandboxes/sb/status/explain?mode=explain", e.keyA, "")
			var x struct {
				Status      sdReadiness `json:"status"`
				Explanation string      `json:"explanation"`
				Context     []string    `json:"context"`
			}
			strict(t, b, &x)
			if resp.StatusCode != 200 || x.Status.Ready || !strings.Contains(x.Explanation, "is not ready (Pending") || !strings.Contains(x.Explanation, "has never connected") {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			// The agent connects and reports its workloads: cart has no sidecar.
			if resp, _, b := e.raw("GET", "/api/v2/agent/state?since=0&wait=0s", "", "", apitypes.HeaderClusterToken, e.tokenA); resp.StatusCode != 200 {
				t.Fatalf("agent poll: %d %s", resp.StatusCode, b)
			}
			e.raw("PUT", "/api/v2/agent/workloads", "", `{"workloads":[{"kind":"Deployment","namespace":"shop","name":"cart","containers":[{"name":"cart","image":"cart:v1"}],"replicas":2,"readyReplicas":2}]}`,
				apitypes.HeaderClusterToken, e.tokenA)
			_, _, b = e.raw("GET", "/api/v2/orgs/acme/sandboxes/sb/status/explain", e.keyA, "")
			strict(t, b, &x)
			if strings.Contains(x.Explanation, "never connected") || !strings.Contains(x.Explanation, "has not reported version 1") || !strings.Contains(x.Explanation, "does not run the devmesh sidecar") {
				t.Fatalf("after report: %s", b)
			}
			for _, tc := range []struct {
				name, path, key string
				code            int
			}{
				{"unknown sandbox", "/api/v2/orgs/acme/sandboxes/nope/status/explain", e.keyA, 404},
				{"no key", "/api/v2/orgs/acme/sandboxes/sb/status/explain", "", 401},
				{"other org", "/api/v2/orgs/other/sandboxes/sb/status/explain", e.keyA, 404},
				{"bad name", "/api/v2/orgs/acme/sandboxes/Bad_Name/status/explain", e.keyA, 400},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp, er, b := e.raw("GET", tc.path, tc.key, "")
					if resp.StatusCode != tc.code || er.Code != tc.code || er.Error == "" || er.RequestID == "" {
						t.Fatalf("%d %s", resp.StatusCode, b)
					}
				})
			}
		})
		t.Run("devmesh analyze", func(t *testing.T) {
			e.raw("PUT", "/api/v2/agent/workloads", "", `{"workloads":[
			  {"kind":"Deployment","namespace":"shop","name":"cart","containers":[{"name":"cart","image":"cart:v1"}],"replicas":2,"readyReplicas":2,"devmeshInjected":true,"services":[{"name":"cart","ports":[80]}]},
			  {"kind":"Deployment","namespace":"web","name":"frontend","containers":[{"name":"web","image":"web:v1"}],"replicas":1}]}`,
				apitypes.HeaderClusterToken, e.tokenA)
			type analysis struct {
				Cluster    string `json:"cluster"`
				ReportedAt string `json:"reportedAt"`
				Workloads  []struct {
					Workload     sdForkOf `json:"workload"`
					StatusCounts []struct {
						Status string `json:"status"`
						Count  int    `json:"count"`
					} `json:"statusCounts"`
					Status           string `json:"status"`
					ForkableServices []struct {
						Name  string `json:"name"`
						Ports []int  `json:"ports"`
					} `json:"forkableServices"`
				} `json:"workloads"`
				Summary []struct {
					Status string `json:"status"`
					Count  int    `json:"count"`
				} `json:"summary"`
			}
			for _, tc := range []struct {
				name, query string
				code        int
				want        string // workload:status,...
			}{
				{"all", "", 200, "cart:ok,frontend:missing"},
				{"missing only", "?status=missing", 200, "frontend:missing"},
				{"namespace", "?namespace=shop", 200, "cart:ok"},
				{"bad status", "?status=broken", 400, ""},
				{"bad namespace", "?namespace=Shop!", 400, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp, er, b := e.raw("GET", "/api/v2/orgs/acme/clusters/c1/devmesh/analyze"+tc.query, e.keyA, "")
					if resp.StatusCode != tc.code {
						t.Fatalf("%d %s", resp.StatusCode, b)
					}
					if tc.code != 200 {
						if er.Code != tc.code || len(er.Fields) != 1 || er.RequestID == "" {
							t.Fatalf("%s", b)
						}
						return
					}
					var a analysis
					strict(t, b, &a)
					var got []string
					for _, w := range a.Workloads {
						got = append(got, w.Workload.Name+":"+w.Status)
						if w.ForkableServices == nil || len(w.StatusCounts) != 1 || w.StatusCounts[0].Status != w.Status {
							t.Fatalf("workload %s", b)
						}
					}
					if strings.Join(got, ",") != tc.want || a.Cluster != "c1" || a.ReportedAt == "" {
						t.Fatalf("got %v: %s", got, b)
					}
				})
			}
			for _, path := range []string{"/api/v2/orgs/other/clusters/c1/devmesh/analyze", "/api/v2/orgs/acme/clusters/c9/devmesh/analyze"} {
				if resp, er, b := e.raw("GET", path, e.keyA, ""); resp.StatusCode != http.StatusNotFound || er.RequestID == "" {
					t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
				}
			}
		})
	})
}

// TestSignadotCompatTable keeps docs/signadot-compat.yaml true: every
// supported or partial operation names a route the server has (and every
// not-supported one none), and the refused fields are exactly the
// WireUnsupported rules.
func TestSignadotCompatTable(t *testing.T) {
	raw, err := os.ReadFile("../../docs/signadot-compat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Operations []struct {
			Operation, Method, Path, Status, Route, Why string
		} `json:"operations"`
		Fields struct {
			Sandbox    []struct{ Path, Why string } `json:"sandbox"`
			Routegroup []struct{ Path, Why string } `json:"routegroup"`
		} `json:"fields"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, store.DriverSQLite)
	routes := map[string]bool{}
	for _, r := range e.srv.Routes() {
		routes[r.Method+" "+r.Path] = true
	}
	seen := map[string]bool{}
	for _, op := range doc.Operations {
		if seen[op.Operation] {
			t.Errorf("%s listed twice", op.Operation)
		}
		seen[op.Operation] = true
		switch op.Status {
		case "supported", "partial":
			if !routes[op.Route] {
				t.Errorf("%s: route %q is not served", op.Operation, op.Route)
			}
			if op.Status == "partial" && op.Why == "" {
				t.Errorf("%s: partial without why", op.Operation)
			}
		case "not":
			if op.Route != "" || op.Why == "" {
				t.Errorf("%s: not supported needs a why and no route", op.Operation)
			}
		default:
			t.Errorf("%s: status %q", op.Operation, op.Status)
		}
	}
	for _, tc := range []struct {
		name   string
		listed []struct{ Path, Why string }
		rules  apitypes.WireRules
	}{{"sandbox", doc.Fields.Sandbox, apitypes.SandboxWireRules}, {"routegroup", doc.Fields.Routegroup, apitypes.RouteGroupWireRules}} {
		var want, got []string
		for p, r := range tc.rules {
			if r.Kind == apitypes.WireUnsupported {
				want = append(want, p)
			}
		}
		for _, f := range tc.listed {
			got = append(got, f.Path)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s fields: docs list %v, rules refuse %v", tc.name, got, want)
		}
	}
}
