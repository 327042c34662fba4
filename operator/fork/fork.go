// Package fork builds fork Deployments and fork Services from a baseline and a
// Sandbox's customizations. It is pure: no API calls, so every customization is
// unit-tested here and the controllers only create or update what it returns.
package fork

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

// Sentinel errors; the returned errors wrap them and name the field.
var (
	// ErrInvalidPatch means the patch could not be parsed or applied.
	ErrInvalidPatch = errors.New("invalid patch")
	// ErrInvalidCustomization means a customization refers to something the baseline lacks.
	ErrInvalidCustomization = errors.New("invalid customization")
)

// Input is what a fork Deployment is built from.
type Input struct {
	// Sandbox owning the fork.
	Sandbox *smv1.Sandbox
	// RoutingKey of the sandbox.
	RoutingKey string
	// Index of the fork in spec.forks (for field paths in errors).
	Index int
	// Fork is the spec.
	Fork smv1.Fork
	// Baseline is the workload being forked, as a Deployment (workload.Baseline).
	Baseline *workload.Baseline
	// ExcludeLabelKeys are label keys used by the selectors of Services that
	// select the baseline; the fork's pods never carry them, so no baseline
	// Service can select a fork.
	ExcludeLabelKeys []string
	// Siblings are the forks of the same sandbox that env valueFrom.fork can
	// refer to, by "<namespace>/<name>" of their baseline (see SiblingKey).
	Siblings map[string]Sibling
	// ResourceSecret is the name of the sandbox's resource outputs Secret
	// (naming.ResourceSecretName) in the fork's namespace, and ResourceKeys
	// its keys ("<resource>.<step>.<output>"): env valueFrom.resource
	// becomes a secretKeyRef to it, so no output value enters the Deployment.
	ResourceSecret string
	ResourceKeys   map[string]bool
	// RoutesURL is the base URL of the operator's routes lookup API, given to
	// every fork container as smv1.EnvRoutesURL ("" leaves it out).
	RoutesURL string
}

// Sibling is another fork of the same sandbox, as env valueFrom.fork
// expressions see it.
type Sibling struct {
	// Service is what {{ .Service.Host }} and {{ .Service.Port }} resolve to.
	Service smv1.ForkService
	// BaselineMissing: the sibling's baseline workload was not found, so its
	// port is unknown (Service.Port is 0).
	BaselineMissing bool
}

// ErrUnsupported means the spec asks for something SandboxMesh does not do.
// Nothing returns it today (sandbox resources, the last user, are supported);
// it stays for callers that test for it.
var ErrUnsupported = errors.New("not supported")

// FirstContainerPort is the first port of the first container that declares
// one (Signadot's {{ .Service.Port }}), or 0.
func FirstContainerPort(d *appsv1.Deployment) int32 {
	for _, c := range d.Spec.Template.Spec.Containers {
		if len(c.Ports) > 0 {
			return c.Ports[0].ContainerPort
		}
	}
	return 0
}

// SiblingKey is the key of Input.Siblings for a fork of w.
func SiblingKey(w smv1.WorkloadRef) string { return w.Namespace + "/" + w.Name }

// Labels returns the labels of a fork's objects.
func Labels(sb *smv1.Sandbox, forkName, baselineName string) map[string]string {
	return map[string]string{
		smv1.LabelManagedBy:          smv1.ManagedBy,
		naming.LabelSandbox:          sb.Name,
		naming.LabelSandboxNamespace: sb.Namespace,
		naming.LabelFork:             forkName,
		naming.LabelBaseline:         truncLabel(baselineName),
	}
}

func truncLabel(v string) string {
	if len(v) > 63 {
		return v[:63]
	}
	return v
}

