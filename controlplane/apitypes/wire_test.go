package apitypes

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func TestDecodeWire(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		malformed  bool   // want a *WireError with Malformed
		path, msg  string // a field error wanted
		check      func(t *testing.T, sb Sandbox, ext []Extracted)
	}{
		{name: "nulls are absent", body: `{"name":null,"spec":{"cluster":"c1","labels":null,"ttl":null,"forks":[{"forkOf":{"kind":null,"namespace":"a","name":"b"},"customizations":null}],"virtual":null}}`,
			check: func(t *testing.T, sb Sandbox, _ []Extracted) {
				if sb.Spec.Cluster != "c1" || len(sb.Spec.Forks) != 1 || sb.Spec.Forks[0].Customizations != nil || sb.Spec.TTL != nil {
					t.Fatalf("%+v", sb)
				}
			}},
		{name: "null list items stay", body: `{"spec":{"forks":[null]}}`, check: func(t *testing.T, sb Sandbox, _ []Extracted) {
			if len(sb.Spec.Forks) != 1 {
				t.Fatalf("%+v", sb.Spec.Forks)
			}
		}},
		{name: "answer fields dropped whatever they hold", body: `{"status":{"local":[{"name":"x"}]},"endpoints":[{"bogus":1}],"createdAt":5,"spec":{}}`},
		{name: "extracted legacy endpoints", body: `{"spec":{"endpoints":[{"name":"a"}],"forks":[{"forkOf":{"namespace":"a","name":"b"},"endpoints":null},{"forkOf":{"namespace":"a","name":"c"},"endpoints":[]}]}}`,
			check: func(t *testing.T, _ Sandbox, ext []Extracted) {
				var got []string
				for _, e := range ext {
					got = append(got, e.Path+"="+string(e.Value))
				}
				if strings.Join(got, " ") != `spec.endpoints=[{"name":"a"}] spec.forks[1].endpoints=[]` {
					t.Fatalf("%v", got)
				}
			}},
		{name: "unsupported but empty", body: `{"spec":{"middleware":[],"routing":{"forwards":null},"disableSandboxTrafficManager":false,"localMachineID":"","connection":{"x":{"y":""}}}}`},
		{name: "unsupported list", body: `{"spec":{"local":[{"env":[{}]}]}}`, path: "spec.local[0].env[0]", msg: "not supported by SandboxMesh"},
		{name: "unsupported nested value", body: `{"spec":{"connection":{"devboxId":"","x":{"y":0,"z":"v"}}}}`, path: "spec.connection.x.z", msg: "not supported"},
		{name: "unsupported string", body: `{"spec":{"local":[{"name":"l","mappings":[{"port":1,"appProtocol":"http"}]}]}}`, path: "spec.local[0].mappings[0].appProtocol", msg: "not supported"},
		{name: "unknown field", body: `{"spec":{"forks":[{"customizations":{"foo":null}}]}}`, malformed: true, path: "spec.forks[0].customizations.foo", msg: "unknown field"},
		{name: "case-insensitive names as encoding/json", body: `{"Spec":{"Cluster":"c1"}}`, check: func(t *testing.T, sb Sandbox, _ []Extracted) {
			if sb.Spec.Cluster != "c1" {
				t.Fatalf("%+v", sb)
			}
		}},
		{name: "rules follow case-insensitive names", body: `{"Spec":{"Forks":[{"forkOf":{"namespace":"a","name":"b"},"endpoints":[]}],"connection":{"devboxId":"d"}}}`, path: "Spec.connection.devboxId", msg: "not supported"},
		{name: "extraction under case-insensitive names", body: `{"Spec":{"Forks":[{"endpoints":[{"name":"w"}]}]}}`, check: func(t *testing.T, _ Sandbox, ext []Extracted) {
			if len(ext) != 1 || ext[0].Schema != "spec.forks[].endpoints" || ext[0].Path != "Spec.Forks[0].endpoints" {
				t.Fatalf("%+v", ext)
			}
		}},
		{name: "string for integer", body: `{"spec":{"local":[{"mappings":[{"port":"80"}]}]}}`, malformed: true, path: "spec.local[0].mappings[0].port", msg: "got JSON string, want integer"},
		{name: "integer overflow", body: `{"spec":{"local":[{"mappings":[{"port":4294967296}]}]}}`, malformed: true, path: "spec.local[0].mappings[0].port", msg: "fits in int32"},
		{name: "fraction for integer", body: `{"version":1.5,"spec":{}}`, malformed: true, path: "version", msg: "integer"},
		{name: "object for list", body: `{"spec":{"forks":{}}}`, malformed: true, path: "spec.forks", msg: "want array"},
		{name: "label value type", body: `{"spec":{"labels":{"a":1}}}`, malformed: true, path: `spec.labels["a"]`, msg: "want string"},
		{name: "not an object", body: `[1]`, malformed: true},
		{name: "syntax", body: `{"spec":`, malformed: true},
		{name: "trailing data", body: `{} {}`, malformed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sb Sandbox
			ext, err := DecodeWire([]byte(tc.body), &sb, SandboxWireRules)
			if tc.path == "" && !tc.malformed {
				if err != nil {
					t.Fatal(err)
				}
				if tc.check != nil {
					tc.check(t, sb, ext)
				}
				return
			}
			var we *WireError
			if !errors.As(err, &we) || we.Malformed != tc.malformed {
				t.Fatalf("want *WireError (malformed %v), got %#v", tc.malformed, err)
			}
			if tc.path == "" {
				return
			}
			for _, f := range we.Fields {
				if f.Path == tc.path && strings.Contains(f.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("no %s (%q) in %v", tc.path, tc.msg, we.Fields)
		})
	}
}

