package controllers

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/operator/status"
)

// Sandbox resources (docs/design/resource-plugins.md §4): each resource of
// spec.resources is created before any fork, one step pod at a time, its
// progress kept in a state Secret in the plugin's runner namespace, so any
// reconcile (of this operator or of a restarted one) resumes it. Step pods
// have deterministic names: a step runs at least once and never twice at
// the same time.

// +kubebuilder:rbac:groups="",resources=pods,verbs=create;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;create;update;patch;delete
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=resourceplugins,verbs=get;list;watch

// IndexResourcePlugin indexes Sandboxes by "<namespace>/<plugin>" of each resource.
const IndexResourcePlugin = "sandboxmesh.dev/resource-plugin"

// ResourcePluginIndex is the IndexResourcePlugin function.
func ResourcePluginIndex(o client.Object) []string {
	sb, ok := o.(*smv1.Sandbox)
	if !ok {
		return nil
	}
	var out []string
	for _, r := range sb.Spec.Resources {
		k := sb.Namespace + "/" + r.Plugin
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// State Secret keys and annotation.
const (
	keyParam          = "param."
	keyOut            = "out."
	keyDone           = "done."
	keyAttempt        = "attempt."
	annotationPhase   = "sandboxmesh.dev/resource-phase"
	phaseCreate       = "create"
	phaseDelete       = "delete"
	maxResourceMsg    = 2048
	stepRetryMax      = 5 * time.Minute
	stepRetryBase     = 5 * time.Second
	stepTimeoutReason = "DeadlineExceeded"
)

// stepBackoff is how long after its n-th failed attempt a step runs again.
func stepBackoff(n int) time.Duration {
	d := stepRetryBase
	for i := 1; i < n && d < stepRetryMax; i++ {
		d *= 2
	}
	return min(d, stepRetryMax)
}

// resourcesResult is what reconcileResources saw.
type resourcesResult struct {
	// Ready: every resource is created and the outputs Secrets are in place.
	Ready bool
	// Requeue: reconcile again after this long (a retry's backoff).
	Requeue time.Duration
	// Statuses of the resources, in spec order.
	Statuses []smv1.ResourceStatus
	// Secret is the outputs Secret's name; Keys its keys.
	Secret string
	Keys   map[string]bool
}

func (r *SandboxReconciler) watchesNamespace(ns string) bool {
	return len(r.Namespaces) == 0 || slices.Contains(r.Namespaces, ns)
}

// reconcileResources creates the resources of sb in spec order and, once
// all are created, writes their outputs into the outputs Secret of sb's
// namespace and of every fork namespace.
func (r *SandboxReconciler) reconcileResources(ctx context.Context, sb *smv1.Sandbox, key string, obs *observed) (resourcesResult, error) {
	res := resourcesResult{Ready: true, Secret: naming.ResourceSecretName(sb.Namespace, sb.Name), Keys: map[string]bool{}}
	if len(sb.Spec.Resources) == 0 {
		return res, nil
	}
	outputs := map[string][]byte{}
	blocked := ""
	for _, rsrc := range sb.Spec.Resources {
		if blocked != "" {
			res.Statuses = append(res.Statuses, smv1.ResourceStatus{Name: rsrc.Name, Plugin: rsrc.Plugin, Phase: smv1.ResourcePending,
				Message: "waits for resource " + blocked})
			continue
		}
		m := &stepMachine{r: r, sb: sb, key: key, resource: rsrc.Name, plugin: rsrc.Plugin}
		st, outs, err := m.create(ctx, &rsrc)
		if err != nil {
			return res, err
		}
		st.SecretName = res.Secret
		res.Statuses = append(res.Statuses, st)
		res.Requeue = minRequeue(res.Requeue, m.requeue)
		switch st.Phase {
		case smv1.ResourceReady:
			if !slices.ContainsFunc(sb.Status.Resources, func(p smv1.ResourceStatus) bool { return p.Name == rsrc.Name && p.Phase == smv1.ResourceReady }) {
				event(r.Recorder, sb, corev1.EventTypeNormal, "ResourceCreated", "Create", "resource %s created by ResourcePlugin %s (outputs %s)", rsrc.Name, rsrc.Plugin, strings.Join(st.OutputKeys, ", "))
			}
			for k, v := range outs {
				outputs[rsrc.Name+"."+k] = v
			}
			continue
		case smv1.ResourcePending:
			obs.problem(status.PluginNotFound, "resource %s: %s", rsrc.Name, st.Message)
		case smv1.ResourceCreateFailed:
			obs.problem(status.ResourceCreateFailed, "resource %s: %s", rsrc.Name, st.Message)
		default:
			obs.problem(status.ResourcesNotReady, "resource %s: %s", rsrc.Name, st.Message)
		}
		res.Ready = false
		blocked = rsrc.Name
	}
	if !res.Ready {
		return res, nil
	}
	for k := range outputs {
		res.Keys[k] = true
	}
	namespaces := []string{sb.Namespace}
	for _, f := range sb.Spec.Forks {
		if !slices.Contains(namespaces, f.ForkOf.Namespace) {
			namespaces = append(namespaces, f.ForkOf.Namespace)
		}
	}
	for _, ns := range namespaces {
		if err := r.upsertOutputs(ctx, sb, ns, res.Secret, outputs); err != nil {
			return res, err
		}
	}
	// A namespace no fork needs any more (the forks changed) loses its copy.
	return res, r.deleteOutputs(ctx, sb, namespaces...)
}

func minRequeue(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// resourceLabels mark the Secrets and pods of sb's resources.
func resourceLabels(sb *smv1.Sandbox) map[string]string {
	return map[string]string{
		smv1.LabelManagedBy:          smv1.ManagedBy,
		naming.LabelSandbox:          sb.Name,
		naming.LabelSandboxNamespace: sb.Namespace,
		smv1.LabelSandboxUID:         string(sb.UID),
	}
}

// upsertOutputs writes the outputs Secret of sb into ns.
func (r *SandboxReconciler) upsertOutputs(ctx context.Context, sb *smv1.Sandbox, ns, name string, data map[string][]byte) error {
	desired := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: resourceLabels(sb)}, Data: data}
	if ns == sb.Namespace {
		if err := controllerutil.SetControllerReference(sb, desired, r.Client.Scheme()); err != nil {
			return err
		}
	}
	var cur corev1.Secret
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), &cur)
	if apierrors.IsNotFound(err) {
		if err := r.Client.Create(ctx, desired); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create resource outputs Secret %s/%s of Sandbox %s/%s: %w", ns, name, sb.Namespace, sb.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get resource outputs Secret %s/%s: %w", ns, name, err)
	}
	if cur.Labels[smv1.LabelSandboxUID] != string(sb.UID) || !smv1.IsManaged(cur.Labels) {
		return fmt.Errorf("Secret %s/%s exists and is not the resource outputs of Sandbox %s/%s", ns, name, sb.Namespace, sb.Name)
	}
	if maps.EqualFunc(cur.Data, data, func(a, b []byte) bool { return string(a) == string(b) }) {
		return nil
	}
	cur.Data = data
	if err := r.Client.Update(ctx, &cur); err != nil {
		return fmt.Errorf("update resource outputs Secret %s/%s: %w", ns, name, err)
	}
	return nil
}

