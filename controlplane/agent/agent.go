// Package agent is the in-cluster side of the control plane: it authenticates
// with a cluster token, long-polls the control plane for the desired sandboxes
// route groups and job runner groups of its cluster (the full state with a
// revision, then the changes after it), applies them as Sandbox, RouteGroup and
// JobRunnerGroup CRs with server-side apply (field manager "sandboxmesh-agent")
// in one namespace, plus each runner group's token Secret in the group's
// namespace (runnergroups.go), reports their status back, and holds the
// preview tunnel open. It only makes outbound
// connections. After any restart it starts from the full state, so it converges
// without duplicates and deletes CRs that are no longer desired.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/tunnel"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// FieldManager is the server-side-apply field manager of the agent.
const FieldManager = "sandboxmesh-agent"

// Labels and annotations the agent puts on the CRs it manages.
const (
	LabelManagedBy    = "sandboxmesh.dev/managed-by"
	LabelOrg          = "sandboxmesh.dev/org"
	LabelCluster      = "sandboxmesh.dev/cluster"
	AnnotationVersion = "sandboxmesh.dev/version"
)

// ErrUnauthorized means the control plane refused the cluster token.
var ErrUnauthorized = errors.New("cluster token refused")

// Config configures an Agent.
type Config struct {
	// ControlPlaneURL is the base URL, e.g. https://cp.example.com.
	ControlPlaneURL string
	// Token is the cluster token.
	Token string
	// Namespace holds the CRs (default sandboxmesh-system).
	Namespace string
	// Client talks to the cluster's API server (with the v1alpha1 scheme).
	Client client.Client
	Logger *slog.Logger
	// HTTPClient for the control plane (default: no overall timeout; polls are long).
	HTTPClient *http.Client
	// PollWait is how long a poll may wait for changes (default 30s).
	PollWait time.Duration
	// StatusInterval is how often CR status is compared and reported (default 2s).
	StatusInterval time.Duration
	// Dial connects tunnel streams to in-cluster targets. Default: a
	// net.Dialer behind tunnel.GuardedDial, which resolves the target itself
	// and refuses loopback, link-local, unspecified and metadata addresses
	// (and, with AllowedCIDRs, anything outside them).
	Dial tunnel.DialFunc
	// AllowedCIDRs, when set, are the only addresses tunnel targets may
	// resolve to (the cluster's pod and Service CIDRs).
	AllowedCIDRs []netip.Prefix
	// MinBackoff and MaxBackoff bound the reconnect backoff (default 250ms, 30s).
	MinBackoff, MaxBackoff time.Duration
	// DisableTunnel turns the preview tunnel off.
	DisableTunnel bool
	// OperatorVersion is reported to the control plane.
	OperatorVersion string
	// ProblemRetry is how often a runner group the agent could not apply
	// (e.g. its namespace was not allowed yet) is tried again (default 30s).
	ProblemRetry time.Duration
	// WorkloadsInterval is how often the forkable workloads are listed and,
	// when changed, reported (default 30s; negative disables the report).
	WorkloadsInterval time.Duration
	// EventsInterval is how often the Kubernetes Events about the CRs are
	// listed (one list of the namespace's Events; events.go) for the status
	// reports (default 10s, at least StatusInterval; negative: no events).
	EventsInterval time.Duration
	// CaptureListener, when set, serves the capture relay (CaptureRelay) until Run returns: the
	// cluster's devmesh sidecars post smart-test captures to it.
	CaptureListener net.Listener
}

// Agent syncs one cluster.
type Agent struct {
	cfg  Config
	base *url.URL
	log  *slog.Logger

	// applyMu serialises writes to the cluster: a poll answer's, and the
	// retries of runner groups (so an old version never lands after a new one).
	applyMu sync.Mutex
	mu      sync.Mutex
	desired map[string]apitypes.AgentObject // kind/name
	org     string
	cluster string
	sent    map[string]string // kind/name -> last reported status JSON (with version)
	// problems are the runner groups the agent could not apply (kind/name).
	problems map[string]problem
	synced   bool

	// evMu guards events, the last list of Events grouped by object.
	evMu   sync.Mutex
	events eventIndex
}

