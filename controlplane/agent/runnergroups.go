package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// Runner groups (kind "runnergroup") become a JobRunnerGroup CR in the
// agent's namespace, which the operator turns into runner pods in the
// group's spec.namespace, and a Secret there holding the group's runner
// token. The agent may write Secrets only in the namespaces the chart lists
// in jobs.namespaces (no get or list anywhere): a group elsewhere is not
// applied and reports why.

// Reasons the agent reports for a runner group it could not apply.
const (
	// ReasonNamespaceNotAllowed: the agent may not write Secrets in the
	// group's namespace (not in the chart's jobs.namespaces).
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonInvalidSpec: the spec from the control plane does not make a
	// JobRunnerGroup (e.g. a podTemplate that is not a PodTemplateSpec).
	ReasonInvalidSpec = v1alpha1.ReasonInvalidSpec
	// ReasonNoRunnerToken: the control plane sent no runner token.
	ReasonNoRunnerToken = "NoRunnerToken"
)

// runnerGroupSpec decodes the runner group spec the control plane sends (the
// JobRunnerGroup spec fields without controlPlane); the pod template is kept
// as written, after checking that it decodes as a PodTemplateSpec (the
// operator could not read a JobRunnerGroup whose template does not).
type runnerGroupSpec struct {
	v1alpha1.JobRunnerGroupSpec
	PodTemplate json.RawMessage `json:"podTemplate,omitempty"`
}

// problemError is a runner group the agent cannot apply until the user (or
// the chart) changes something: reported as its status, not retried.
type problemError struct{ reason, message string }

func (e *problemError) Error() string { return e.reason + ": " + e.message }