// deleteOutputs deletes the outputs Secrets of sb in every namespace but keep.
func (r *SandboxReconciler) deleteOutputs(ctx context.Context, sb *smv1.Sandbox, keep ...string) error {
	var list corev1.SecretList
	if err := r.Client.List(ctx, &list, client.MatchingLabels(resourceLabels(sb))); err != nil {
		return fmt.Errorf("list resource Secrets of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	name := naming.ResourceSecretName(sb.Namespace, sb.Name)
	for i := range list.Items {
		s := &list.Items[i]
		if s.Name != name || slices.Contains(keep, s.Namespace) {
			continue
		}
		if err := r.Client.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete resource outputs Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

// stepMachine runs the steps of one resource of a sandbox.
type stepMachine struct {
	r        *SandboxReconciler
	sb       *smv1.Sandbox
	key      string
	resource string
	plugin   string
	// requeue: when to look again (a retry's backoff, a missing namespace).
	requeue time.Duration
}

func (m *stepMachine) status(phase smv1.ResourcePhase, step string, attempt int, format string, args ...any) smv1.ResourceStatus {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxResourceMsg {
		msg = msg[:maxResourceMsg-3] + "..."
	}
	return smv1.ResourceStatus{Name: m.resource, Plugin: m.plugin, Phase: phase, Step: step, Attempt: int32(attempt), Message: msg}
}

// getPlugin reads the plugin of the resource; nil when it does not exist.
func (m *stepMachine) getPlugin(ctx context.Context) (*smv1.ResourcePlugin, error) {
	var rp smv1.ResourcePlugin
	err := m.r.Client.Get(ctx, types.NamespacedName{Namespace: m.sb.Namespace, Name: m.plugin}, &rp)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get ResourcePlugin %s/%s: %w", m.sb.Namespace, m.plugin, err)
	}
	return &rp, nil
}

// create advances the create steps of rsrc; with phase Ready it returns
// the outputs ("<step>.<output>").
func (m *stepMachine) create(ctx context.Context, rsrc *smv1.Resource) (smv1.ResourceStatus, map[string][]byte, error) {
	rp, err := m.getPlugin(ctx)
	if err != nil || rp == nil {
		return m.status(smv1.ResourcePending, "", 0, "ResourcePlugin %s/%s not found", m.sb.Namespace, m.plugin), nil, err
	}
	if !rp.DeletionTimestamp.IsZero() {
		return m.status(smv1.ResourceCreateFailed, "", 0, "ResourcePlugin %s/%s is being deleted", rp.Namespace, rp.Name), nil, nil
	}
	if ps := smv1.ValidateResourcePlugin(&rp.Spec); len(ps) > 0 {
		return m.status(smv1.ResourceCreateFailed, "", 0, "ResourcePlugin %s/%s is invalid: %v", rp.Namespace, rp.Name, ps[0]), nil, nil
	}
	ns := PluginNamespace(rp)
	if !m.r.watchesNamespace(ns) {
		return m.status(smv1.ResourceCreateFailed, "", 0, "the operator is limited to namespaces that do not include %s (runner.namespace of ResourcePlugin %s)", ns, rp.Name), nil, nil
	}
	state, st, err := m.ensureState(ctx, rp, rsrc)
	if err != nil || state == nil {
		return st, nil, err
	}
	order, _ := smv1.StepOrder(rp.Spec.Create, nil) // valid: checked above
	done, st, err := m.runSteps(ctx, rp, state, rp.Spec.Create, order, smv1.ResourceCreating, smv1.ResourceCreateFailed)
	if err != nil || !done {
		return st, nil, err
	}
	outs := map[string][]byte{}
	var keys []string
	for _, s := range rp.Spec.Create {
		for _, o := range s.Outputs {
			if v, ok := state.Data[keyOut+s.Name+"."+o.Name]; ok {
				outs[s.Name+"."+o.Name] = v
				keys = append(keys, s.Name+"."+o.Name)
			}
		}
	}
	sort.Strings(keys)
	st = m.status(smv1.ResourceReady, "", 0, "created by ResourcePlugin %s", rp.Name)
	st.OutputKeys = keys
	return st, outs, nil
}

// ensureState gets or creates the state Secret of the resource.
func (m *stepMachine) ensureState(ctx context.Context, rp *smv1.ResourcePlugin, rsrc *smv1.Resource) (*corev1.Secret, smv1.ResourceStatus, error) {
	ns := PluginNamespace(rp)
	name := naming.ResourceStateName(m.sb.Namespace, m.sb.Name, string(m.sb.UID), m.resource)
	var s corev1.Secret
	err := m.r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		labels := StepLabels(m.sb, m.resource, rp.Name, "")
		s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels,
			Annotations: map[string]string{annotationPhase: phaseCreate}}, Data: map[string][]byte{}}
		for k, v := range rsrc.Params {
			s.Data[keyParam+k] = []byte(v)
		}
		err = m.r.Client.Create(ctx, &s)
		switch {
		case err == nil:
			return &s, smv1.ResourceStatus{}, nil
		case apierrors.IsAlreadyExists(err):
			err = m.r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s)
		case apierrors.IsNotFound(err):
			m.requeue = namespaceRetry
			return nil, m.status(smv1.ResourceCreateFailed, "", 0, "namespace %s (runner.namespace of ResourcePlugin %s) does not exist", ns, rp.Name), nil
		}
	}
	if err != nil {
		return nil, smv1.ResourceStatus{}, fmt.Errorf("state Secret %s/%s of resource %s of Sandbox %s/%s: %w", ns, name, m.resource, m.sb.Namespace, m.sb.Name, err)
	}
	if s.Labels[smv1.LabelSandboxUID] != string(m.sb.UID) || !smv1.IsManaged(s.Labels) {
		return nil, m.status(smv1.ResourceCreateFailed, "", 0, "Secret %s/%s exists and is not this resource's state; it is left untouched", ns, name), nil
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	return &s, smv1.ResourceStatus{}, nil
}

