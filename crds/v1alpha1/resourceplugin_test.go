package v1alpha1_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestResourcePluginCRDBadSpecs: the API server refuses the bad specs of
// testdata/resourceplugin-bad at the field path the file names (the same
// path ValidateResourcePlugin reports: TestValidateResourcePluginBadSpecs),
// and accepts those only ValidateResourcePlugin refuses (crd: no).
func TestResourcePluginCRDBadSpecs(t *testing.T) {
	ctx := context.Background()
	for _, b := range badPlugins(t) {
		t.Run(b.file, func(t *testing.T) {
			var u unstructured.Unstructured
			if err := yaml.Unmarshal(b.raw, &u.Object); err != nil {
				t.Fatal(err)
			}
			u.SetNamespace(ns)
			err := env.Client.Create(ctx, &u)
			if !b.crd {
				if err != nil {
					t.Fatalf("the CRD refuses what only ValidateResourcePlugin should: %v", err)
				}
				_ = env.Client.Delete(ctx, &u)
				return
			}
			if err == nil {
				_ = env.Client.Delete(ctx, &u)
				t.Fatalf("accepted; want an error at %s", b.path)
			}
			if !strings.Contains(err.Error(), b.path+":") {
				t.Fatalf("error %q does not name %s", err, b.path)
			}
		})
	}
}

func TestResourcePluginCRD(t *testing.T) {
	ctx := context.Background()
	rp := validPlugin("postgres-schema")
	if err := env.Client.Create(ctx, rp); err != nil {
		t.Fatalf("valid plugin refused: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, rp) })
	if rp.Spec.Runner.Namespace != smv1.DefaultPluginNamespace {
		t.Errorf("runner.namespace defaulted to %q, want %q", rp.Spec.Runner.Namespace, smv1.DefaultPluginNamespace)
	}

	t.Run("immutable", func(t *testing.T) {
		changed := rp.DeepCopy()
		changed.Spec.Description = "other"
		err := env.Client.Update(ctx, changed)
		if err == nil || !strings.Contains(err.Error(), "a ResourcePlugin cannot be changed: apply it under a new name") || !strings.Contains(err.Error(), "spec:") {
			t.Fatalf("update = %v, want the immutability error at spec", err)
		}
		labelled := rp.DeepCopy()
		labelled.Labels = map[string]string{"team": "db"}
		if err := env.Client.Update(ctx, labelled); err != nil {
			t.Fatalf("labels cannot change: %v", err)
		}
	})

	t.Run("name", func(t *testing.T) {
		bad := validPlugin("Postgres")
		err := env.Client.Create(ctx, bad)
		if err == nil {
			_ = env.Client.Delete(ctx, bad)
			t.Fatal("bad name accepted")
		}
	})

	t.Run("printcolumns", func(t *testing.T) {
		cs, err := kubernetes.NewForConfig(env.Config)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis/sandboxmesh.dev/v1alpha1/namespaces/default/resourceplugins").
			SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var table struct {
			ColumnDefinitions []struct {
				Name     string
				Priority int
			}
			Rows []struct{ Cells []any }
		}
		if err := json.Unmarshal(raw, &table); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range table.ColumnDefinitions {
			if c.Priority == 0 {
				names = append(names, c.Name)
			}
		}
		if got, want := strings.Join(names, ","), "Name,Ready,Image,Runner Namespace,Age"; got != want {
			t.Fatalf("columns = %s, want %s", got, want)
		}
		for _, row := range table.Rows {
			if row.Cells[0] == "postgres-schema" {
				if row.Cells[2] != "example.com/runner:db" || row.Cells[3] != smv1.DefaultPluginNamespace {
					t.Fatalf("row = %v", row.Cells)
				}
				return
			}
		}
		t.Fatalf("plugin not in table: %s", raw)
	})
}
