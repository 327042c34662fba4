package inject

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// NamespaceLabeler returns the labels of a namespace; the handler asks it only for pods that request
// injection, to honour the namespace opt-out label.
type NamespaceLabeler interface {
	NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error)
}

// NamespaceLabelerFunc adapts a function to NamespaceLabeler.
type NamespaceLabelerFunc func(ctx context.Context, namespace string) (map[string]string, error)

// NamespaceLabels calls f.
func (f NamespaceLabelerFunc) NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error) {
	return f(ctx, namespace)
}

// NamespaceLabelsFromReader reads namespace labels with a controller-runtime reader (the manager's
// cached client or its APIReader; a cached client needs RBAC to list and watch namespaces).
func NamespaceLabelsFromReader(r client.Reader) NamespaceLabeler {
	return NamespaceLabelerFunc(func(ctx context.Context, namespace string) (map[string]string, error) {
		ns := &corev1.Namespace{}
		if err := r.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
			return nil, fmt.Errorf("get namespace %s: %w", namespace, err)
		}
		return ns.Labels, nil
	})
}

// Decision is the outcome of Evaluate for one pod.
type Decision struct {
	// Patch is the JSON patch (RFC 6902) to apply to the pod; nil when the pod is left unchanged.
	Patch []byte
	// Injected is true when Patch adds the sidecar.
	Injected bool
	// Skipped is the reason a pod that asked for injection did not get it ("" otherwise); Patch then
	// only records it in AnnotationStatus.
	Skipped string
	// Message says what happened, for the admission response.
	Message string
	// Warnings are returned to the API client.
	Warnings []string
}

// NewHandler validates cfg and returns the admission handler for Pod CREATE requests, to register on
// the controller-runtime webhook server at Path:
//
//	h, err := inject.NewHandler(cfg, inject.NamespaceLabelsFromReader(mgr.GetAPIReader()), log)
//	mgr.GetWebhookServer().Register(inject.Path, &admission.Webhook{Handler: h})
//
// namespaces may be nil (then only the webhook's namespaceSelector enforces the opt-out label). The
// handler never denies a pod: errors admit it unchanged with a warning.
func NewHandler(cfg Config, namespaces NamespaceLabeler, log logr.Logger) (admission.HandlerFunc, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return func(ctx context.Context, req admission.Request) admission.Response {
		if req.Operation != admissionv1.Create || req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
			return admission.Allowed("devmesh: not a pod create")
		}
		pod := &corev1.Pod{}
		if err := json.Unmarshal(req.Object.Raw, pod); err != nil {
			err = fmt.Errorf("decode pod %s/%s: %w", req.Namespace, req.Name, err)
			log.Error(err, "devmesh injection skipped")
			return allowed(Decision{Message: err.Error(), Warnings: []string{"devmesh: sidecar not injected: " + err.Error()}})
		}
		namespace := req.Namespace
		if namespace == "" {
			namespace = pod.Namespace
		}
		var nsLabels map[string]string
		if requested(pod) && namespaces != nil && !alreadyInjected(pod) {
			labels, err := namespaces.NamespaceLabels(ctx, namespace)
			if err != nil {
				err = fmt.Errorf("namespace lookup: %w", err)
				log.Error(err, "devmesh injection skipped", "namespace", namespace, "pod", podName(pod))
				return allowed(skip(pod, err.Error()))
			}
			nsLabels = labels
		}
		d := Evaluate(&cfg, pod, namespace, nsLabels)
		switch {
		case d.Injected:
			log.V(1).Info("devmesh sidecar injected", "namespace", namespace, "pod", podName(pod))
		case d.Skipped != "":
			log.Info("devmesh injection skipped", "namespace", namespace, "pod", podName(pod), "reason", d.Skipped)
		}
		return allowed(d)
	}, nil
}

func allowed(d Decision) admission.Response {
	resp := admission.Allowed(d.Message)
	resp.Warnings = d.Warnings
	if d.Patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = d.Patch, &pt
	}
	return resp
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}

func requested(p *corev1.Pod) bool { return p.Annotations[AnnotationInject] == "true" }

func alreadyInjected(p *corev1.Pod) bool {
	for _, list := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range list {
			if c.Name == SidecarName {
				return true
			}
		}
	}
	return false
}