// runSteps advances steps (in order) by one move at most per step: it
// returns done once every step is done.
func (m *stepMachine) runSteps(ctx context.Context, rp *smv1.ResourcePlugin, state *corev1.Secret, steps []smv1.PluginStep, order []int, running, failed smv1.ResourcePhase) (bool, smv1.ResourceStatus, error) {
	for n, i := range order {
		step := &steps[i]
		if string(state.Data[keyDone+step.Name]) == "1" {
			continue
		}
		attempt := 1
		if a, err := strconv.Atoi(string(state.Data[keyAttempt+step.Name])); err == nil && a > 0 {
			attempt = a
		}
		podName := naming.StepPodName(m.sb.Namespace, m.sb.Name, string(m.sb.UID), m.resource, step.Name, attempt)
		var pod corev1.Pod
		err := m.r.Client.Get(ctx, types.NamespacedName{Namespace: state.Namespace, Name: podName}, &pod)
		if apierrors.IsNotFound(err) {
			desired, err := StepPod(StepPodInput{Sandbox: m.sb, RoutingKey: m.key, Resource: m.resource, Plugin: rp, Step: step,
				Attempt: attempt, StateSecret: state.Name, RunnerImage: m.r.RunnerImage})
			if err != nil {
				return false, m.status(failed, step.Name, attempt, "ResourcePlugin %s: %v", rp.Name, err), nil
			}
			if err := m.r.Client.Create(ctx, desired); err != nil && !apierrors.IsAlreadyExists(err) {
				if apierrors.IsNotFound(err) {
					m.requeue = namespaceRetry
					return false, m.status(failed, step.Name, attempt, "namespace %s does not exist", state.Namespace), nil
				}
				return false, smv1.ResourceStatus{}, fmt.Errorf("create step pod %s/%s: %w", desired.Namespace, desired.Name, err)
			}
			return false, m.status(running, step.Name, attempt, "step %s (%d of %d): pod %s/%s", step.Name, n+1, len(order), desired.Namespace, desired.Name), nil
		}
		if err != nil {
			return false, smv1.ResourceStatus{}, fmt.Errorf("get step pod %s/%s: %w", state.Namespace, podName, err)
		}
		term := mainTerminated(&pod)
		switch stepOutcome(&pod, term) {
		case corev1.PodSucceeded:
			t, derr := smv1.DecodeStepTermination([]byte(termMessage(term)))
			if derr == nil {
				for _, o := range step.Outputs {
					v, ok := t.Outputs[o.Name]
					if !ok {
						continue
					}
					b := []byte(v)
					if slices.Contains(t.Binary, o.Name) {
						if dec, err := base64.StdEncoding.DecodeString(v); err == nil {
							b = dec
						}
					}
					state.Data[keyOut+step.Name+"."+o.Name] = b
				}
				state.Data[keyDone+step.Name] = []byte("1")
				if err := m.r.Client.Update(ctx, state); err != nil {
					return false, smv1.ResourceStatus{}, fmt.Errorf("record step %s in state Secret %s/%s: %w", step.Name, state.Namespace, state.Name, err)
				}
				if err := m.r.Client.Delete(ctx, &pod); client.IgnoreNotFound(err) != nil {
					return false, smv1.ResourceStatus{}, fmt.Errorf("delete step pod %s/%s: %w", pod.Namespace, pod.Name, err)
				}
				continue
			}
			// A pod that succeeded without a readable message did not run the step as we know it.
			return m.failedStep(ctx, state, step, attempt, &pod, term, "step "+step.Name+": "+derr.Error(), failed)
		case corev1.PodFailed:
			return m.failedStep(ctx, state, step, attempt, &pod, term, "", failed)
		}
		for _, cs := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError":
					return false, m.status(failed, step.Name, attempt, "step %s: pod %s/%s: container %s: %s: %s", step.Name, pod.Namespace, pod.Name, cs.Name, w.Reason, w.Message), nil
				}
			}
		}
		return false, m.status(running, step.Name, attempt, "step %s (%d of %d): pod %s/%s", step.Name, n+1, len(order), pod.Namespace, pod.Name), nil
	}
	return true, smv1.ResourceStatus{}, nil
}

