package manager_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

func waitPlugin(t *testing.T, key client.ObjectKey, what string, f func(*smv1.ResourcePlugin) bool) *smv1.ResourcePlugin {
	t.Helper()
	var rp *smv1.ResourcePlugin
	eventually(t, what, func() (bool, string) {
		p, ok := get(t, key, &smv1.ResourcePlugin{})
		if !ok {
			return false, "plugin missing"
		}
		rp = p
		return f(p), strings.TrimSpace(string(mustJSON(p.Status)))
	})
	return rp
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func pluginReady(rp *smv1.ResourcePlugin) *metav1.Condition {
	return meta.FindStatusCondition(rp.Status.Conditions, smv1.ConditionReady)
}

// TestResourcePluginController: a valid plugin is Ready/Valid with a
// finalizer and lists the sandboxes using it; its deletion waits (InUse)
// until they are gone, because their delete steps need it.
func TestResourcePluginController(t *testing.T) {
	ctx := context.Background()
	ns := "rp-ctl"
	world(t, ns, "route")
	resourceWorld(t, c, ns)
	key := client.ObjectKey{Namespace: ns, Name: "pg"}
	rp := waitPlugin(t, key, "Ready/Valid", func(p *smv1.ResourcePlugin) bool {
		r := pluginReady(p)
		return r != nil && r.Status == metav1.ConditionTrue && r.Reason == smv1.ReasonValid
	})
	if !contains(rp.Finalizers, naming.Finalizer) {
		t.Fatalf("finalizers = %v", rp.Finalizers)
	}
	sb := dbSandbox(ns, "rp-user")
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	waitPlugin(t, key, "sandboxes listed", func(p *smv1.ResourcePlugin) bool {
		return len(p.Status.Sandboxes) == 1 && p.Status.Sandboxes[0] == "rp-user"
	})
	finishStep(t, c, waitStepPod(t, c, sb, "provision", 1), 0, smv1.StepTermination{Outputs: map[string]string{"host": "h", "url": secretURL}})
	finishStep(t, c, waitStepPod(t, c, sb, "seed", 1), 0, smv1.StepTermination{})
	waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionResourcesReady, metav1.ConditionTrue, smv1.ReasonCreated)

	if err := c.Delete(ctx, rp); err != nil {
		t.Fatal(err)
	}
	rp = waitPlugin(t, key, "Ready/InUse", func(p *smv1.ResourcePlugin) bool {
		r := pluginReady(p)
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == smv1.ReasonInUse
	})
	if msg := pluginReady(rp).Message; msg != "deletion waits: used by sandboxes rp-user" {
		t.Errorf("InUse message %q", msg)
	}
	// The sandbox's delete step still runs: the plugin is still there.
	if err := c.Delete(ctx, sb); err != nil {
		t.Fatal(err)
	}
	finishStep(t, c, waitStepPod(t, c, sb, "drop", 1), 0, smv1.StepTermination{})
	eventually(t, "plugin gone after its last user", func() (bool, string) {
		err := c.Get(ctx, key, &smv1.ResourcePlugin{})
		return apierrors.IsNotFound(err), ""
	})
}

// TestResourcePluginInvalid: what the CRD cannot check (a link to a missing
// output, an overlay that is not a pod template) makes the plugin
// Ready=False/InvalidSpec with the field path, and a sandbox using it
// CreateFailed.
func TestResourcePluginInvalid(t *testing.T) {
	ctx := context.Background()
	ns := "rp-invalid"
	world(t, ns, "route")
	for _, tc := range []struct{ name, want string }{{"badlink", "spec.create[1].inputs[0].valueFromStep.output: step provision has no output nope"}, {"badoverlay", "spec.runner.podTemplateOverlay: not a pod template"}} {
		rp := pgPlugin(ns, tc.name)
		if tc.name == "badlink" {
			rp.Spec.Create[1].Inputs[0].ValueFromStep.Output = "nope"
		} else {
			rp.Spec.Runner.PodTemplateOverlay = "spec: {containerz: []}"
		}
		if err := c.Create(ctx, rp); err != nil {
			t.Fatal(err)
		}
		got := waitPlugin(t, client.ObjectKeyFromObject(rp), tc.name+" InvalidSpec", func(p *smv1.ResourcePlugin) bool {
			r := pluginReady(p)
			return r != nil && r.Reason == smv1.ReasonInvalidSpec
		})
		if msg := pluginReady(got).Message; !strings.Contains(msg, tc.want) {
			t.Errorf("%s: message %q lacks %q", tc.name, msg, tc.want)
		}
	}
	sb := dbSandbox(ns, "uses-bad")
	sb.Spec.Resources[0].Plugin = "badlink"
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	s := waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonCreateFailed)
	if msg := condition(s, smv1.ConditionDegraded).Message; !strings.Contains(msg, "ResourcePlugin rp-invalid/badlink is invalid: spec.create[1].inputs[0].valueFromStep.output") {
		t.Errorf("message %q", msg)
	}
	_ = c.Delete(ctx, sb)
	eventually(t, "sandbox gone", func() (bool, string) {
		_, ok := get(t, client.ObjectKeyFromObject(sb), &smv1.Sandbox{})
		return !ok, ""
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