// Deployment returns the fork Deployment for in. Errors wrap ErrInvalidPatch or
// ErrInvalidCustomization and carry the field path.
func Deployment(in Input) (*appsv1.Deployment, error) {
	base := in.Baseline
	name := naming.ForkName(in.Sandbox.Namespace, in.Sandbox.Name, base.Namespace, base.Name)
	path := field.NewPath("spec", "forks").Index(in.Index).Child("customizations")

	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   base.Namespace,
			Labels:      Labels(in.Sandbox, name, base.Name),
			Annotations: map[string]string{},
		},
		Spec: *base.Spec.DeepCopy(),
	}
	tmpl := &d.Spec.Template
	if c := in.Fork.Customizations; c != nil {
		if err := customize(tmpl, c, path, &in); err != nil {
			return nil, err
		}
		if c.Patch != nil {
			patched, err := applyPatch(d, c.Patch, path.Child("patch"))
			if err != nil {
				return nil, err
			}
			d = patched
			tmpl = &d.Spec.Template
		}
	}
	// Invariants, enforced after the patch: one replica, a rolling update that
	// keeps the old pod serving until the new one is available (requests with
	// the sandbox's key keep reaching the fork while it rolls), our selector
	// and labels, never selectable by a baseline Service, our env vars.
	one := int32(1)
	d.Name, d.Namespace = name, base.Namespace
	d.Labels = Labels(in.Sandbox, name, base.Name)
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Spec.Replicas = &one
	zero, surge := intstr.FromInt32(0), intstr.FromInt32(1)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &surge}}
	d.Spec.Paused = false
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{naming.LabelFork: name}}
	exclude := map[string]bool{}
	for _, k := range in.ExcludeLabelKeys {
		exclude[k] = true
	}
	if base.Spec.Selector != nil {
		for k := range base.Spec.Selector.MatchLabels {
			exclude[k] = true
		}
		for _, e := range base.Spec.Selector.MatchExpressions {
			exclude[e.Key] = true
		}
	}
	labels := map[string]string{}
	for k, v := range tmpl.Labels {
		if !exclude[k] {
			labels[k] = v
		}
	}
	for k, v := range Labels(in.Sandbox, name, base.Name) {
		labels[k] = v
	}
	tmpl.Labels = labels
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	// Forks receive only routed traffic; they need no devmesh sidecar.
	tmpl.Annotations[smv1.AnnotationInject] = "false"
	for i := range tmpl.Spec.Containers {
		c := &tmpl.Spec.Containers[i]
		c.Env = upsertEnv(c.Env, corev1.EnvVar{Name: naming.EnvSandboxName, Value: in.Sandbox.Name})
		c.Env = upsertEnv(c.Env, corev1.EnvVar{Name: naming.EnvRoutingKey, Value: in.RoutingKey})
		// Who the fork stands in for, and where the routes are: what queue
		// consumers need (docs/routes-api.md). A value the user set stays.
		c.Env = addEnvIfAbsent(c.Env, corev1.EnvVar{Name: smv1.EnvBaselineKind, Value: string(workload.Kind(base.Ref()))})
		c.Env = addEnvIfAbsent(c.Env, corev1.EnvVar{Name: smv1.EnvBaselineNamespace, Value: base.Namespace})
		c.Env = addEnvIfAbsent(c.Env, corev1.EnvVar{Name: smv1.EnvBaselineName, Value: base.Name})
		if in.RoutesURL != "" {
			c.Env = addEnvIfAbsent(c.Env, corev1.EnvVar{Name: smv1.EnvRoutesURL, Value: in.RoutesURL})
		}
	}
	d.Annotations[naming.AnnotationBaselineGeneration] = fmt.Sprint(base.Generation)
	if base.Kind != "" && base.Kind != smv1.KindDeployment {
		d.Annotations[naming.AnnotationBaselineKind] = string(base.Kind)
	}
	d.Annotations[naming.AnnotationSpecHash] = SpecHash(&d.Spec)
	return d, nil
}