// New validates cfg and returns an Agent.
func New(cfg Config) (*Agent, error) {
	u, err := url.Parse(strings.TrimRight(cfg.ControlPlaneURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("agent: control plane URL %q: want http(s)://host[:port]", cfg.ControlPlaneURL)
	}
	if cfg.Token == "" {
		return nil, errors.New("agent: a cluster token is required")
	}
	if cfg.Client == nil {
		return nil, errors.New("agent: a Kubernetes client is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "sandboxmesh-system"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		cfg.Logger.Warn("the control plane URL is plain http to a host that is not loopback: the cluster token travels unencrypted; use https (or a loopback address, e.g. through a sidecar)",
			"controlPlaneURL", u.Redacted())
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = 30 * time.Second
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = 2 * time.Second
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		cfg.Dial = tunnel.GuardedDial(d.DialContext, nil, cfg.AllowedCIDRs)
	}
	if cfg.EventsInterval == 0 {
		cfg.EventsInterval = 10 * time.Second
	}
	if cfg.EventsInterval > 0 && cfg.EventsInterval < cfg.StatusInterval {
		cfg.EventsInterval = cfg.StatusInterval
	}
	if cfg.ProblemRetry <= 0 {
		cfg.ProblemRetry = 30 * time.Second
	}
	if cfg.WorkloadsInterval == 0 {
		cfg.WorkloadsInterval = 30 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	return &Agent{cfg: cfg, base: u, log: cfg.Logger, desired: map[string]apitypes.AgentObject{}, sent: map[string]string{}, problems: map[string]problem{}}, nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run syncs, reports status and holds the tunnel until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.syncLoop(ctx) }()
	go func() { defer wg.Done(); a.statusLoop(ctx) }()
	if !a.cfg.DisableTunnel {
		wg.Add(1)
		go func() { defer wg.Done(); a.tunnelLoop(ctx) }()
	}
	if a.cfg.WorkloadsInterval > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); a.workloadsLoop(ctx) }()
	}
	if a.cfg.CaptureListener != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.serveCaptureRelay(ctx, a.cfg.CaptureListener) }()
	}
	wg.Wait()
	return ctx.Err()
}

