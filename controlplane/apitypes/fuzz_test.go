package apitypes

import (
	"encoding/json"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// FuzzValidateSpecs: validating any decodable spec never panics and every
// error carries a field path under spec.
func FuzzValidateSpecs(f *testing.F) {
	for _, s := range []string{
		`{"cluster":"c1","forks":[{"forkOf":{"kind":"Deployment","namespace":"a","name":"b"}}]}`,
		`{"cluster":"c1","local":[{"name":"l","from":{"namespace":"a","name":"b"},"mappings":[{"port":80,"toLocal":"localhost:8080"}]}]}`,
		`{"cluster":"C_1","ttl":{"duration":"x"},"defaultRouteGroup":{"endpoints":[{"name":"w","target":"http://a.b.svc:1"},{"name":"w","target":""}]}}`,
		`{"cluster":"c1","match":{"any":[]},"endpoints":[{"name":"-","target":"tcp://x.y.deploy:99999"}]}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var sb v1alpha1.SandboxSpec
		if json.Unmarshal(data, &sb) == nil {
			for _, e := range ValidateSandboxSpec(&sb) {
				if len(e.Path) < 4 || e.Path[:4] != "spec" || e.Message == "" {
					t.Fatalf("bad field error %+v", e)
				}
			}
		}
		var rg v1alpha1.RouteGroupSpec
		if json.Unmarshal(data, &rg) == nil {
			for _, e := range ValidateRouteGroupSpec(&rg) {
				if len(e.Path) < 4 || e.Path[:4] != "spec" || e.Message == "" {
					t.Fatalf("bad field error %+v", e)
				}
			}
		}
	})
}