// SpecHash is a short hash of a Deployment spec, stored on forks to update them only on change.
func SpecHash(spec *appsv1.DeploymentSpec) string {
	b, _ := json.Marshal(spec)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// MainContainer is the container customizations without a container name apply
// to: the kubectl.kubernetes.io/default-container annotation, else the first.
func MainContainer(tmpl *corev1.PodTemplateSpec) int {
	if n := tmpl.Annotations["kubectl.kubernetes.io/default-container"]; n != "" {
		for i, c := range tmpl.Spec.Containers {
			if c.Name == n {
				return i
			}
		}
	}
	return 0
}

func containerIndex(tmpl *corev1.PodTemplateSpec, name string, p *field.Path) (int, error) {
	if len(tmpl.Spec.Containers) == 0 {
		return 0, fmt.Errorf("%w: %s: the baseline has no containers", ErrInvalidCustomization, p)
	}
	if name == "" {
		return MainContainer(tmpl), nil
	}
	for i, c := range tmpl.Spec.Containers {
		if c.Name == name {
			return i, nil
		}
	}
	names := make([]string, 0, len(tmpl.Spec.Containers))
	for _, c := range tmpl.Spec.Containers {
		names = append(names, c.Name)
	}
	return 0, fmt.Errorf("%w: %s: container %q not found (containers: %v)", ErrInvalidCustomization, p, name, names)
}

func customize(tmpl *corev1.PodTemplateSpec, c *smv1.Customizations, path *field.Path, in *Input) error {
	siblings := in.Siblings
	for i, img := range c.Images {
		idx, err := containerIndex(tmpl, img.Container, path.Child("images").Index(i).Child("container"))
		if err != nil {
			return err
		}
		tmpl.Spec.Containers[idx].Image = img.Image
	}
	for i, e := range c.Env {
		p := path.Child("env").Index(i)
		idx, err := containerIndex(tmpl, e.Container, p.Child("container"))
		if err != nil {
			return err
		}
		ctr := &tmpl.Spec.Containers[idx]
		if e.Operation == smv1.EnvDelete {
			ctr.Env = deleteEnv(ctr.Env, e.Name)
			continue
		}
		v := corev1.EnvVar{Name: e.Name}
		switch {
		case e.Value != nil:
			v.Value = *e.Value
		case e.ValueFrom != nil && e.ValueFrom.Fork != nil:
			fp := p.Child("valueFrom", "fork")
			ref := e.ValueFrom.Fork.ForkOf
			sib, ok := siblings[SiblingKey(ref)]
			if !ok {
				return fmt.Errorf("%w: %s: %s/%s is not a fork of this sandbox", ErrInvalidCustomization, fp.Child("forkOf"), ref.Namespace, ref.Name)
			}
			val, err := e.ValueFrom.Fork.Resolve(sib.Service)
			switch {
			case errors.Is(err, smv1.ErrNoPort) && sib.BaselineMissing:
				return fmt.Errorf("%w: %s: {{ .Service.Port }}: the baseline %s %s/%s of that fork was not found", ErrInvalidCustomization, fp.Child("expression"), workload.Kind(ref), ref.Namespace, ref.Name)
			case errors.Is(err, smv1.ErrNoPort):
				return fmt.Errorf("%w: %s: {{ .Service.Port }}: %s %s/%s declares no container port", ErrInvalidCustomization, fp.Child("expression"), workload.Kind(ref), ref.Namespace, ref.Name)
			case err != nil:
				return fmt.Errorf("%w: %s: %w", ErrInvalidCustomization, fp.Child("expression"), err)
			}
			v.Value = val
		case e.ValueFrom != nil && e.ValueFrom.Resource != nil:
			src, err := resourceSource(in, e.ValueFrom.Resource, p.Child("valueFrom", "resource"))
			if err != nil {
				return err
			}
			v.ValueFrom = src
		case e.ValueFrom != nil:
			v.ValueFrom = envSource(e.ValueFrom)
		}
		ctr.Env = upsertEnv(ctr.Env, v)
	}
	if len(c.Command) > 0 || len(c.Args) > 0 {
		idx, err := containerIndex(tmpl, "", path)
		if err != nil {
			return err
		}
		if len(c.Command) > 0 {
			tmpl.Spec.Containers[idx].Command = append([]string(nil), c.Command...)
		}
		if len(c.Args) > 0 {
			tmpl.Spec.Containers[idx].Args = append([]string(nil), c.Args...)
		}
	}
	return nil
}

// resourceSource is the secretKeyRef of env valueFrom.resource r: key
// "<resource>.<outputKey>" of in.ResourceSecret, which must have it.
func resourceSource(in *Input, r *smv1.EnvValueFromResource, p *field.Path) (*corev1.EnvVarSource, error) {
	var names []string
	known := false
	for _, res := range in.Sandbox.Spec.Resources {
		names = append(names, res.Name)
		known = known || res.Name == r.Name
	}
	if !known {
		return nil, fmt.Errorf("%w: %s: the sandbox has no resource %s (spec.resources: %v)", ErrInvalidCustomization, p, r.Name, names)
	}
	key := r.Name + "." + r.OutputKey
	if !in.ResourceKeys[key] || in.ResourceSecret == "" {
		var has []string
		for k := range in.ResourceKeys {
			if out, ok := strings.CutPrefix(k, r.Name+"."); ok {
				has = append(has, out)
			}
		}
		sort.Strings(has)
		return nil, fmt.Errorf("%w: %s: resource %s has no output %s (it has %s)", ErrInvalidCustomization, p, r.Name, r.OutputKey, orNone(has))
	}
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: in.ResourceSecret}, Key: key}}, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func envSource(f *smv1.EnvValueFrom) *corev1.EnvVarSource {
	switch {
	case f.Secret != nil:
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: f.Secret.Name}, Key: f.Secret.Key, Optional: f.Secret.Optional}}
	case f.ConfigMap != nil:
		return &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: f.ConfigMap.Name}, Key: f.ConfigMap.Key, Optional: f.ConfigMap.Optional}}
	case f.FieldRef != nil:
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: f.FieldRef.FieldPath}}
	}
	return nil
}