// runnerGroupCR builds the JobRunnerGroup CR of o (server-side apply input)
// and returns it with the group's runner namespace.
func (a *Agent) runnerGroupCR(o apitypes.AgentObject, cluster string) (*unstructured.Unstructured, string, error) {
	var in runnerGroupSpec
	if err := json.Unmarshal(o.Spec, &in); err != nil {
		return nil, "", &problemError{ReasonInvalidSpec, fmt.Sprintf("spec: %v", err)}
	}
	if len(in.PodTemplate) > 0 && string(in.PodTemplate) != "null" {
		var tpl corev1.PodTemplateSpec
		if err := json.Unmarshal(in.PodTemplate, &tpl); err != nil {
			return nil, "", &problemError{ReasonInvalidSpec, fmt.Sprintf("spec.podTemplate: not a Kubernetes PodTemplateSpec: %v", err)}
		}
	}
	spec := in.JobRunnerGroupSpec
	if spec.Namespace == "" {
		spec.Namespace = v1alpha1.DefaultJobNamespace
	}
	if spec.Cluster == "" {
		spec.Cluster = cluster
	}
	spec.PodTemplate = nil
	spec.ControlPlane = v1alpha1.RunnerControlPlane{URL: a.base.String(), Org: o.Org, TokenSecretName: v1alpha1.RunnerObjectName(o.Name)}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, "", fmt.Errorf("apply runnergroup %s/%s: %w", a.cfg.Namespace, o.Name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, "", fmt.Errorf("apply runnergroup %s/%s: %w", a.cfg.Namespace, o.Name, err)
	}
	if len(in.PodTemplate) > 0 && string(in.PodTemplate) != "null" {
		var tpl map[string]any
		if err := json.Unmarshal(in.PodTemplate, &tpl); err != nil {
			return nil, "", &problemError{ReasonInvalidSpec, fmt.Sprintf("spec.podTemplate: %v", err)}
		}
		m["podTemplate"] = tpl
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": m}}
	u.SetGroupVersionKind(gvkRunnerGroup)
	u.SetNamespace(a.cfg.Namespace)
	u.SetName(o.Name)
	u.SetLabels(map[string]string{LabelManagedBy: FieldManager, LabelOrg: o.Org, LabelCluster: cluster})
	ann := map[string]string{AnnotationVersion: strconv.FormatInt(o.Version, 10)}
	if o.RunnerToken != "" {
		h := sha256.Sum256([]byte(o.RunnerToken))
		ann[v1alpha1.AnnotationRunnerTokenHash] = hex.EncodeToString(h[:8])
	}
	u.SetAnnotations(ann)
	return u, spec.Namespace, nil
}

// applyRunnerGroup applies the token Secret in the group's namespace, then
// the JobRunnerGroup CR (so that the runner pods find their token), after a
// dry run of the CR (so that a CR the API server refuses leaves no Secret
// behind). A problem the user must fix is recorded and reported as the
// group's status instead of failing the sync.
func (a *Agent) applyRunnerGroup(ctx context.Context, o apitypes.AgentObject) error {
	a.mu.Lock()
	cluster := a.cluster
	a.mu.Unlock()
	err := a.applyRunnerGroupObjects(ctx, o, cluster)
	var p *problemError
	if errors.As(err, &p) {
		a.log.WarnContext(ctx, "runner group not applied", "name", o.Name, "reason", p.reason, "message", p.message)
		a.setProblem(o, p)
		return nil
	}
	if err == nil {
		a.setProblem(o, nil)
	}
	return err
}

func (a *Agent) applyRunnerGroupObjects(ctx context.Context, o apitypes.AgentObject, cluster string) error {
	u, runnerNS, err := a.runnerGroupCR(o, cluster)
	if err != nil {
		return err
	}
	if o.RunnerToken == "" {
		return &problemError{ReasonNoRunnerToken, "the control plane sent no runner token for this group (is it older than the agent?)"}
	}
	applyCR := func(opts ...client.PatchOption) error {
		opts = append(opts, client.FieldOwner(FieldManager), client.ForceOwnership)
		//nolint:staticcheck // client.Apply with unstructured objects is the simplest server-side apply here.
		err := a.cfg.Client.Patch(ctx, u.DeepCopy(), client.Apply, opts...)
		if apierrors.IsInvalid(err) {
			return &problemError{ReasonInvalidSpec, err.Error()}
		}
		if err != nil {
			return fmt.Errorf("apply runnergroup %s/%s: %w", a.cfg.Namespace, o.Name, err)
		}
		return nil
	}
	if err := applyCR(client.DryRunAll); err != nil {
		return err
	}
	name := v1alpha1.RunnerObjectName(o.Name)
	sec := corev1ac.Secret(name, runnerNS).
		WithLabels(map[string]string{LabelManagedBy: FieldManager, LabelOrg: o.Org, LabelCluster: cluster, v1alpha1.LabelRunnerGroup: o.Name}).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{v1alpha1.RunnerTokenSecretKey: []byte(o.RunnerToken)})
	if err := a.cfg.Client.Apply(ctx, sec, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		switch {
		case apierrors.IsForbidden(err):
			return &problemError{ReasonNamespaceNotAllowed, fmt.Sprintf("spec.namespace: the agent may not write the runner token Secret in namespace %s: add it to the chart's jobs.namespaces", runnerNS)}
		case apierrors.IsNotFound(err):
			return &problemError{v1alpha1.ReasonNamespaceNotFound, fmt.Sprintf("spec.namespace: namespace %s does not exist (the chart creates its jobs.namespaces when jobs.createNamespace is true)", runnerNS)}
		}
		return fmt.Errorf("apply runner token Secret %s/%s of runnergroup %s: %w", runnerNS, name, o.Name, err)
	}
	return applyCR()
}

