package v1alpha1

import "testing"

func TestIsManaged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"current", map[string]string{LabelManagedBy: ManagedBy}, true},
		{"written by older operators on forks", map[string]string{LabelManagedBy: "sandboxmesh-operator"}, true},
		{"another tool", map[string]string{LabelManagedBy: "Helm"}, false},
		{"empty value", map[string]string{LabelManagedBy: ""}, false},
		{"no label", map[string]string{"app": "cart"}, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsManaged(tc.labels); got != tc.want {
				t.Errorf("IsManaged(%v) = %v, want %v", tc.labels, got, tc.want)
			}
		})
	}
}
