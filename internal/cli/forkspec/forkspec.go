// Package forkspec edits a sandbox spec for the common case "fork workload X
// with image Y": it adds or updates the fork of one workload (image, env) and
// adds endpoints, keeping the rest of the spec. The CLI's `sandbox fork` and the
// MCP server's sandbox_fork tool use it.
package forkspec

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// Request says what to change.
type Request struct {
	// Workload is namespace/name of a Deployment, or Kind/namespace/name.
	Workload string
	// Image replaces the image of Container ("" = the main container).
	Image     string
	Container string
	// Env sets variables in Container.
	Env map[string]string
	// EndpointTarget adds an endpoint for an in-cluster target, e.g. http://frontend.shop.svc:8080.
	EndpointTarget string
	// EndpointPort adds an endpoint that targets the fork itself: http://<name>.<namespace>.deploy:<port>.
	EndpointPort int
	// EndpointName names the endpoint (default: derived from the target or workload).
	EndpointName string
}

// ParseWorkload parses namespace/name or Kind/namespace/name.
func ParseWorkload(w string) (v1alpha1.WorkloadRef, error) {
	parts := strings.Split(w, "/")
	switch len(parts) {
	case 2:
		return v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: parts[0], Name: parts[1]}, nil
	case 3:
		k := v1alpha1.WorkloadKind(parts[0])
		if k != v1alpha1.KindDeployment && k != v1alpha1.KindRollout {
			return v1alpha1.WorkloadRef{}, fmt.Errorf("workload %q: kind %q: want %s or %s (an Argo Rollout)", w, parts[0], v1alpha1.KindDeployment, v1alpha1.KindRollout)
		}
		return v1alpha1.WorkloadRef{Kind: k, Namespace: parts[1], Name: parts[2]}, nil
	}
	return v1alpha1.WorkloadRef{}, fmt.Errorf("workload %q: want namespace/name of a Deployment (e.g. shop/cart), or Kind/namespace/name with Kind Deployment or Rollout", w)
}

var reNotLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// EndpointName derives a valid endpoint name (a DNS label starting with a letter, at most 30 characters).
func EndpointName(s string) string {
	n := reNotLabel.ReplaceAllString(strings.ToLower(s), "-")
	if n == "" || n[0] < 'a' || n[0] > 'z' {
		n = "ep-" + n
	}
	if len(n) > 30 {
		n = n[:30]
	}
	return strings.Trim(n, "-")
}

// Apply changes spec as r says.
func Apply(spec *v1alpha1.SandboxSpec, r Request) error {
	wl, err := ParseWorkload(r.Workload)
	if err != nil {
		return err
	}
	if r.Image == "" && len(r.Env) == 0 {
		return errors.New("give an image (and/or env): what should the fork run differently from the baseline?")
	}
	idx := -1
	for i, f := range spec.Forks {
		k := f.ForkOf.Kind
		if k == "" {
			k = v1alpha1.KindDeployment
		}
		if k == wl.Kind && f.ForkOf.Namespace == wl.Namespace && f.ForkOf.Name == wl.Name {
			idx = i
		}
	}
	if idx < 0 {
		spec.Forks = append(spec.Forks, v1alpha1.Fork{ForkOf: wl})
		idx = len(spec.Forks) - 1
	}
	fork := &spec.Forks[idx]
	if fork.Customizations == nil {
		fork.Customizations = &v1alpha1.Customizations{}
	}
	cu := fork.Customizations
	if r.Image != "" {
		replaced := false
		for i := range cu.Images {
			if cu.Images[i].Container == r.Container {
				cu.Images[i].Image, replaced = r.Image, true
			}
		}
		if !replaced {
			cu.Images = append(cu.Images, v1alpha1.ImageCustomization{Image: r.Image, Container: r.Container})
		}
	}
	keys := make([]string, 0, len(r.Env))
	for k := range r.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := r.Env[k]
		found := false
		for i := range cu.Env {
			if cu.Env[i].Name == k && cu.Env[i].Container == r.Container {
				cu.Env[i].Value, cu.Env[i].ValueFrom, cu.Env[i].Operation, found = &v, nil, "", true
			}
		}
		if !found {
			cu.Env = append(cu.Env, v1alpha1.EnvCustomization{Name: k, Value: &v, Container: r.Container})
		}
	}
	if r.EndpointTarget != "" {
		name := r.EndpointName
		if name == "" {
			host := r.EndpointTarget
			if _, rest, ok := strings.Cut(host, "://"); ok {
				host = rest
			}
			name = EndpointName(strings.Split(host, ".")[0])
		}
		addEndpoint(spec, name, r.EndpointTarget)
	}
	if r.EndpointPort > 0 {
		name := r.EndpointName
		if name == "" || r.EndpointTarget != "" {
			name = EndpointName(wl.Name)
		}
		addEndpoint(spec, name, fmt.Sprintf("http://%s.%s.deploy:%d", wl.Name, wl.Namespace, r.EndpointPort))
	}
	return nil
}

func addEndpoint(spec *v1alpha1.SandboxSpec, name, target string) {
	if spec.DefaultRouteGroup == nil {
		spec.DefaultRouteGroup = &v1alpha1.DefaultRouteGroup{}
	}
	eps := spec.DefaultRouteGroup.Endpoints
	for i := range eps {
		if eps[i].Name == name || eps[i].Target == target {
			eps[i] = v1alpha1.Endpoint{Name: name, Target: target}
			return
		}
	}
	spec.DefaultRouteGroup.Endpoints = append(eps, v1alpha1.Endpoint{Name: name, Target: target})
}

// ErrNoCluster means the org has no registered cluster.
var ErrNoCluster = errors.New("the org has no registered cluster")

// ErrAmbiguousCluster means the org has several clusters and none was chosen.
var ErrAmbiguousCluster = errors.New("the org has several clusters")

// Base returns the existing sandbox's spec, or a new spec when it does not
// exist, with spec.cluster set: cluster if not empty, else the existing one,
// else the org's only registered cluster.
func Base(ctx context.Context, c *client.Client, org, name, cluster string) (v1alpha1.SandboxSpec, bool, error) {
	var spec v1alpha1.SandboxSpec
	existing, err := c.GetSandbox(ctx, org, name)
	exists := err == nil
	switch {
	case exists:
		spec = existing.Spec
	case errors.Is(err, client.ErrNotFound):
	default:
		return spec, false, fmt.Errorf("get sandbox %s: %w", name, err)
	}
	if cluster != "" {
		spec.Cluster = cluster
	}
	if spec.Cluster != "" {
		return spec, exists, nil
	}
	cls, err := c.ListClusters(ctx, org)
	if err != nil {
		return spec, exists, fmt.Errorf("list clusters: %w", err)
	}
	switch len(cls) {
	case 0:
		return spec, exists, ErrNoCluster
	case 1:
		spec.Cluster = cls[0].Name
		return spec, exists, nil
	}
	names := make([]string, len(cls))
	for i, cl := range cls {
		names[i] = cl.Name
	}
	return spec, exists, fmt.Errorf("%w (%s): choose one", ErrAmbiguousCluster, strings.Join(names, ", "))
}