// failedStep reports a failed attempt and, once its backoff has passed,
// starts the next one.
func (m *stepMachine) failedStep(ctx context.Context, state *corev1.Secret, step *smv1.PluginStep, attempt int, pod *corev1.Pod, term *corev1.ContainerStateTerminated, why string, failed smv1.ResourcePhase) (bool, smv1.ResourceStatus, error) {
	exit, tail := 0, ""
	finished := pod.CreationTimestamp.Time
	if term != nil {
		exit = int(term.ExitCode)
		if !term.FinishedAt.IsZero() {
			finished = term.FinishedAt.Time
		}
		if t, err := smv1.DecodeStepTermination([]byte(term.Message)); err == nil {
			exit, tail = t.ExitCode, t.LogTail
			if t.Error != "" {
				tail = strings.TrimSpace(t.Error + "\n" + tail)
			}
		} else {
			tail = term.Message // the kubelet's log tail (FallbackToLogsOnError)
		}
	}
	head, details := why, []string{}
	switch {
	case head != "":
	case pod.Status.Reason == stepTimeoutReason && pod.Spec.ActiveDeadlineSeconds != nil:
		head = fmt.Sprintf("step %s timed out after %ds", step.Name, *pod.Spec.ActiveDeadlineSeconds)
	default:
		head = "step " + step.Name + " failed"
		details = append(details, fmt.Sprintf("exit %d", exit))
	}
	next := finished.Add(stepBackoff(attempt))
	now := m.r.now()
	if now.Before(next) {
		m.requeue = next.Sub(now) + 100*time.Millisecond
		details = append(details, fmt.Sprintf("attempt %d", attempt), "next try in "+next.Sub(now).Round(time.Second).String())
		msg := head + " (" + strings.Join(details, ", ") + ")"
		if tail = strings.TrimSpace(tail); tail != "" {
			msg += ": " + tail
		}
		return false, m.status(failed, step.Name, attempt, "%s", msg), nil
	}
	state.Data[keyAttempt+step.Name] = []byte(strconv.Itoa(attempt + 1))
	if err := m.r.Client.Update(ctx, state); err != nil {
		return false, smv1.ResourceStatus{}, fmt.Errorf("record attempt of step %s in state Secret %s/%s: %w", step.Name, state.Namespace, state.Name, err)
	}
	if err := m.r.Client.Delete(ctx, pod); client.IgnoreNotFound(err) != nil {
		return false, smv1.ResourceStatus{}, fmt.Errorf("delete step pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	event(m.r.Recorder, m.sb, corev1.EventTypeWarning, "ResourceStepFailed", "Retry", "resource %s: step %s attempt %d failed (exit %d); trying again", m.resource, step.Name, attempt, exit)
	m.requeue = minRequeue(m.requeue, 100*time.Millisecond)
	return false, m.status(failed, step.Name, attempt+1, "step %s: attempt %d starting", step.Name, attempt+1), nil
}

// stepOutcome is PodSucceeded or PodFailed once the step of p has ended,
// else p's phase. The main container decides as soon as it terminates: the
// pod's restartPolicy is Never, so it never runs again, and its exit code
// and termination message are the step's result. The pod's own phase comes
// later (the kubelet reports it after tearing the pod down, a second or
// more) or never (a container of the overlay that keeps running).
func stepOutcome(p *corev1.Pod, term *corev1.ContainerStateTerminated) corev1.PodPhase {
	switch {
	case term == nil:
		return p.Status.Phase
	case term.ExitCode == 0:
		return corev1.PodSucceeded
	default:
		return corev1.PodFailed
	}
}

func mainTerminated(p *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == smv1.StepContainer {
			return cs.State.Terminated
		}
	}
	return nil
}

func termMessage(t *corev1.ContainerStateTerminated) string {
	if t == nil {
		return ""
	}
	return t.Message
}

// deleteResources runs the delete steps of sb's resources, in reverse
// order, and deletes their state Secrets; it reports whether all are gone.
func (r *SandboxReconciler) deleteResources(ctx context.Context, sb *smv1.Sandbox) (bool, []smv1.ResourceStatus, time.Duration, error) {
	var sts []smv1.ResourceStatus
	var requeue time.Duration
	allGone := true
	for i := len(sb.Spec.Resources) - 1; i >= 0; i-- {
		rsrc := sb.Spec.Resources[i]
		m := &stepMachine{r: r, sb: sb, resource: rsrc.Name, plugin: rsrc.Plugin, key: sb.Status.RoutingKey}
		gone, st, err := m.delete(ctx)
		if err != nil {
			return false, nil, 0, err
		}
		requeue = minRequeue(requeue, m.requeue)
		sts = append([]smv1.ResourceStatus{st}, sts...)
		if !gone {
			allGone = false
			// Earlier resources wait: reverse order.
			for j := i - 1; j >= 0; j-- {
				sts = append([]smv1.ResourceStatus{{Name: sb.Spec.Resources[j].Name, Plugin: sb.Spec.Resources[j].Plugin, Phase: smv1.ResourceDeleting,
					Message: "waits for resource " + rsrc.Name}}, sts...)
			}
			break
		}
	}
	return allGone, sts, requeue, nil
}

// delete advances the deletion of one resource: true once its state Secret is gone.
func (m *stepMachine) delete(ctx context.Context) (bool, smv1.ResourceStatus, error) {
	var list corev1.SecretList
	labels := resourceLabels(m.sb)
	labels[smv1.LabelResource] = m.resource
	if err := m.r.Client.List(ctx, &list, client.MatchingLabels(labels)); err != nil {
		return false, smv1.ResourceStatus{}, fmt.Errorf("list state Secrets of resource %s of Sandbox %s/%s: %w", m.resource, m.sb.Namespace, m.sb.Name, err)
	}
	stateName := naming.ResourceStateName(m.sb.Namespace, m.sb.Name, string(m.sb.UID), m.resource)
	var state *corev1.Secret
	for i := range list.Items {
		if list.Items[i].Name == stateName {
			state = &list.Items[i]
		}
	}
	if state == nil {
		return true, m.status(smv1.ResourceDeleting, "", 0, "deleted"), nil // never created, or already deleted
	}
	if state.Data == nil {
		state.Data = map[string][]byte{}
	}
	rp, err := m.getPlugin(ctx)
	if err != nil {
		return false, smv1.ResourceStatus{}, err
	}
	if rp == nil {
		return false, m.status(smv1.ResourceDeleteFailed, "", 0, "ResourcePlugin %s/%s not found: restore it to run its delete steps (or remove the finalizer to leak the resource)", m.sb.Namespace, m.plugin), nil
	}
	podLabels := resourceLabels(m.sb)
	podLabels[smv1.LabelResource] = m.resource
	var pods corev1.PodList
	if err := m.r.Client.List(ctx, &pods, client.InNamespace(state.Namespace), client.MatchingLabels(podLabels)); err != nil {
		return false, smv1.ResourceStatus{}, fmt.Errorf("list step pods of resource %s: %w", m.resource, err)
	}
	isCreate := func(step string) bool {
		return slices.ContainsFunc(rp.Spec.Create, func(s smv1.PluginStep) bool { return s.Name == step })
	}
	if state.Annotations[annotationPhase] != phaseDelete {
		if state.Annotations == nil {
			state.Annotations = map[string]string{}
		}
		state.Annotations[annotationPhase] = phaseDelete
		if err := m.r.Client.Update(ctx, state); err != nil {
			return false, smv1.ResourceStatus{}, fmt.Errorf("mark state Secret %s/%s for deletion: %w", state.Namespace, state.Name, err)
		}
	}
	// Never run a delete step beside a half-run create step.
	waiting := false
	for i := range pods.Items {
		p := &pods.Items[i]
		if isCreate(p.Labels[smv1.LabelStep]) {
			waiting = true
			if p.DeletionTimestamp.IsZero() {
				if err := m.r.Client.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
					return false, smv1.ResourceStatus{}, fmt.Errorf("delete create step pod %s/%s: %w", p.Namespace, p.Name, err)
				}
			}
		}
	}
	if waiting {
		m.requeue = time.Second
		return false, m.status(smv1.ResourceDeleting, "", 0, "waiting for the create step pods to go"), nil
	}
	order, err := smv1.StepOrder(rp.Spec.Delete, rp.Spec.Create)
	if err != nil {
		return false, m.status(smv1.ResourceDeleteFailed, "", 0, "ResourcePlugin %s is invalid: %v", rp.Name, err), nil
	}
	done, st, err := m.runSteps(ctx, rp, state, rp.Spec.Delete, order, smv1.ResourceDeleting, smv1.ResourceDeleteFailed)
	if err != nil || !done {
		return false, st, err
	}
	for i := range pods.Items {
		if err := m.r.Client.Delete(ctx, &pods.Items[i]); client.IgnoreNotFound(err) != nil {
			return false, smv1.ResourceStatus{}, fmt.Errorf("delete step pod %s/%s: %w", pods.Items[i].Namespace, pods.Items[i].Name, err)
		}
	}
	if err := m.r.Client.Delete(ctx, state); client.IgnoreNotFound(err) != nil {
		return false, smv1.ResourceStatus{}, fmt.Errorf("delete state Secret %s/%s: %w", state.Namespace, state.Name, err)
	}
	event(m.r.Recorder, m.sb, corev1.EventTypeNormal, "ResourceDeleted", "Delete", "resource %s deleted by ResourcePlugin %s", m.resource, rp.Name)
	return true, m.status(smv1.ResourceDeleting, "", 0, "deleted"), nil
}

