package forkspec

import (
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func TestParseWorkload(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    v1alpha1.WorkloadRef
		wantErr string
	}{
		{in: "shop/cart", want: v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: "shop", Name: "cart"}},
		{in: "Deployment/shop/cart", want: v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: "shop", Name: "cart"}},
		{in: "Rollout/shop/cart", want: v1alpha1.WorkloadRef{Kind: v1alpha1.KindRollout, Namespace: "shop", Name: "cart"}},
		{in: "StatefulSet/shop/db", wantErr: `kind "StatefulSet": want Deployment or Rollout`},
		{in: "cart", wantErr: "Kind Deployment or Rollout"},
		{in: "a/b/c/d", wantErr: "want namespace/name"},
	} {
		got, err := ParseWorkload(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: %+v, %v; want error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseWorkload: no panic; an accepted workload has a known kind and
// round-trips through Kind/namespace/name.
func FuzzParseWorkload(f *testing.F) {
	for _, s := range []string{"shop/cart", "Rollout/a/b", "", "/", "//", "x/y/z/w", "Deployment//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWorkload(s)
		if err != nil {
			return
		}
		if w.Kind != v1alpha1.KindDeployment && w.Kind != v1alpha1.KindRollout {
			t.Fatalf("%q: kind %q accepted", s, w.Kind)
		}
		back, err := ParseWorkload(string(w.Kind) + "/" + w.Namespace + "/" + w.Name)
		if err != nil || back != w {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", s, w, back, err)
		}
	})
}
