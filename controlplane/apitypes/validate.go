package apitypes

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// FieldError is one invalid field of a request.
type FieldError struct {
	// Path of the field, e.g. spec.forks[0].forkOf.namespace.
	Path string `json:"path"`
	// Message says what is wrong.
	Message string `json:"message"`
}

// Error formats the field error.
func (f FieldError) Error() string { return f.Path + ": " + f.Message }

// FieldErrors is a list of field errors.
type FieldErrors []FieldError

// Error joins the field errors.
func (fs FieldErrors) Error() string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Error()
	}
	return strings.Join(parts, "; ")
}

// The patterns mirror the kubebuilder markers of crds/v1alpha1.
var (
	reObjectName   = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	reMachineID    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	reNamespace    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	reWorkloadName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	reTTL          = regexp.MustCompile(`^[0-9]{1,6}[mhdw]$`)
	reTarget       = regexp.MustCompile(`^(http|grpc|tcp)://[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.(svc|deploy):[0-9]{1,5}$`)
	reEnvName      = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	reLabelKey     = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	reClusterName  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	reOutputKey    = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?\.[A-Za-z_][-_A-Za-z0-9]*$`)
	reParamName    = regexp.MustCompile(`^[A-Za-z_][-._A-Za-z0-9]*$`)
)

// MaxObjectNameLen is the longest sandbox or route group name.
const MaxObjectNameLen = 30

// ValidateObjectName checks a sandbox or route group name.
func ValidateObjectName(path, name string) *FieldError {
	switch {
	case name == "":
		return &FieldError{path, "required"}
	case len(name) > MaxObjectNameLen:
		return &FieldError{path, fmt.Sprintf("must be at most %d characters (got %d)", MaxObjectNameLen, len(name))}
	case !reObjectName.MatchString(name):
		return &FieldError{path, fmt.Sprintf("%q must be a DNS label starting with a letter: lowercase letters, digits and '-'", name)}
	}
	return nil
}

// ValidateDNSName checks an org or cluster name (DNS label, at most 63 characters).
func ValidateDNSName(path, name string) *FieldError {
	switch {
	case name == "":
		return &FieldError{path, "required"}
	case len(name) > 63:
		return &FieldError{path, fmt.Sprintf("must be at most 63 characters (got %d)", len(name))}
	case !reClusterName.MatchString(name):
		return &FieldError{path, fmt.Sprintf("%q must be a DNS label: lowercase letters, digits and '-'", name)}
	}
	return nil
}

// MaxFieldErrors bounds the field errors of one validation: after that many
// the validation stops and one last error says so, so a body with thousands of
// bad items gets a short answer.
const MaxFieldErrors = 20

type checker struct{ errs FieldErrors }

func (c *checker) add(path, format string, args ...any) {
	switch {
	case len(c.errs) < MaxFieldErrors:
		c.errs = append(c.errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	case len(c.errs) == MaxFieldErrors:
		c.errs = append(c.errs, FieldError{Path: path, Message: fmt.Sprintf("more errors not shown (validation stops after %d)", MaxFieldErrors)})
	}
}

// full reports whether the validation has stopped collecting errors.
func (c *checker) full() bool { return len(c.errs) > MaxFieldErrors }

// ValidateText checks a free-text value shown to people (API key names,
// label values): valid UTF-8 of at most max bytes without control or format
// characters (NUL, newlines, ANSI escapes, bidi overrides), which would
// corrupt logs and terminals. required rejects the empty string.
func ValidateText(path, v string, max int, required bool) *FieldError {
	switch {
	case v == "" && required:
		return &FieldError{path, "required"}
	case len(v) > max:
		return &FieldError{path, fmt.Sprintf("must be at most %d characters (got %d)", max, len(v))}
	case !utf8.ValidString(v):
		return &FieldError{path, "must be valid UTF-8"}
	}
	for i, r := range v {
		if r != ' ' && !unicode.IsPrint(r) {
			return &FieldError{path, fmt.Sprintf("must not contain control characters (%U at byte %d)", r, i)}
		}
	}
	return nil
}

func (c *checker) pattern(path, v string, re *regexp.Regexp, max int, what string) {
	switch {
	case v == "":
		c.add(path, "required")
	case len(v) > max:
		c.add(path, "must be at most %d characters", max)
	case !re.MatchString(v):
		c.add(path, "%q is not a valid %s", v, what)
	}
}

func (c *checker) maxLen(path, v string, max int) {
	if len(v) > max {
		c.add(path, "must be at most %d characters", max)
	}
}

func (c *checker) maxItems(path string, n, max int) {
	if n > max {
		c.add(path, "must have at most %d items (got %d)", max, n)
	}
}

func (c *checker) workload(path string, w v1alpha1.WorkloadRef) {
	switch w.Kind {
	case "", v1alpha1.KindDeployment, v1alpha1.KindRollout:
	default:
		c.add(path+".kind", "must be Deployment or Rollout (got %q)", w.Kind)
	}
	c.pattern(path+".namespace", w.Namespace, reNamespace, 63, "namespace")
	c.pattern(path+".name", w.Name, reWorkloadName, 253, "workload name")
}

func (c *checker) ttl(path string, t *v1alpha1.TTL, allowed ...v1alpha1.TTLOffset) {
	if t == nil {
		return
	}
	if !reTTL.MatchString(t.Duration) {
		c.add(path+".duration", "%q must be a whole number followed by m, h, d or w, e.g. \"2h\"", t.Duration)
	}
	if t.OffsetFrom == "" {
		return
	}
	for _, a := range allowed {
		if t.OffsetFrom == a {
			return
		}
	}
	c.add(path+".offsetFrom", "must be one of %v (got %q)", allowed, t.OffsetFrom)
}

func (c *checker) labels(path string, m map[string]string) {
	if len(m) > 64 {
		c.add(path, "must have at most 64 labels")
	}
	for k, v := range m {
		if len(k) > 317 || !reLabelKey.MatchString(k) {
			c.add(fmt.Sprintf("%s[%q]", path, k), "invalid label key")
		}
		if fe := ValidateText(fmt.Sprintf("%s[%q]", path, k), v, 256, false); fe != nil {
			c.add(fe.Path, "value %s", fe.Message)
		}
	}
}

func (c *checker) endpoints(path string, eps []v1alpha1.Endpoint) {
	c.maxItems(path, len(eps), 32)
	seen := map[string]bool{}
	for i, e := range eps {
		p := fmt.Sprintf("%s[%d]", path, i)
		c.pattern(p+".name", e.Name, reObjectName, 30, "endpoint name (DNS label starting with a letter)")
		if seen[e.Name] {
			c.add(p+".name", "duplicate endpoint name %q", e.Name)
		}
		seen[e.Name] = true
		c.pattern(p+".target", e.Target, reTarget, 253, "target (want scheme://<service>.<namespace>.svc:<port> or scheme://<workload>.<namespace>.deploy:<port>, scheme http, grpc or tcp)")
		if reTarget.MatchString(e.Target) {
			port, _ := strconv.Atoi(e.Target[strings.LastIndexByte(e.Target, ':')+1:])
			if port < 1 || port > 65535 {
				c.add(p+".target", "port %d is out of range (1-65535)", port)
			}
		}
		if c.full() {
			return
		}
	}
}

func wkey(w v1alpha1.WorkloadRef) string {
	k := w.Kind
	if k == "" {
		k = v1alpha1.KindDeployment
	}
	return string(k) + "/" + w.Namespace + "/" + w.Name
}

// ValidateSandboxSpec checks a sandbox spec as the CRD schema does (field paths
// start with spec.). Cluster must be set.
func ValidateSandboxSpec(s *v1alpha1.SandboxSpec) FieldErrors {
	c := &checker{}
	if s.Cluster == "" {
		c.add("spec.cluster", "required: the name of a registered cluster")
	} else if fe := ValidateDNSName("spec.cluster", s.Cluster); fe != nil {
		c.errs = append(c.errs, *fe)
	}
	c.maxLen("spec.description", s.Description, 1024)
	c.labels("spec.labels", s.Labels)
	c.ttl("spec.ttl", s.TTL, v1alpha1.TTLFromCreatedAt, v1alpha1.TTLFromUpdatedAt)
	if len(s.Forks) == 0 && len(s.Virtual) == 0 && len(s.Local) == 0 {
		c.add("spec", "at least one of forks, virtual or local must be given")
	}
	c.maxItems("spec.forks", len(s.Forks), 32)
	forked := map[string]bool{}
	for i, f := range s.Forks {
		if c.full() {
			break
		}
		p := fmt.Sprintf("spec.forks[%d]", i)
		c.workload(p+".forkOf", f.ForkOf)
		k := wkey(f.ForkOf)
		if forked[k] {
			c.add(p+".forkOf", "a baseline workload may be forked at most once (%s)", k)
		}
		forked[k] = true
		if cu := f.Customizations; cu != nil {
			c.customizations(p+".customizations", cu)
		}
	}
	resources := map[string]bool{}
	for _, r := range s.Resources {
		resources[r.Name] = true
	}
	// valueFrom.fork must name a fork of this sandbox, valueFrom.resource one
	// of its resources.
	for i, f := range s.Forks {
		if c.full() {
			break
		}
		if f.Customizations == nil {
			continue
		}
		for j, e := range f.Customizations.Env {
			if e.ValueFrom != nil && e.ValueFrom.Resource != nil && e.ValueFrom.Resource.Name != "" && !resources[e.ValueFrom.Resource.Name] {
				c.add(fmt.Sprintf("spec.forks[%d].customizations.env[%d].valueFrom.resource.name", i, j), "%q is not one of spec.resources", e.ValueFrom.Resource.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.Fork != nil {
				if ref := e.ValueFrom.Fork.ForkOf; !forked[wkey(ref)] {
					c.add(fmt.Sprintf("spec.forks[%d].customizations.env[%d].valueFrom.fork.forkOf", i, j), "%s/%s is not one of spec.forks", ref.Namespace, ref.Name)
				}
			}
		}
	}
	c.maxItems("spec.virtual", len(s.Virtual), 32)
	for i, v := range s.Virtual {
		if c.full() {
			break
		}
		p := fmt.Sprintf("spec.virtual[%d]", i)
		c.pattern(p+".name", v.Name, reObjectName, 63, "name (DNS label starting with a letter)")
		c.workload(p+".workload", v.Workload)
	}
	if s.LocalMachineID != "" {
		c.pattern("spec.localMachineID", s.LocalMachineID, reMachineID, 63, "machine id (lowercase letters, digits and '-'; `sandboxmesh local status` shows it)")
	}
	c.maxItems("spec.local", len(s.Local), 32)
	local := map[string]bool{}
	for i, l := range s.Local {
		if c.full() {
			break
		}
		p := fmt.Sprintf("spec.local[%d]", i)
		c.pattern(p+".name", l.Name, reObjectName, 63, "name (DNS label starting with a letter)")
		c.workload(p+".from", l.From)
		k := wkey(l.From)
		if local[k] {
			c.add(p+".from", "a baseline workload may be local at most once (%s)", k)
		}
		if forked[k] {
			c.add(p+".from", "a baseline workload cannot be both forked and local (%s)", k)
		}
		local[k] = true
		if len(l.Mappings) == 0 {
			c.add(p+".mappings", "at least one mapping is required")
		}
		c.maxItems(p+".mappings", len(l.Mappings), 16)
		for j, m := range l.Mappings {
			mp := fmt.Sprintf("%s.mappings[%d]", p, j)
			if m.Port < 1 || m.Port > 65535 {
				c.add(mp+".port", "must be between 1 and 65535 (got %d)", m.Port)
			}
			if m.ToLocal == "" {
				c.add(mp+".toLocal", "required")
			}
			c.maxLen(mp+".toLocal", m.ToLocal, 261)
		}
	}
	if s.Routing != nil {
		c.maxItems("spec.routing.forwards", len(s.Routing.Forwards), 16)
		for i, f := range s.Routing.Forwards {
			p := fmt.Sprintf("spec.routing.forwards[%d]", i)
			c.pattern(p+".name", f.Name, reObjectName, 63, "name (DNS label starting with a letter)")
			c.maxLen(p+".toLocal", f.ToLocal, 261)
		}
	}
	c.maxItems("spec.middleware", len(s.Middleware), 16)
	if !c.full() {
		_, errs := s.ResolveOverrides() // forwards, args, policy and match, with field paths
		for _, e := range errs {
			c.add(e.Path, "%s", e.Message)
		}
	}
	c.maxItems("spec.resources", len(s.Resources), 16)
	seenRes := map[string]bool{}
	for i, r := range s.Resources {
		if c.full() {
			break
		}
		p := fmt.Sprintf("spec.resources[%d]", i)
		c.pattern(p+".name", r.Name, reObjectName, 63, "name (DNS label starting with a letter)")
		if seenRes[r.Name] {
			c.add(p+".name", "resource names must be unique (%s twice)", r.Name)
		}
		seenRes[r.Name] = true
		switch {
		case r.Plugin == "":
			c.add(p+".plugin", "required: the name of a resource plugin of the org")
		case strings.Contains(r.Plugin, "@"):
			c.add(p+".plugin", "plugin versions are not supported (%q)", r.Plugin)
		default:
			c.pattern(p+".plugin", r.Plugin, reObjectName, 63, "plugin name (DNS label starting with a letter)")
		}
		if len(r.Params) > 32 {
			c.add(p+".params", "at most 32 params")
		}
		for _, k := range slices.Sorted(maps.Keys(r.Params)) {
			if len(k) > 63 || !reParamName.MatchString(k) {
				c.add(p+".params", "param name %q must match %s (at most 63 characters)", k, reParamName)
			}
			if len(r.Params[k]) > 4096 {
				c.add(p+".params."+k, "at most 4096 bytes")
			}
		}
	}
	if s.DefaultRouteGroup != nil {
		c.endpoints("spec.defaultRouteGroup.endpoints", s.DefaultRouteGroup.Endpoints)
	}
	return c.errs
}

func (c *checker) customizations(p string, cu *v1alpha1.Customizations) {
	c.maxItems(p+".images", len(cu.Images), 32)
	for j, im := range cu.Images {
		if im.Image == "" {
			c.add(fmt.Sprintf("%s.images[%d].image", p, j), "required")
		}
		c.maxLen(fmt.Sprintf("%s.images[%d].image", p, j), im.Image, 512)
	}
	c.maxItems(p+".env", len(cu.Env), 128)
	for j, e := range cu.Env {
		if c.full() {
			break
		}
		ep := fmt.Sprintf("%s.env[%d]", p, j)
		c.pattern(ep+".name", e.Name, reEnvName, 256, "environment variable name")
		switch e.Operation {
		case "", v1alpha1.EnvUpsert:
		case v1alpha1.EnvDelete:
			if e.Value != nil || e.ValueFrom != nil {
				c.add(ep, "a delete takes neither value nor valueFrom")
			}
		default:
			c.add(ep+".operation", "must be upsert or delete (got %q)", e.Operation)
		}
		if e.Value != nil && e.ValueFrom != nil {
			c.add(ep, "value and valueFrom are mutually exclusive")
		}
		if vf := e.ValueFrom; vf != nil {
			n := 0
			for _, set := range []bool{vf.Secret != nil, vf.ConfigMap != nil, vf.FieldRef != nil, vf.Fork != nil, vf.Resource != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				c.add(ep+".valueFrom", "exactly one of secret, configMap, fieldRef, fork, resource must be set")
			}
			if r := vf.Resource; r != nil {
				if r.Name == "" {
					c.add(ep+".valueFrom.resource.name", "required: one of spec.resources")
				}
				if !reOutputKey.MatchString(r.OutputKey) || len(r.OutputKey) > 253 {
					c.add(ep+".valueFrom.resource.outputKey", "%q must be <step>.<output>, e.g. provision.host", r.OutputKey)
				}
			}
			if vf.Fork != nil {
				c.workload(ep+".valueFrom.fork.forkOf", vf.Fork.ForkOf)
				c.maxLen(ep+".valueFrom.fork.expression", vf.Fork.Expression, 200)
				if vf.Fork.Expression == "" {
					c.add(ep+".valueFrom.fork.expression", "required, e.g. \"{{ .Service.Host }}:{{ .Service.Port }}\"")
				} else if _, err := vf.Fork.Resolve(v1alpha1.ForkService{Host: "fork.ns.svc", Port: 80}); err != nil {
					c.add(ep+".valueFrom.fork.expression", "%v", err)
				}
			}
		}
	}
	c.maxItems(p+".command", len(cu.Command), 64)
	c.maxItems(p+".args", len(cu.Args), 256)
	if pt := cu.Patch; pt != nil {
		switch pt.Type {
		case "", v1alpha1.PatchStrategic, v1alpha1.PatchMerge, v1alpha1.PatchJSON:
		default:
			c.add(p+".patch.type", "must be strategic, merge or json (got %q)", pt.Type)
		}
		if pt.Value == "" {
			c.add(p+".patch.value", "required")
		}
		c.maxLen(p+".patch.value", pt.Value, 65536)
	}
}

// ValidateRouteGroupSpec checks a route group spec as the CRD schema does.
func ValidateRouteGroupSpec(s *v1alpha1.RouteGroupSpec) FieldErrors {
	c := &checker{}
	if s.Cluster == "" {
		c.add("spec.cluster", "required: the name of a registered cluster")
	} else if fe := ValidateDNSName("spec.cluster", s.Cluster); fe != nil {
		c.errs = append(c.errs, *fe)
	}
	c.maxLen("spec.description", s.Description, 1024)
	m := s.Match
	n := 0
	for _, set := range []bool{m.Label != nil, m.Any != nil, m.All != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		c.add("spec.match", "exactly one of label, any, all must be set")
	}
	label := func(p string, l v1alpha1.LabelMatch) {
		if l.Key == "" {
			c.add(p+".key", "required")
		}
		c.maxLen(p+".key", l.Key, 317)
		c.maxLen(p+".value", l.Value, 256)
	}
	if m.Label != nil {
		label("spec.match.label", *m.Label)
	}
	for name, list := range map[string][]v1alpha1.MatchCriterion{"any": m.Any, "all": m.All} {
		if list == nil {
			continue
		}
		p := "spec.match." + name
		if len(list) == 0 {
			c.add(p, "must have at least one criterion")
		}
		c.maxItems(p, len(list), 32)
		for i, cr := range list {
			if c.full() {
				break
			}
			label(fmt.Sprintf("%s[%d].label", p, i), cr.Label)
		}
	}
	c.endpoints("spec.endpoints", s.Endpoints)
	c.ttl("spec.ttl", s.TTL, v1alpha1.TTLFromCreatedAt, v1alpha1.TTLFromUpdatedAt, v1alpha1.TTLFromNoMatchedSandboxes)
	return c.errs
}

// ValidateWorkloadReport checks an agent's workload report.
func ValidateWorkloadReport(r *WorkloadReport) FieldErrors {
	var c checker
	c.maxItems("workloads", len(r.Workloads), MaxWorkloads)
	for i, w := range r.Workloads {
		if c.full() {
			break
		}
		p := fmt.Sprintf("workloads[%d]", i)
		if w.Kind != string(v1alpha1.KindDeployment) && w.Kind != string(v1alpha1.KindRollout) {
			c.add(p+".kind", "want Deployment or Rollout (got %q)", w.Kind)
		}
		if fe := ValidateDNSName(p+".namespace", w.Namespace); fe != nil {
			c.errs = append(c.errs, *fe)
		}
		if fe := ValidateObjectName(p+".name", w.Name); fe != nil {
			c.errs = append(c.errs, *fe)
		}
		c.maxItems(p+".containers", len(w.Containers), 64)
		c.maxItems(p+".services", len(w.Services), 64)
		for j, ct := range w.Containers {
			c.maxLen(fmt.Sprintf("%s.containers[%d].image", p, j), ct.Image, 1024)
			c.maxLen(fmt.Sprintf("%s.containers[%d].name", p, j), ct.Name, 253)
		}
		for j, s := range w.Services {
			c.maxLen(fmt.Sprintf("%s.services[%d].name", p, j), s.Name, 253)
			c.maxItems(fmt.Sprintf("%s.services[%d].ports", p, j), len(s.Ports), 128)
		}
	}
	return c.errs
}