// TestDecodeWireManyErrors: a body with thousands of bad fields gets a short answer.
func TestDecodeWireManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"spec":{"forks":[`)
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"bad":1}`)
	}
	b.WriteString(`]}}`)
	var sb Sandbox
	_, err := DecodeWire([]byte(b.String()), &sb, SandboxWireRules)
	var we *WireError
	if !errors.As(err, &we) || len(we.Fields) != MaxFieldErrors+1 {
		t.Fatalf("%v", err)
	}
}

func TestLegacyEndpoints(t *testing.T) {
	fork := func(ns, name string) v1alpha1.Fork {
		return v1alpha1.Fork{ForkOf: v1alpha1.WorkloadRef{Namespace: ns, Name: name}}
	}
	for _, tc := range []struct {
		name   string
		l      LegacyEndpoints
		spec   v1alpha1.SandboxSpec
		want   []v1alpha1.Endpoint
		path   string
		errMsg string
	}{
		{name: "fork and host", spec: v1alpha1.SandboxSpec{Forks: []v1alpha1.Fork{fork("shop", "cart")}},
			l:    LegacyEndpoints{Forks: map[int][]ForkEndpoint{0: {{Name: "cart", Port: 8080, Protocol: "GRPC"}}}, Spec: []HostEndpoint{{Name: "web", Host: "frontend.shop", Port: 80}}},
			want: []v1alpha1.Endpoint{{Name: "cart", Target: "grpc://cart.shop.deploy:8080"}, {Name: "web", Target: "http://frontend.shop.svc:80"}}},
		{name: "same endpoint sent back", spec: v1alpha1.SandboxSpec{Forks: []v1alpha1.Fork{fork("shop", "cart")},
			DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "cart", Target: "http://cart.shop.deploy:80"}}}},
			l:    LegacyEndpoints{Forks: map[int][]ForkEndpoint{0: {{Name: "cart", Port: 80}}}},
			want: []v1alpha1.Endpoint{{Name: "cart", Target: "http://cart.shop.deploy:80"}}},
		{name: "clash", spec: v1alpha1.SandboxSpec{Forks: []v1alpha1.Fork{fork("shop", "cart")},
			DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "cart", Target: "http://x.shop.svc:80"}}}},
			l: LegacyEndpoints{Forks: map[int][]ForkEndpoint{0: {{Name: "cart", Port: 80}}}}, path: "spec.forks[0].endpoints[0].name", errMsg: "also in"},
		{name: "port", spec: v1alpha1.SandboxSpec{Forks: []v1alpha1.Fork{fork("shop", "cart")}},
			l: LegacyEndpoints{Forks: map[int][]ForkEndpoint{0: {{Name: "cart", Port: 0}}}}, path: "spec.forks[0].endpoints[0].port", errMsg: "between 1 and 65535"},
		{name: "name", spec: v1alpha1.SandboxSpec{Forks: []v1alpha1.Fork{fork("shop", "cart")}},
			l: LegacyEndpoints{Forks: map[int][]ForkEndpoint{0: {{Name: "Cart", Port: 80}}}}, path: "spec.forks[0].endpoints[0].name", errMsg: "DNS label"},
		{name: "fork name with dots", spec: v1alpha1.SandboxSpec{Forks: []v1alpha1.Fork{fork("shop", "cart.v2")}},
			l: LegacyEndpoints{Forks: map[int][]ForkEndpoint{0: {{Name: "cart", Port: 80}}}}, path: "spec.forks[0].endpoints[0]", errMsg: "cannot be an endpoint target"},
		{name: "host", l: LegacyEndpoints{Spec: []HostEndpoint{{Name: "web", Host: "api.example.com", Port: 80}}}, path: "spec.endpoints[0].host", errMsg: "<service>.<namespace>.svc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.l.Apply(&tc.spec)
			if tc.path != "" {
				for _, f := range errs {
					if f.Path == tc.path && strings.Contains(f.Message, tc.errMsg) {
						return
					}
				}
				t.Fatalf("no %s (%q) in %v", tc.path, tc.errMsg, errs)
			}
			if len(errs) > 0 || !reflect.DeepEqual(tc.spec.DefaultRouteGroup.Endpoints, tc.want) {
				t.Fatalf("%v %+v", errs, tc.spec.DefaultRouteGroup)
			}
			raw, _ := json.Marshal(tc.spec)
			spliced, err := tc.l.Splice(raw)
			if err != nil {
				t.Fatal(err)
			}
			agent := AgentSpec(spliced)
			var crd v1alpha1.SandboxSpec
			d := json.NewDecoder(bytes.NewReader(agent))
			d.DisallowUnknownFields()
			if err := d.Decode(&crd); err != nil || !bytes.Equal(AgentSpec(raw), raw) {
				t.Fatalf("agent spec %s: %v", agent, err)
			}
			var back struct {
				Endpoints []HostEndpoint `json:"endpoints"`
				Forks     []struct {
					Endpoints []ForkEndpoint `json:"endpoints"`
				} `json:"forks"`
			}
			if err := json.Unmarshal(spliced, &back); err != nil || len(back.Endpoints) != len(tc.l.Spec) || (len(tc.l.Forks) > 0 && len(back.Forks[0].Endpoints) != len(tc.l.Forks[0])) {
				t.Fatalf("splice: %v %s", err, spliced)
			}
		})
	}
}