// Evaluate decides what to do with pod (being created in namespace, whose labels are nsLabels) and
// computes the patch. cfg must have been validated. It is pure: the same input gives the same patch.
func Evaluate(cfg *Config, pod *corev1.Pod, namespace string, nsLabels map[string]string) Decision {
	v, set := pod.Annotations[AnnotationInject]
	switch {
	case !set:
		return Decision{Message: "devmesh: injection not requested"}
	case v != "true":
		return Decision{Message: fmt.Sprintf("devmesh: injection not requested (%s=%q)", AnnotationInject, v)}
	case alreadyInjected(pod):
		return Decision{Message: "devmesh: already injected"}
	case pod.Spec.HostNetwork:
		return skip(pod, "hostNetwork")
	case pod.Spec.OS != nil && pod.Spec.OS.Name == corev1.Windows:
		return skip(pod, "windows pod")
	case nsLabels[cfg.NamespaceOptOutLabel] == NamespaceOptOutValue:
		return skip(pod, fmt.Sprintf("namespace %s opted out (%s=%s)", namespace, cfg.NamespaceOptOutLabel, NamespaceOptOutValue))
	}
	mode := cfg.Mode
	if m, ok := pod.Annotations[AnnotationMode]; ok {
		switch Mode(m) {
		case ModeIPTables, ModeExplicit:
			mode = Mode(m)
		default:
			return skip(pod, fmt.Sprintf("annotation %s=%q: want %s or %s", AnnotationMode, m, ModeIPTables, ModeExplicit))
		}
	}
	wl, err := workloadOf(pod)
	if err != nil {
		return skip(pod, err.Error())
	}
	ports, err := interceptedPorts(cfg, pod, mode)
	if err != nil {
		return skip(pod, err.Error())
	}
	var warnings []string
	for _, c := range pod.Spec.Containers {
		if uid := runAsUser(pod, c); uid != nil && *uid == cfg.ProxyUID && mode == ModeIPTables {
			warnings = append(warnings, fmt.Sprintf("devmesh: container %s runs as the sidecar's UID %d: its connections to its own pod IP bypass the sidecar", c.Name, cfg.ProxyUID))
		}
	}
	sidecar := sidecarContainer(cfg, mode, wl, ports)
	var ops []patchOp
	if !cfg.LegacySidecar {
		sidecar.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
	}
	var inits []corev1.Container
	if mode == ModeIPTables {
		inits = append(inits, initContainer(cfg, ports))
	}
	if !cfg.LegacySidecar {
		inits = append(inits, sidecar)
	}
	ops = append(ops, prependOps("/spec/initContainers", len(pod.Spec.InitContainers), inits)...)
	ops = append(ops, consumerEnvOps(cfg, pod, namespace, wl)...)
	if cfg.LegacySidecar {
		ops = append(ops, patchOp{Op: "add", Path: "/spec/containers/-", Value: sidecar})
	}
	ops = append(ops, annotationOp(pod, AnnotationStatus, StatusInjected))
	msg := fmt.Sprintf("devmesh: sidecar injected (%s mode, workload %s/%s %s, ports %s)", mode, namespace, wl.Name, wl.Kind, portList(ports))
	return Decision{Patch: mustJSON(ops), Injected: true, Message: msg, Warnings: warnings}
}

// skip records reason in the status annotation and the response.
func skip(pod *corev1.Pod, reason string) Decision {
	return Decision{
		Patch:    mustJSON([]patchOp{annotationOp(pod, AnnotationStatus, StatusSkippedPrefix+reason)}),
		Skipped:  reason,
		Message:  "devmesh: sidecar not injected: " + reason,
		Warnings: []string{"devmesh: sidecar not injected: " + reason},
	}
}

func runAsUser(p *corev1.Pod, c corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if p.Spec.SecurityContext != nil {
		return p.Spec.SecurityContext.RunAsUser
	}
	return nil
}

// patchOp is one JSON patch operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

func mustJSON(ops []patchOp) []byte {
	b, err := json.Marshal(ops)
	if err != nil {
		// Only Kubernetes API types and strings are marshalled; they always encode.
		panic(fmt.Sprintf("devmesh inject: marshal patch: %v", err))
	}
	return b
}

// escapePointer escapes a JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func annotationOp(pod *corev1.Pod, key, value string) patchOp {
	if pod.Annotations == nil {
		return patchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{key: value}}
	}
	return patchOp{Op: "add", Path: "/metadata/annotations/" + escapePointer(key), Value: value}
}

// prependOps puts add in front of the list at path (which has n elements).
func prependOps(path string, n int, add []corev1.Container) []patchOp {
	if len(add) == 0 {
		return nil
	}
	if n == 0 {
		return []patchOp{{Op: "add", Path: path, Value: add}}
	}
	ops := make([]patchOp, 0, len(add))
	for i, c := range add {
		ops = append(ops, patchOp{Op: "add", Path: fmt.Sprintf("%s/%d", path, i), Value: c})
	}
	return ops
}

func ptr[T any](v T) *T { return &v }

// consumerEnvOps give every app container (not cfg.ExcludeContainers) the identity of the pod's
// baseline workload, the same one the sidecar routes by, and the routes lookup URL: what queue
// consumers need (docs/routes-api.md). A variable the container already has is left alone.
func consumerEnvOps(cfg *Config, pod *corev1.Pod, namespace string, wl workload) []patchOp {
	want := []corev1.EnvVar{
		{Name: smv1.EnvBaselineKind, Value: wl.Kind},
		{Name: smv1.EnvBaselineNamespace, Value: namespace},
		{Name: smv1.EnvBaselineName, Value: wl.Name},
	}
	if cfg.RoutesURL != "" {
		want = append(want, corev1.EnvVar{Name: smv1.EnvRoutesURL, Value: cfg.RoutesURL})
	}
	var ops []patchOp
	for i, c := range pod.Spec.Containers {
		if slices.Contains(cfg.ExcludeContainers, c.Name) {
			continue
		}
		var add []corev1.EnvVar
		for _, e := range want {
			if !slices.ContainsFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == e.Name }) {
				add = append(add, e)
			}
		}
		switch {
		case len(add) == 0:
		case len(c.Env) == 0:
			ops = append(ops, patchOp{Op: "add", Path: fmt.Sprintf("/spec/containers/%d/env", i), Value: add})
		default:
			for _, e := range add {
				ops = append(ops, patchOp{Op: "add", Path: fmt.Sprintf("/spec/containers/%d/env/-", i), Value: e})
			}
		}
	}
	return ops
}
