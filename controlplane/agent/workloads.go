package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

// systemNamespaces never hold forkable workloads.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// CollectWorkloads lists the cluster's workloads a sandbox can fork —
// Deployments, and Argo Rollouts when the cluster serves them (discovery:
// without the rollouts.argoproj.io CRD they are skipped silently) — in every
// namespace except the system ones and the agent's own, without the forks
// SandboxMesh created; sorted by namespace, name and kind, at most
// apitypes.MaxWorkloads (then Truncated).
func (a *Agent) CollectWorkloads(ctx context.Context) (apitypes.WorkloadReport, error) {
	var deps appsv1.DeploymentList
	if err := a.cfg.Client.List(ctx, &deps); err != nil {
		return apitypes.WorkloadReport{}, fmt.Errorf("list Deployments: %w", err)
	}
	baselines := make([]*workload.Baseline, 0, len(deps.Items))
	for i := range deps.Items {
		baselines = append(baselines, workload.FromDeployment(&deps.Items[i]))
	}
	rollouts, err := workload.ListRolloutsUnstructured(ctx, a.cfg.Client)
	if err != nil && !meta.IsNoMatchError(err) {
		return apitypes.WorkloadReport{}, err
	}
	baselines = append(baselines, rollouts...)
	var svcs corev1.ServiceList
	if err := a.cfg.Client.List(ctx, &svcs); err != nil {
		return apitypes.WorkloadReport{}, fmt.Errorf("list Services: %w", err)
	}
	byNS := map[string][]corev1.Service{}
	for _, s := range svcs.Items {
		if len(s.Spec.Selector) > 0 && !v1alpha1.IsManaged(s.Labels) {
			byNS[s.Namespace] = append(byNS[s.Namespace], s)
		}
	}
	rep := apitypes.WorkloadReport{Workloads: []apitypes.Workload{}}
	for _, d := range baselines {
		if slices.Contains(systemNamespaces, d.Namespace) || d.Namespace == a.cfg.Namespace || v1alpha1.IsManaged(d.Labels) {
			continue
		}
		w := apitypes.Workload{Kind: string(d.Kind), Namespace: d.Namespace, Name: d.Name, Replicas: 1, ReadyReplicas: d.Status.ReadyReplicas,
			DevmeshInjected: d.Spec.Template.Annotations[v1alpha1.AnnotationInject] == "true"}
		if d.Spec.Replicas != nil {
			w.Replicas = *d.Spec.Replicas
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			w.Containers = append(w.Containers, apitypes.WorkloadContainer{Name: c.Name, Image: c.Image})
		}
		podLabels := labels.Set(d.Spec.Template.Labels)
		for _, s := range byNS[d.Namespace] {
			if !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
				continue
			}
			ws := apitypes.WorkloadService{Name: s.Name}
			for _, p := range s.Spec.Ports {
				ws.Ports = append(ws.Ports, p.Port)
			}
			w.Services = append(w.Services, ws)
		}
		rep.Workloads = append(rep.Workloads, w)
	}
	slices.SortFunc(rep.Workloads, func(x, y apitypes.Workload) int {
		return strings.Compare(x.Namespace+"/"+x.Name+"/"+x.Kind, y.Namespace+"/"+y.Name+"/"+y.Kind)
	})
	if len(rep.Workloads) > apitypes.MaxWorkloads {
		rep.Workloads, rep.Truncated = rep.Workloads[:apitypes.MaxWorkloads], true
	}
	return rep, nil
}

// workloadsLoop reports the workloads at start and whenever they change
// (compared every WorkloadsInterval), retrying failed reports at the next tick.
func (a *Agent) workloadsLoop(ctx context.Context) {
	var sent string
	t := time.NewTicker(a.cfg.WorkloadsInterval)
	defer t.Stop()
	for {
		rep, err := a.CollectWorkloads(ctx)
		if err != nil {
			if ctx.Err() == nil {
				a.log.WarnContext(ctx, "listing workloads failed (RBAC: the agent needs list on deployments, services and, with Argo Rollouts, rollouts.argoproj.io)", "err", err)
			}
		} else {
			b, _ := json.Marshal(rep)
			sum := sha256.Sum256(b)
			if h := hex.EncodeToString(sum[:]); h != sent {
				if err := a.request(ctx, http.MethodPut, "/api/v2/agent/workloads", rep, nil); err != nil {
					if ctx.Err() == nil {
						a.log.WarnContext(ctx, "workload report failed", "err", err)
					}
				} else {
					sent = h
					a.log.DebugContext(ctx, "workloads reported", "count", len(rep.Workloads))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