// deleteRunnerGroup deletes the group's token Secret, then its CR (whose
// finalizer makes the operator delete the runner Deployment). The Secret's
// namespace comes from the CR, else from the last desired spec.
func (a *Agent) deleteRunnerGroup(ctx context.Context, name string) error {
	a.mu.Lock()
	last, known := a.desired[objKey("runnergroup", name)]
	delete(a.problems, objKey("runnergroup", name))
	a.mu.Unlock()
	secretNS, secretName := "", v1alpha1.RunnerObjectName(name)
	var cr v1alpha1.JobRunnerGroup
	switch err := a.cfg.Client.Get(ctx, client.ObjectKey{Namespace: a.cfg.Namespace, Name: name}, &cr); {
	case err == nil:
		secretNS = cr.Spec.Namespace
		if cr.Spec.ControlPlane.TokenSecretName != "" {
			secretName = cr.Spec.ControlPlane.TokenSecretName
		}
	case apierrors.IsNotFound(err):
		if known {
			var s runnerGroupSpec
			if json.Unmarshal(last.Spec, &s) == nil {
				secretNS = s.Namespace
			}
		}
	default:
		return fmt.Errorf("delete runnergroup %s/%s: %w", a.cfg.Namespace, name, err)
	}
	if secretNS == "" {
		secretNS = v1alpha1.DefaultJobNamespace
	}
	sec := &corev1.Secret{}
	sec.SetNamespace(secretNS)
	sec.SetName(secretName)
	// Forbidden: a namespace the agent may not write in, where it never wrote the Secret.
	if err := a.cfg.Client.Delete(ctx, sec); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) {
		return fmt.Errorf("delete runner token Secret %s/%s of runnergroup %s: %w", secretNS, secretName, name, err)
	}
	return a.deleteCR(ctx, "runnergroup", name)
}

// setProblem records (p non-nil) or clears the problem of a runner group.
func (a *Agent) setProblem(o apitypes.AgentObject, p *problemError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p == nil {
		delete(a.problems, objKey(o.Kind, o.Name))
		return
	}
	a.problems[objKey(o.Kind, o.Name)] = problem{version: o.Version, reason: p.reason, message: p.message, at: time.Now()}
}

// problem is why the agent did not apply one version of an object, and when.
type problem struct {
	version         int64
	reason, message string
	at              time.Time
}

// retryProblems applies again the desired runner groups whose last attempt
// failed at least cfg.ProblemRetry ago: what the user fixes outside the
// group (the chart's jobs.namespaces, a namespace) needs no change of the group.
func (a *Agent) retryProblems(ctx context.Context) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	a.mu.Lock()
	var due []apitypes.AgentObject
	for k, p := range a.problems {
		if o, ok := a.desired[k]; ok && o.Version == p.version && time.Since(p.at) >= a.cfg.ProblemRetry {
			due = append(due, o)
		}
	}
	a.mu.Unlock()
	for _, o := range due {
		if err := a.applyRunnerGroup(ctx, o); err != nil && ctx.Err() == nil {
			a.log.WarnContext(ctx, "runner group retry failed", "name", o.Name, "err", err)
		}
	}
}

// observeRunnerGroup reads a JobRunnerGroup CR (or the problem that kept the
// agent from applying it) as the API's status plus pods.
func (a *Agent) observeRunnerGroup(ctx context.Context, o apitypes.AgentObject) (apitypes.ObservedStatus, bool, error) {
	var out apitypes.ObservedStatus
	a.mu.Lock()
	p, failed := a.problems[objKey(o.Kind, o.Name)]
	a.mu.Unlock()
	if failed && p.version == o.Version {
		out.Reason, out.Message = p.reason, p.message
		out.Pods = &apitypes.RunnerGroupPods{}
		return out, true, nil
	}
	var jrg v1alpha1.JobRunnerGroup
	if err := a.cfg.Client.Get(ctx, client.ObjectKey{Namespace: a.cfg.Namespace, Name: o.Name}, &jrg); err != nil {
		return out, false, err
	}
	if jrg.Annotations[AnnotationVersion] != strconv.FormatInt(o.Version, 10) {
		return out, false, nil
	}
	conds := make([]cond, 0, len(jrg.Status.Conditions))
	for _, c := range jrg.Status.Conditions {
		conds = append(conds, cond{c.Type, string(c.Status), c.Reason, c.Message})
	}
	out = summarize(out, jrg.Generation, jrg.Status.ObservedGeneration, conds)
	out.Pods = &apitypes.RunnerGroupPods{Ready: jrg.Status.Pods.Ready, NotReady: jrg.Status.Pods.NotReady}
	return out, true, nil
}
