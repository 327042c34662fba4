//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// phaseClock notes when watches on the pods and Deployments of one sandbox
// (label sandboxmesh.dev/sandbox) first see each milestone of its apply:
// step pod created, scheduled, each container running and terminated, the
// pod succeeded and deleted (the operator saw it end), the fork Deployment
// created, the fork pod ready. Times are from the start (the PUT), as the
// watch events arrive (ms), so they include the watch's own delay.
type phaseClock struct {
	start  time.Time
	cancel context.CancelFunc
	done   sync.WaitGroup
	mu     sync.Mutex
	seen   map[string]time.Duration
	order  []string
}

// watchPhases starts a phaseClock for the sandbox named name; call it just
// before the PUT, call begin at the PUT and stop after Ready.
func watchPhases(ctx context.Context, t *testing.T, e *demo.Env, name string) *phaseClock {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	c := &phaseClock{start: time.Now(), cancel: cancel, seen: map[string]time.Duration{}}
	// ResourceVersion "0": served from the watch cache at once (without it
	// the API server first waits for a consistent read, seconds here).
	sel := metav1.ListOptions{LabelSelector: naming.LabelSandbox + "=" + name, ResourceVersion: "0"}
	pw, err := e.Kube.CoreV1().Pods("").Watch(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	dw, err := e.Kube.AppsV1().Deployments("").Watch(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	sbw, err := dyn.Resource(v1alpha1.GroupVersion.WithResource("sandboxes")).Namespace("").Watch(ctx,
		metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	c.done.Add(3)
	go func() {
		defer c.done.Done()
		for ev := range sbw.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cd := range conds {
				m, _ := cd.(map[string]any)
				if m["status"] == "True" && (m["type"] == v1alpha1.ConditionReady || m["type"] == v1alpha1.ConditionResourcesReady) {
					c.mark(fmt.Sprintf("Sandbox CR %s", m["type"]))
				}
			}
		}
	}()
	go func() {
		defer c.done.Done()
		for ev := range pw.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				c.pod(ev.Type, p)
			}
		}
	}()
	go func() {
		defer c.done.Done()
		for ev := range dw.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok && ev.Type == watch.Added {
				c.mark("fork Deployment " + d.Name + " created")
			}
		}
	}()
	go func() { <-ctx.Done(); pw.Stop(); dw.Stop(); sbw.Stop() }()
	return c
}

// begin sets the start to now (the PUT).
func (c *phaseClock) begin() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start = time.Now()
	return c.start
}

func (c *phaseClock) mark(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[what]; !ok {
		c.seen[what] = time.Since(c.start)
		c.order = append(c.order, what)
	}
}

func (c *phaseClock) pod(typ watch.EventType, p *corev1.Pod) {
	who := "fork pod"
	if s := p.Labels[v1alpha1.LabelStep]; s != "" {
		who = "step pod " + s
	}
	c.mark(who + " created")
	for _, cd := range p.Status.Conditions {
		if cd.Status == corev1.ConditionTrue && (cd.Type == corev1.PodScheduled || cd.Type == corev1.PodInitialized || cd.Type == corev1.PodReady) {
			c.mark(fmt.Sprintf("%s %s", who, cd.Type))
		}
	}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		switch {
		case cs.State.Running != nil:
			c.mark(who + " " + cs.Name + " running")
		case cs.State.Terminated != nil:
			c.mark(who + " " + cs.Name + " running") // a short container may never be seen running
			c.mark(who + " " + cs.Name + " terminated")
		}
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		c.mark(who + " " + string(p.Status.Phase))
	}
	if p.DeletionTimestamp != nil {
		c.mark(who + " deleting (the operator saw it end)")
	}
	if typ == watch.Deleted && who != "fork pod" {
		c.mark(who + " gone")
		// The kubelet's own clock (whole seconds) for the step's containers.
		var b strings.Builder
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if tm := cs.State.Terminated; tm != nil {
				fmt.Fprintf(&b, " %s %s..%s", cs.Name, tm.StartedAt.Sub(p.CreationTimestamp.Time), tm.FinishedAt.Sub(p.CreationTimestamp.Time))
			}
		}
		c.mark(who + " kubelet (from creation):" + b.String())
	}
}

// crReady is when the Sandbox CR's Ready condition was first seen True
// (0: not seen): the operator's figure, without the agent's status
// interval that the API's Ready adds.
func (c *phaseClock) crReady() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen["Sandbox CR "+v1alpha1.ConditionReady]
}

// forkCreated is when the first fork Deployment was seen (0: not seen):
// the end of the resources phase, before the fork's own start (image,
// probes) that both sides of the figure share.
func (c *phaseClock) forkCreated() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, what := range c.order {
		if strings.HasPrefix(what, "fork Deployment ") {
			return c.seen[what]
		}
	}
	return 0
}

// stop ends the watches and logs the milestones (tag names the run).
func (c *phaseClock) stop(t *testing.T, tag string) {
	t.Helper()
	c.mark("Ready (the API)")
	c.cancel()
	c.done.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	prev := time.Duration(0)
	for _, what := range c.order {
		d := c.seen[what]
		fmt.Fprintf(&b, "\n  %7.3fs (+%5.3fs) %s", d.Seconds(), (d - prev).Seconds(), what)
		prev = d
	}
	t.Logf("PHASES %s:%s", tag, b.String())
}