// writeDeleteStatus reports a Sandbox whose deletion waits for its resources.
func (r *SandboxReconciler) writeDeleteStatus(ctx context.Context, sb *smv1.Sandbox, sts []smv1.ResourceStatus) error {
	before := sb.DeepCopy()
	sb.Status.ObservedGeneration = sb.Generation
	sb.Status.Resources = sts
	rc := status.ResourcesCondition(sb.Generation, sts)
	if rc.Status == metav1.ConditionTrue {
		rc.Status, rc.Reason, rc.Message = metav1.ConditionFalse, smv1.ReasonDeleting, "deleting resources"
	}
	meta.SetStatusCondition(&sb.Status.Conditions, rc)
	meta.SetStatusCondition(&sb.Status.Conditions, metav1.Condition{Type: smv1.ConditionReady, Status: metav1.ConditionFalse, Reason: smv1.ReasonDeleting,
		Message: "deleting: " + rc.Message, ObservedGeneration: sb.Generation})
	degraded := metav1.Condition{Type: smv1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: smv1.ReasonAsExpected, ObservedGeneration: sb.Generation}
	if rc.Reason == smv1.ReasonDeleteFailed {
		degraded.Status, degraded.Reason, degraded.Message = metav1.ConditionTrue, smv1.ReasonDeleteFailed, rc.Message
	}
	meta.SetStatusCondition(&sb.Status.Conditions, degraded)
	if equality.Semantic.DeepEqual(before.Status, sb.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, sb, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("patch status of deleting Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	if degraded.Status == metav1.ConditionTrue {
		if old := meta.FindStatusCondition(before.Status.Conditions, smv1.ConditionDegraded); old == nil || old.Reason != smv1.ReasonDeleteFailed {
			event(r.Recorder, sb, corev1.EventTypeWarning, "ResourceDeleteFailed", "Delete", "%s", rc.Message)
		}
	}
	return nil
}