func upsertEnv(env []corev1.EnvVar, v corev1.EnvVar) []corev1.EnvVar {
	for i := range env {
		if env[i].Name == v.Name {
			env[i] = v
			return env
		}
	}
	return append(env, v)
}

// addEnvIfAbsent appends v unless env already has a variable of that name.
func addEnvIfAbsent(env []corev1.EnvVar, v corev1.EnvVar) []corev1.EnvVar {
	for i := range env {
		if env[i].Name == v.Name {
			return env
		}
	}
	return append(env, v)
}

func deleteEnv(env []corev1.EnvVar, name string) []corev1.EnvVar {
	out := env[:0]
	for _, e := range env {
		if e.Name != name {
			out = append(out, e)
		}
	}
	return out
}

// StrategicMerge applies a strategic merge patch to orig, a JSON object of
// the type of schema (appsv1.Deployment{}, corev1.PodTemplateSpec{}...).
// apimachinery panics on some malformed patches (a merge key whose value is
// a map, found by FuzzPatch); that becomes an error here, so a bad patch is a
// condition on the object, never a crashed reconcile.
func StrategicMerge(orig, patch []byte, schema any) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("malformed strategic merge patch: %v", r)
		}
	}()
	return strategicpatch.StrategicMergePatch(orig, patch, schema)
}

func applyPatch(d *appsv1.Deployment, p *smv1.Patch, path *field.Path) (*appsv1.Deployment, error) {
	orig, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	patchJSON, err := yaml.YAMLToJSON([]byte(p.Value))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not YAML or JSON: %v", ErrInvalidPatch, path.Child("value"), err)
	}
	var out []byte
	switch p.Type {
	case smv1.PatchStrategic, "":
		out, err = StrategicMerge(orig, patchJSON, appsv1.Deployment{})
	case smv1.PatchMerge:
		out, err = jsonpatch.MergePatch(orig, patchJSON)
	case smv1.PatchJSON:
		var jp jsonpatch.Patch
		jp, err = jsonpatch.DecodePatch(patchJSON)
		if err == nil {
			out, err = jp.Apply(orig)
		}
	default:
		return nil, fmt.Errorf("%w: %s: unsupported type %q", ErrInvalidPatch, path.Child("type"), p.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidPatch, path.Child("value"), err)
	}
	patched := &appsv1.Deployment{}
	if err := json.Unmarshal(out, patched); err != nil {
		return nil, fmt.Errorf("%w: %s: result is not a Deployment: %v", ErrInvalidPatch, path.Child("value"), err)
	}
	if len(patched.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("%w: %s: the patch removes every container", ErrInvalidPatch, path.Child("value"))
	}
	return patched, nil
}

// Service returns the fork Service: the union of the ports of the baseline's
// Services (first one wins on a port number), selecting the fork's pods.
func Service(sb *smv1.Sandbox, forkName, baselineName, namespace string, baselineServices []corev1.Service) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      forkName,
			Namespace: namespace,
			Labels:    Labels(sb, forkName, baselineName),
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: map[string]string{naming.LabelFork: forkName},
		},
	}
	seen := map[int32]bool{}
	names := map[string]bool{}
	sorted := append([]corev1.Service(nil), baselineServices...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, bs := range sorted {
		for _, p := range bs.Spec.Ports {
			if seen[p.Port] {
				continue
			}
			seen[p.Port] = true
			np := corev1.ServicePort{Name: p.Name, Protocol: p.Protocol, AppProtocol: p.AppProtocol, Port: p.Port, TargetPort: p.TargetPort}
			if np.Name == "" || names[np.Name] {
				np.Name = fmt.Sprintf("port-%d", p.Port)
			}
			names[np.Name] = true
			svc.Spec.Ports = append(svc.Spec.Ports, np)
		}
	}
	return svc
}

// Routable reports whether the fork can take requests: at least one of its
// pods is available. A fork that rolls out a new spec stays routable on its
// old pod (the rolling update keeps it until the new one is available), so
// routes are not withdrawn and requests with the sandbox's key never fall
// back to the baseline during an update.
func Routable(d *appsv1.Deployment) bool {
	return d.DeletionTimestamp == nil && d.Status.AvailableReplicas > 0
}

// Ready reports whether a fork Deployment runs its current spec and is
// available, and if not, what it waits for.
func Ready(d *appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch {
	case d.Status.ObservedGeneration < d.Generation:
		return false, "waiting for the Deployment controller to observe the new spec"
	case d.Status.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d pods updated", d.Status.UpdatedReplicas, want)
	case d.Status.AvailableReplicas < want:
		return false, fmt.Sprintf("%d of %d pods available", d.Status.AvailableReplicas, want)
	}
	return true, ""
}
