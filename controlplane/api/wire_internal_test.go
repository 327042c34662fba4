package api

import (
	"reflect"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// TestSandboxWireMatchesAPIType: sandboxWire has the fields of
// apitypes.Sandbox, in the same order with the same JSON tags (Defaults,
// accepted on input only, aside).
func TestSandboxWireMatchesAPIType(t *testing.T) {
	tags := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Name != "Defaults" {
				out = append(out, f.Name+" "+f.Tag.Get("json"))
			}
		}
		return out
	}
	if got, want := tags(sandboxWire{}), tags(apitypes.Sandbox{}); !reflect.DeepEqual(got, want) {
		t.Fatalf("sandboxWire fields %v, apitypes.Sandbox %v", got, want)
	}
}
