package resourceplugins_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/resourceplugins"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func TestValidateOverlay(t *testing.T) {
	for _, tc := range []struct {
		overlay, in string
	}{
		{"", ""},
		{"spec:\n  serviceAccountName: db\n  containers:\n  - name: main\n    envFrom: [{secretRef: {name: admin}}]\n", ""},
		{"metadata: {labels: {a: b}}", ""},
		{"spec: [", "not a Kubernetes PodTemplateSpec"},
		{"spec:\n  containers: 3\n", "not a Kubernetes PodTemplateSpec"},
		{"spec:\n  serviceAcountName: db\n", "unknown field"},
	} {
		rp := apitypes.ResourcePlugin{Spec: v1alpha1.ResourcePluginSpec{Runner: v1alpha1.PluginRunner{Image: "i", PodTemplateOverlay: tc.overlay}}}
		rp.Default()
		errs := resourceplugins.Validate("pg", &rp)
		if tc.in == "" {
			if len(errs) > 0 {
				t.Errorf("%q: unexpected %v", tc.overlay, errs)
			}
			continue
		}
		if len(errs) != 1 || errs[0].Path != "spec.runner.podTemplateOverlay" || !strings.Contains(errs[0].Message, tc.in) {
			t.Errorf("%q: want spec.runner.podTemplateOverlay: ...%s..., got %v", tc.overlay, tc.in, errs)
		}
	}
}

// FuzzValidate: any body that decodes as a plugin is validated without a
// panic; errors always carry a field path.
func FuzzValidate(f *testing.F) {
	f.Add("pg", `{"spec":{"runner":{"image":"i","podTemplateOverlay":"spec: {serviceAccountName: x}"},"create":[{"name":"a","script":"#!/bin/sh","outputs":[{"name":"o","valueFromPath":"/tmp/o"}]}]}}`)
	f.Add("x", `{"spec":{"runner":{"image":""},"delete":[{"name":"d","script":"#!/bin/sh","inputs":[{"name":"i","valueFromStep":{"name":"a","output":"o"}}]}]}}`)
	f.Add("Bad_Name", `{"name":"y","spec":{"runner":{"image":"i","podTemplateOverlay":"spec: ["}}}`)
	f.Fuzz(func(t *testing.T, name, body string) {
		var rp apitypes.ResourcePlugin
		if _, err := apitypes.DecodeWire([]byte(body), &rp, apitypes.ResourcePluginWireRules); err != nil {
			return
		}
		rp.Default()
		for _, fe := range resourceplugins.Validate(name, &rp) {
			if fe.Path == "" || fe.Message == "" {
				t.Fatalf("field error without path or message: %+v", fe)
			}
		}
		if _, err := json.Marshal(rp); err != nil {
			t.Fatal(err)
		}
	})
}