// FuzzDecodeWire: DecodeWire never panics; it fails only with a *WireError
// whose field paths are set; what it accepts re-encodes and decodes again to
// the same value.
func FuzzDecodeWire(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","spec":{"cluster":"c1","endpoints":null,"forks":[{"forkOf":{"namespace":"a","name":"b"},"endpoints":[{"name":"w","port":80}]}],"middleware":null}}`,
		`{"spec":{"middleware":[{"name":"x"}],"routing":{"forwards":[]}}}`,
		`{"spec":{"forks":[{"customizations":{"foo":1,"env":[{"name":"A","value":null}]}}]},"status":{"x":1}}`,
		`{"spec":{"local":[{"mappings":[{"port":"80"}]}],"labels":{"a":null}}}`,
		`[null]`,
		`{"Spec":{"TTL":{"duration":"2h"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var sb Sandbox
		_, err := DecodeWire(data, &sb, SandboxWireRules)
		if err != nil {
			var we *WireError
			if !errors.As(err, &we) {
				t.Fatalf("not a *WireError: %v", err)
			}
			for _, fe := range we.Fields {
				if fe.Message == "" {
					t.Fatalf("field error without message: %+v", fe)
				}
			}
			return
		}
		raw, err := json.Marshal(sb)
		if err != nil {
			t.Fatal(err)
		}
		var again Sandbox
		if _, err := DecodeWire(raw, &again, SandboxWireRules); err != nil {
			t.Fatalf("re-decode %s: %v", raw, err)
		}
		if !reflect.DeepEqual(normalize(t, sb), normalize(t, again)) {
			t.Fatalf("round trip differs: %s", raw)
		}
		var rg RouteGroup
		_, _ = DecodeWire(data, &rg, RouteGroupWireRules)
	})
}

func normalize(t *testing.T, v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

// BenchmarkDecode compares DecodeWire with the strict encoding/json decode it
// replaced, on a go-swagger-shaped sandbox body (run side by side: the ratio
// is the figure, not the times).
func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"endpoints":null,"name":"sb","spec":{"cluster":"c1","defaultRouteGroup":{"endpoints":[{"name":"web","target":"http://frontend.shop.svc:8080"}]},
	 "forks":[{"customizations":{"env":[{"name":"A","value":"1"}],"images":[{"container":"","image":"cart:v2"}]},
	 "forkOf":{"kind":"Deployment","name":"cart","namespace":"shop"}}],"labels":{"team":"cart"},"ttl":{"duration":"2h"}}}`)
	b.Run("strict", func(b *testing.B) {
		for b.Loop() {
			var sb Sandbox
			d := json.NewDecoder(bytes.NewReader(body))
			d.DisallowUnknownFields()
			if err := d.Decode(&sb); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wire", func(b *testing.B) {
		for b.Loop() {
			var sb Sandbox
			if _, err := DecodeWire(body, &sb, SandboxWireRules); err != nil {
				b.Fatal(err)
			}
		}
	})
}
