package jobs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// secretName names the server secret (store.Secret) runner tokens are
// derived from.
const secretName = "runner-token"

// ApplyRunnerGroup validates and stores a runner group (create or update;
// ifVersion as in store.ApplyRequest). The cluster cannot change.
func (s *Service) ApplyRunnerGroup(ctx context.Context, org, name string, rg apitypes.RunnerGroup, ifVersion int64) (store.Object, bool, error) {
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateObjectName("name", name); fe != nil {
		errs = append(errs, *fe)
	}
	if rg.Name != "" && rg.Name != name {
		errs = append(errs, apitypes.FieldError{Path: "name", Message: fmt.Sprintf("%q differs from the name in the path (%q)", rg.Name, name)})
	}
	rg.Spec.Default()
	errs = append(errs, apitypes.ValidateRunnerGroupSpec(&rg.Spec)...)
	if t := rg.Spec.PodTemplate; len(errs) == 0 && len(t) > 0 && string(t) != "null" {
		var tpl corev1.PodTemplateSpec // what the agent and the operator decode
		if err := json.Unmarshal(t, &tpl); err != nil {
			errs = append(errs, apitypes.FieldError{Path: "spec.podTemplate", Message: "not a Kubernetes PodTemplateSpec: " + err.Error()})
		}
	}
	if len(errs) == 0 {
		cur, err := s.st.Get(ctx, store.KindRunnerGroup, org, name)
		switch {
		case err == nil:
			var spec apitypes.RunnerGroupSpec
			if json.Unmarshal(cur.Spec, &spec) == nil && spec.Namespace != rg.Spec.Namespace {
				errs = append(errs, apitypes.FieldError{Path: "spec.namespace", Message: fmt.Sprintf("immutable: %q cannot change to %q (delete the runner group and create it again)", spec.Namespace, rg.Spec.Namespace)})
			}
		case !errors.Is(err, store.ErrNotFound):
			return store.Object{}, false, err
		}
	}
	if len(errs) > 0 {
		return store.Object{}, false, invalid("invalid runner group", errs...)
	}
	raw, err := json.Marshal(rg.Spec)
	if err != nil {
		return store.Object{}, false, wrap("runner group "+name, err)
	}
	return s.st.Apply(ctx, store.ApplyRequest{Kind: store.KindRunnerGroup, Org: org, Name: name, Cluster: rg.Spec.Cluster, Spec: raw,
		Labels: rg.Spec.Labels, IfVersion: ifVersion, NewRoutingKey: func() (string, error) { return "", nil }})
}

// RunnerGroupView is a stored runner group as the API shows it, with its
// status: pods as the agent last reported them, executions from the jobs.
func (s *Service) RunnerGroupView(ctx context.Context, o store.Object) (apitypes.RunnerGroup, error) {
	out := apitypes.RunnerGroup{Name: o.Name, CreatedAt: ts(o.CreatedAt), UpdatedAt: ts(o.UpdatedAt), Version: o.Version}
	if err := json.Unmarshal(o.Spec, &out.Spec); err != nil {
		return out, fmt.Errorf("runner group %s/%s: spec: %w", o.Org, o.Name, err)
	}
	var st apitypes.ObservedStatus
	if len(o.Status) > 0 && json.Unmarshal(o.Status, &st) == nil && st.Pods != nil {
		out.Status.Pods = *st.Pods
	}
	q, r, err := s.st.CountJobs(ctx, o.Org, o.Name)
	if err != nil {
		return out, err
	}
	out.Status.Executions = apitypes.RunnerGroupExecutions{Queued: q, Running: r}
	out.Status.Pods.Idle = max(0, out.Status.Pods.Ready-int32(min(r, int64(out.Status.Pods.Ready))))
	return out, nil
}

// ---- runner tokens ----

// Runner is an authenticated runner: a live runner group.
type Runner struct {
	Org, Group, Cluster string
	Spec                apitypes.RunnerGroupSpec
}

func (s *Service) serverSecret(ctx context.Context) ([]byte, error) {
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	if s.secret != nil {
		return s.secret, nil
	}
	sec, err := s.st.Secret(ctx, secretName)
	if err != nil {
		return nil, err
	}
	s.secret = sec
	return sec, nil
}

// mac is the runner token's MAC for one incarnation of a runner group.
func mac(secret []byte, o store.Object) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("runner\x00" + o.Org + "\x00" + o.Cluster + "\x00" + o.Name + "\x00" + strconv.FormatInt(o.CreatedAt.UnixNano(), 10)))
	return h.Sum(nil)
}

// RunnerToken returns the runner token of a runner group object: HMAC-SHA256
// of its org, cluster, name and creation time under a server secret, so a
// deleted and re-created group's old tokens stop working. Nothing is stored.
func (s *Service) RunnerToken(ctx context.Context, o store.Object) (string, error) {
	if o.Kind != store.KindRunnerGroup {
		return "", fmt.Errorf("runner token of %s %s/%s: not a runner group", o.Kind, o.Org, o.Name)
	}
	sec, err := s.serverSecret(ctx)
	if err != nil {
		return "", fmt.Errorf("runner token of %s/%s: %w", o.Org, o.Name, err)
	}
	return apitypes.RunnerTokenPrefix + base64.RawURLEncoding.EncodeToString(mac(sec, o)), nil
}

// AuthenticateRunner checks a runner token against the live runner group
// org/group (constant-time); any failure is ErrUnauthorized.
func (s *Service) AuthenticateRunner(ctx context.Context, org, group, token string) (Runner, error) {
	raw, ok := strings.CutPrefix(token, apitypes.RunnerTokenPrefix)
	if !ok || len(raw) > 64 || apitypes.ValidateDNSName("org", org) != nil || apitypes.ValidateObjectName("group", group) != nil {
		return Runner{}, ErrUnauthorized
	}
	got, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return Runner{}, ErrUnauthorized
	}
	o, err := s.st.Get(ctx, store.KindRunnerGroup, org, group)
	if errors.Is(err, store.ErrNotFound) {
		return Runner{}, ErrUnauthorized
	}
	if err != nil {
		return Runner{}, err
	}
	sec, err := s.serverSecret(ctx)
	if err != nil {
		return Runner{}, err
	}
	if !hmac.Equal(got, mac(sec, o)) {
		return Runner{}, ErrUnauthorized
	}
	r := Runner{Org: org, Group: group, Cluster: o.Cluster}
	if err := json.Unmarshal(o.Spec, &r.Spec); err != nil {
		return Runner{}, fmt.Errorf("runner group %s/%s: spec: %w", org, group, err)
	}
	return r, nil
}