// backoff is an exponential backoff with full jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + time.Duration(rand.Int64N(int64(b.cur/2)+1))
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (a *Agent) request(ctx context.Context, method, path string, body any, out any) error {
	u := *a.base
	u.Path += path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u.Path = a.base.Path + path[:i]
		u.RawQuery = path[i+1:]
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set(apitypes.HeaderClusterToken, a.cfg.Token)
	if a.cfg.OperatorVersion != "" {
		req.Header.Set("sandboxmesh-operator-version", a.cfg.OperatorVersion)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s %s: %s: %w", method, u.Path, strings.TrimSpace(string(data)), ErrUnauthorized)
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: status %d: %s", method, u.Path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// ---- sync ----

func (a *Agent) syncLoop(ctx context.Context) {
	bo := backoff{min: a.cfg.MinBackoff, max: a.cfg.MaxBackoff}
	var since int64
	for ctx.Err() == nil {
		var st apitypes.AgentState
		err := a.request(ctx, http.MethodGet, fmt.Sprintf("/api/v2/agent/state?since=%d&wait=%s", since, a.cfg.PollWait), nil, &st)
		if err == nil {
			err = a.apply(ctx, st)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := bo.next()
			a.log.WarnContext(ctx, "sync failed, retrying", "err", err, "in", d.String(), "since", since)
			sleep(ctx, d)
			continue
		}
		bo.reset()
		since = st.Revision
	}
}

func objKey(kind, name string) string { return kind + "/" + name }

var (
	gvkSandbox    = v1alpha1.GroupVersion.WithKind("Sandbox")
	gvkRouteGroup = v1alpha1.GroupVersion.WithKind("RouteGroup")
	// gvkRunnerGroup is the CR of kind "runnergroup" (runnergroups.go).
	gvkRunnerGroup = v1alpha1.GroupVersion.WithKind("JobRunnerGroup")
	// gvkResourcePlugin is the CR of kind "resourceplugin": org-wide in the
	// control plane, so every cluster's agent applies it in its namespace.
	gvkResourcePlugin = v1alpha1.GroupVersion.WithKind("ResourcePlugin")
)

// kinds are the kinds of objects the agent applies.
var kinds = []string{"sandbox", "routegroup", "runnergroup", "resourceplugin"}

func gvkFor(kind string) (schema.GroupVersionKind, error) {
	switch kind {
	case "sandbox":
		return gvkSandbox, nil
	case "routegroup":
		return gvkRouteGroup, nil
	case "runnergroup":
		return gvkRunnerGroup, nil
	case "resourceplugin":
		return gvkResourcePlugin, nil
	}
	return schema.GroupVersionKind{}, fmt.Errorf("unknown kind %q", kind)
}

// apply makes the cluster match a poll answer. A full answer also deletes
// managed CRs that are not in it.
func (a *Agent) apply(ctx context.Context, st apitypes.AgentState) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	a.mu.Lock()
	if st.Org != "" {
		a.org, a.cluster = st.Org, st.Cluster
	}
	a.mu.Unlock()
	var errs []error
	for _, o := range st.Objects {
		switch {
		case o.Kind == "runnergroup" && o.Deleted:
			errs = append(errs, a.deleteRunnerGroup(ctx, o.Name))
		case o.Kind == "runnergroup":
			errs = append(errs, a.applyRunnerGroup(ctx, o))
		case o.Deleted:
			errs = append(errs, a.deleteCR(ctx, o.Kind, o.Name))
		default:
			errs = append(errs, a.applyCR(ctx, o))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.mu.Lock()
	if st.Full {
		a.desired = map[string]apitypes.AgentObject{}
		a.sent = map[string]string{}
		live := map[string]bool{}
		for _, o := range st.Objects {
			live[objKey(o.Kind, o.Name)] = !o.Deleted
		}
		for k := range a.problems {
			if !live[k] {
				delete(a.problems, k)
			}
		}
	}
	for _, o := range st.Objects {
		if o.Deleted {
			delete(a.desired, objKey(o.Kind, o.Name))
			delete(a.sent, objKey(o.Kind, o.Name))
		} else {
			a.desired[objKey(o.Kind, o.Name)] = o
		}
	}
	a.synced = true
	a.mu.Unlock()
	if st.Full {
		return a.prune(ctx, st)
	}
	return nil
}

func (a *Agent) applyCR(ctx context.Context, o apitypes.AgentObject) error {
	gvk, err := gvkFor(o.Kind)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return fmt.Errorf("apply %s %s/%s: spec: %w", o.Kind, a.cfg.Namespace, o.Name, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(a.cfg.Namespace)
	u.SetName(o.Name)
	a.mu.Lock()
	cluster := a.cluster
	a.mu.Unlock()
	u.SetLabels(map[string]string{LabelManagedBy: FieldManager, LabelOrg: o.Org, LabelCluster: cluster})
	ann := map[string]string{AnnotationVersion: strconv.FormatInt(o.Version, 10)}
	if o.RoutingKey != "" { // resource plugins have none
		ann[apitypes.AnnotationRoutingKey] = o.RoutingKey
	}
	u.SetAnnotations(ann)
	//nolint:staticcheck // client.Apply with unstructured objects is the simplest server-side apply here.
	if err := a.cfg.Client.Patch(ctx, u, client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", o.Kind, a.cfg.Namespace, o.Name, err)
	}
	return nil
}

func (a *Agent) deleteCR(ctx context.Context, kind, name string) error {
	gvk, err := gvkFor(kind)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(a.cfg.Namespace)
	u.SetName(name)
	if err := a.cfg.Client.Delete(ctx, u); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s/%s: %w", kind, a.cfg.Namespace, name, err)
	}
	return nil
}

// prune deletes managed CRs of this org and cluster that a full state does not
// contain (CRs of other registrations in the same namespace are left alone).
func (a *Agent) prune(ctx context.Context, st apitypes.AgentState) error {
	want := map[string]bool{}
	for _, o := range st.Objects {
		want[objKey(o.Kind, o.Name)] = true
	}
	var errs []error
	for _, kind := range kinds {
		gvk, _ := gvkFor(kind)
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := a.cfg.Client.List(ctx, list, client.InNamespace(a.cfg.Namespace), client.MatchingLabels{LabelManagedBy: FieldManager, LabelOrg: st.Org, LabelCluster: st.Cluster}); err != nil {
			errs = append(errs, fmt.Errorf("list %s in %s: %w", kind, a.cfg.Namespace, err))
			continue
		}
		for _, it := range list.Items {
			if !want[objKey(kind, it.GetName())] {
				a.log.InfoContext(ctx, "deleting CR no longer desired", "kind", kind, "name", it.GetName())
				if kind == "runnergroup" {
					errs = append(errs, a.deleteRunnerGroup(ctx, it.GetName()))
				} else {
					errs = append(errs, a.deleteCR(ctx, kind, it.GetName()))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ---- status ----

func (a *Agent) statusLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.retryProblems(ctx)
		if err := a.reportStatus(ctx); err != nil && ctx.Err() == nil {
			a.log.WarnContext(ctx, "status report failed", "err", err)
		}
	}
}

// maxReportBytes bounds the body of one status report (the control plane
// takes 1 MiB by default): a report of many changed objects is sent in parts.
const maxReportBytes = 512 << 10

// reportStatus sends the status of every desired object whose CR status
// changed (its events included), in reports of at most maxReportBytes.
func (a *Agent) reportStatus(ctx context.Context) error {
	a.mu.Lock()
	objs := make([]apitypes.AgentObject, 0, len(a.desired))
	withEvents := false
	for _, o := range a.desired {
		objs = append(objs, o)
		withEvents = withEvents || o.Kind == "sandbox" || o.Kind == "routegroup"
	}
	a.mu.Unlock()
	if withEvents {
		if err := a.refreshEvents(ctx, time.Now()); err != nil {
			a.log.WarnContext(ctx, "listing events (reports keep the last ones)", "err", err)
		}
	}
	var items []apitypes.AgentStatusItem
	var sigs []string
	size := 0
	var errs []error
	for _, o := range objs {
		st, ok, err := a.observe(ctx, o)
		if err != nil {
			a.log.DebugContext(ctx, "reading CR status", "kind", o.Kind, "name", o.Name, "err", err)
			continue
		}
		if !ok {
			continue
		}
		b, _ := json.Marshal(st)
		sig := strconv.FormatInt(o.Version, 10) + string(b)
		a.mu.Lock()
		same := a.sent[objKey(o.Kind, o.Name)] == sig
		a.mu.Unlock()
		if same {
			continue
		}
		if len(items) > 0 && size+len(b)+256 > maxReportBytes {
			errs = append(errs, a.sendStatus(ctx, items, sigs))
			items, sigs, size = nil, nil, 0
		}
		items = append(items, apitypes.AgentStatusItem{Kind: o.Kind, Org: o.Org, Name: o.Name, Version: o.Version, Status: st})
		sigs = append(sigs, sig)
		size += len(b) + 256
	}
	if len(items) > 0 {
		errs = append(errs, a.sendStatus(ctx, items, sigs))
	}
	return errors.Join(errs...)
}

// sendStatus posts one status report and remembers what it sent.
func (a *Agent) sendStatus(ctx context.Context, items []apitypes.AgentStatusItem, sigs []string) error {
	if err := a.request(ctx, http.MethodPost, "/api/v2/agent/status", apitypes.AgentStatusReport{OperatorVersion: a.cfg.OperatorVersion, Items: items}, nil); err != nil {
		return err
	}
	a.mu.Lock()
	for i, it := range items {
		a.sent[objKey(it.Kind, it.Name)] = sigs[i]
	}
	a.mu.Unlock()
	return nil
}

// observe reads a CR and turns its status into the API's terms. ok is false
// while the CR does not carry the desired version yet, and always for a
// resource plugin (the control plane computes its users itself).
func (a *Agent) observe(ctx context.Context, o apitypes.AgentObject) (apitypes.ObservedStatus, bool, error) {
	switch o.Kind {
	case "runnergroup":
		return a.observeRunnerGroup(ctx, o)
	case "resourceplugin":
		return apitypes.ObservedStatus{}, false, nil
	}
	var out apitypes.ObservedStatus
	var (
		meta      interface{ GetAnnotations() map[string]string }
		gen, obs  int64
		conds     []cond
		eps       []v1alpha1.EndpointStatus
		key       string
		scheduled string
	)
	nn := client.ObjectKey{Namespace: a.cfg.Namespace, Name: o.Name}
	switch o.Kind {
	case "sandbox":
		var sb v1alpha1.Sandbox
		if err := a.cfg.Client.Get(ctx, nn, &sb); err != nil {
			return apitypes.ObservedStatus{}, false, err
		}
		meta, gen, obs, eps, key = &sb, sb.Generation, sb.Status.ObservedGeneration, sb.Status.Endpoints, sb.Status.RoutingKey
		for _, c := range sb.Status.Conditions {
			conds = append(conds, cond{c.Type, string(c.Status), c.Reason, c.Message})
		}
		out.Conditions = conditions(sb.Status.Conditions)
		out.Events = a.objectEvents(gvkSandbox.Kind, sb.Name, sb.UID)
		out.Forks = sb.Status.Forks
		out.Resources = sb.Status.Resources
		out.Local = sb.Status.Local
		if t := sb.Status.ScheduledDeleteTime; t != nil {
			scheduled = t.UTC().Format(time.RFC3339)
		}
	case "routegroup":
		var rg v1alpha1.RouteGroup
		if err := a.cfg.Client.Get(ctx, nn, &rg); err != nil {
			return apitypes.ObservedStatus{}, false, err
		}
		meta, gen, obs, eps, key = &rg, rg.Generation, rg.Status.ObservedGeneration, rg.Status.Endpoints, rg.Status.RoutingKey
		for _, c := range rg.Status.Conditions {
			conds = append(conds, cond{c.Type, string(c.Status), c.Reason, c.Message})
		}
		out.Conditions = conditions(rg.Status.Conditions)
		out.Events = a.objectEvents(gvkRouteGroup.Kind, rg.Name, rg.UID)
		out.MatchedSandboxes = rg.Status.MatchedSandboxes
		if t := rg.Status.ScheduledDeleteTime; t != nil {
			scheduled = t.UTC().Format(time.RFC3339)
		}
	default:
		return apitypes.ObservedStatus{}, false, fmt.Errorf("unknown kind %q", o.Kind)
	}
	if meta.GetAnnotations()[AnnotationVersion] != strconv.FormatInt(o.Version, 10) {
		return apitypes.ObservedStatus{}, false, nil
	}
	out.RoutingKey = key
	if out.RoutingKey == "" {
		out.RoutingKey = o.RoutingKey
	}
	out.Endpoints = eps
	out.ScheduledDeleteTime = scheduled
	return summarize(out, gen, obs, conds), true, nil
}

// summarize sets Ready, Reason and Message of out from a CR's generation,
// its status's observed generation and its conditions: Pending before the
// operator wrote any status, Creating while it has not seen the latest spec,
// else the Ready condition (and Degraded's reason when not ready).
func summarize(out apitypes.ObservedStatus, gen, obs int64, conds []cond) apitypes.ObservedStatus {
	switch {
	case obs == 0 && len(conds) == 0:
		out.Reason, out.Message = "Pending", "applied to the cluster; waiting for the operator"
	case obs < gen:
		out.Reason, out.Message = v1alpha1.ReasonCreating, "the operator has not processed the latest spec yet"
	default:
		out.Reason = "Unknown"
		for _, c := range conds {
			if c.typ == v1alpha1.ConditionReady {
				out.Ready = c.status == "True"
				out.Reason, out.Message = c.reason, c.message
			}
		}
		if !out.Ready {
			for _, c := range conds {
				if c.typ == v1alpha1.ConditionDegraded && c.status == "True" {
					out.Reason, out.Message = c.reason, c.message
				}
			}
		}
	}
	return out
}

type cond struct{ typ, status, reason, message string }

// ---- tunnel ----

func (a *Agent) tunnelLoop(ctx context.Context) {
	bo := backoff{min: a.cfg.MinBackoff, max: a.cfg.MaxBackoff}
	for ctx.Err() == nil {
		start := time.Now()
		err := a.serveTunnel(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			bo.reset()
		}
		d := bo.next()
		a.log.WarnContext(ctx, "tunnel closed, reconnecting", "err", err, "in", d.String())
		sleep(ctx, d)
	}
}

func (a *Agent) serveTunnel(ctx context.Context) error {
	u := *a.base
	u.Path += "/api/v2/agent/tunnel"
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	h := http.Header{}
	h.Set(apitypes.HeaderClusterToken, a.cfg.Token)
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: a.cfg.HTTPClient, HTTPHeader: h, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("tunnel: %w", ErrUnauthorized)
		}
		return fmt.Errorf("tunnel: dial %s: %w", u.Redacted(), err)
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn := websocket.NetConn(tctx, ws, websocket.MessageBinary)
	a.log.InfoContext(ctx, "tunnel connected")
	return tunnel.ServeAgent(tctx, conn, a.allow, a.cfg.Dial, a.log)
}

// allow admits only the addresses of endpoints of the sandboxes and route
// groups this agent applied (as declared, and as the operator resolved them).
func (a *Agent) allow(d apitypes.TunnelDial) (string, error) {
	a.mu.Lock()
	org := a.org
	objs := make([]apitypes.AgentObject, 0, len(a.desired))
	for _, o := range a.desired {
		objs = append(objs, o)
	}
	a.mu.Unlock()
	if org == "" || d.Org != org {
		return "", fmt.Errorf("target %s not declared by any sandbox of this cluster", d.Address)
	}
	for _, o := range objs {
		for _, addr := range a.addresses(o) {
			if strings.EqualFold(addr, d.Address) {
				return addr, nil
			}
		}
	}
	return "", fmt.Errorf("target %s not declared by any sandbox of this cluster", d.Address)
}

func (a *Agent) addresses(o apitypes.AgentObject) []string {
	var eps []v1alpha1.Endpoint
	switch o.Kind {
	case "sandbox":
		var spec v1alpha1.SandboxSpec
		if json.Unmarshal(o.Spec, &spec) == nil && spec.DefaultRouteGroup != nil {
			eps = spec.DefaultRouteGroup.Endpoints
		}
	case "routegroup":
		var spec v1alpha1.RouteGroupSpec
		if json.Unmarshal(o.Spec, &spec) == nil {
			eps = spec.Endpoints
		}
	}
	var out []string
	for _, e := range eps {
		if u, err := url.Parse(e.Target); err == nil && strings.HasSuffix(u.Hostname(), ".svc") {
			out = append(out, u.Host)
		}
	}
	// Resolved addresses from the CR status (for .deploy targets).
	a.mu.Lock()
	sig := a.sent[objKey(o.Kind, o.Name)]
	a.mu.Unlock()
	if i := strings.IndexByte(sig, '{'); i >= 0 {
		var st apitypes.ObservedStatus
		if json.Unmarshal([]byte(sig[i:]), &st) == nil {
			for _, r := range st.Endpoints {
				if r.URL != "" {
					if u, err := url.Parse(r.URL); err == nil && u.Host != "" {
						if u.Port() == "" && r.Port != 0 {
							out = append(out, net.JoinHostPort(u.Hostname(), strconv.Itoa(int(r.Port))))
						} else {
							out = append(out, u.Host)
						}
					}
				}
				if r.Host != "" {
					if _, _, err := net.SplitHostPort(r.Host); err == nil {
						out = append(out, r.Host)
					} else if r.Port != 0 {
						out = append(out, net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port))))
					}
				}
			}
		}
	}
	return out
}

// Synced reports whether the agent has applied at least one poll answer.
func (a *Agent) Synced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.synced
}
