package v1alpha1

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// OverridePolicy is the value of an override middleware's policy argument.
type OverridePolicy struct {
	// ExceptStatusCodes: the forward's answer is used unless its status is one of these; then the request
	// falls through to the workload.
	ExceptStatusCodes []int32 `json:"exceptStatusCodes,omitempty"`
}

// ResolvedOverride is an override middleware of a sandbox with its references followed.
type ResolvedOverride struct {
	// Forward the keyed requests go to first.
	Forward Forward
	// Workload is the baseline workload whose keyed requests are overridden.
	Workload WorkloadRef
	// Entry is the name of the sandbox's workload the middleware matched (a fork's baseline name or a
	// virtual workload's name).
	Entry string
	// Policy of the fall-through; nil: the forward's answer is used only when it says so (header
	// sm-override: true or sd-override: true).
	Policy *OverridePolicy
}

// AsLocal is the override's forward as a local workload of the sandbox: the machinery of spec.local
// (listener, Service, tunnel) carries it.
func (o ResolvedOverride) AsLocal() Local {
	return Local{Name: o.Forward.Name, From: o.Workload, Mappings: []PortMapping{{Port: o.Forward.Port, ToLocal: o.Forward.ToLocal}}}
}

// SpecFieldError is a problem at a field path of a Sandbox (spec.middleware[0].args[1]...).
type SpecFieldError struct {
	Path    string
	Message string
}

func (e SpecFieldError) Error() string { return e.Path + ": " + e.Message }

// ResolveOverrides follows the references of spec.middleware (forwards, matched workloads) and returns the
// overrides in the order of the middleware, with every problem at its field path. An override with a
// problem is left out.
func (s *SandboxSpec) ResolveOverrides() ([]ResolvedOverride, []SpecFieldError) {
	var errs []SpecFieldError
	bad := func(p, format string, a ...any) { errs = append(errs, SpecFieldError{p, fmt.Sprintf(format, a...)}) }
	forwards := map[string]Forward{}
	if s.Routing != nil {
		for i, f := range s.Routing.Forwards {
			p := fmt.Sprintf("spec.routing.forwards[%d]", i)
			if _, dup := forwards[f.Name]; dup {
				bad(p+".name", "forward names must be unique (%s twice)", f.Name)
			}
			forwards[f.Name] = f
			for _, l := range s.Local {
				if l.Name == f.Name {
					bad(p+".name", "%q is also the name of a local workload", f.Name)
				}
			}
			if f.Port < 1 || f.Port > 65535 {
				bad(p+".port", "must be between 1 and 65535 (got %d)", f.Port)
			}
			if f.ToLocal == "" {
				bad(p+".toLocal", "required: host:port on the developer's machine")
			}
			if f.AppProtocol != "" && f.AppProtocol != "http" && f.AppProtocol != "grpc" {
				bad(p+".appProtocol", "must be http or grpc (got %q)", f.AppProtocol)
			}
		}
		if len(s.Routing.Forwards) > 0 && s.LocalMachineID == "" {
			bad("spec.localMachineID", "required with spec.routing.forwards: the machine the forwards lead to (`sandboxmesh local status` shows it)")
		}
	}
	entries := s.workloadEntries()
	used := map[string]string{}
	var out []ResolvedOverride
	for i, m := range s.Middleware {
		p := fmt.Sprintf("spec.middleware[%d]", i)
		if m.Name != MiddlewareOverride {
			bad(p+".name", "unknown middleware %q (supported: %s)", m.Name, MiddlewareOverride)
			continue
		}
		n := len(errs)
		o := ResolvedOverride{}
		seen := map[string]bool{}
		for j, a := range m.Args {
			ap := fmt.Sprintf("%s.args[%d]", p, j)
			if seen[a.Name] {
				bad(ap+".name", "argument %q given twice", a.Name)
			}
			seen[a.Name] = true
			switch a.Name {
			case OverrideArgHost, "logHost": // logHost (Signadot's log forward) is accepted and not used
				if a.ValueFrom == nil || a.ValueFrom.Forward == "" {
					bad(ap+".valueFrom.forward", "required: the name of one of spec.routing.forwards")
					continue
				}
				f, ok := forwards[a.ValueFrom.Forward]
				if !ok {
					bad(ap+".valueFrom.forward", "%q is not one of spec.routing.forwards", a.ValueFrom.Forward)
					continue
				}
				if a.Name == OverrideArgHost {
					if prev, dup := used[f.Name]; dup {
						bad(ap+".valueFrom.forward", "forward %q already serves %s", f.Name, prev)
					}
					used[f.Name] = p
					o.Forward = f
				}
			case OverrideArgPolicy:
				var pol OverridePolicy
				dec := json.NewDecoder(strings.NewReader(a.Value))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&pol); err != nil {
					bad(ap+".value", `want JSON {"exceptStatusCodes": [404, 503]}: %v`, err)
					continue
				}
				if len(pol.ExceptStatusCodes) > 16 {
					bad(ap+".value", "at most 16 exceptStatusCodes")
				}
				for k, c := range pol.ExceptStatusCodes {
					if c < 100 || c > 599 {
						bad(fmt.Sprintf("%s.value.exceptStatusCodes[%d]", ap, k), "not an HTTP status (%d)", c)
					}
				}
				o.Policy = &pol
			default:
				bad(ap+".name", "unknown argument %q of the override middleware (known: %s, %s, logHost)", a.Name, OverrideArgHost, OverrideArgPolicy)
			}
		}
		if !seen[OverrideArgHost] {
			bad(p+".args", "the override middleware needs the argument %s (valueFrom.forward)", OverrideArgHost)
		}
		var matched []string
		for j, mt := range m.Match {
			if _, err := path.Match(mt.Workload, ""); err != nil {
				bad(fmt.Sprintf("%s.match[%d].workload", p, j), "bad glob %q: %v", mt.Workload, err)
				continue
			}
			for name := range entries {
				if ok, _ := path.Match(mt.Workload, name); ok && !slices.Contains(matched, name) {
					matched = append(matched, name)
				}
			}
		}
		sort.Strings(matched)
		switch {
		case len(m.Match) == 0:
			bad(p+".match", "required: the workload (a fork's baseline name or a virtual workload's name) to override")
		case len(matched) == 0:
			bad(p+".match", "matches none of the sandbox's forks and virtual workloads (%s)", strings.Join(sortedKeys(entries), ", "))
		case len(matched) > 1:
			bad(p+".match", "matches %d workloads (%s); an override acts on one", len(matched), strings.Join(matched, ", "))
		}
		if len(errs) > n {
			continue
		}
		o.Entry, o.Workload = matched[0], entries[matched[0]]
		out = append(out, o)
	}
	return out, errs
}

// OverrideFor returns the override of the sandbox's keyed requests to workload w, if one resolves.
func (s *SandboxSpec) OverrideFor(w WorkloadRef) (ResolvedOverride, bool) {
	if len(s.Middleware) == 0 {
		return ResolvedOverride{}, false
	}
	ovs, _ := s.ResolveOverrides()
	for _, o := range ovs {
		if o.Workload.Namespace == w.Namespace && o.Workload.Name == w.Name && kindOr(o.Workload.Kind) == kindOr(w.Kind) {
			return o, true
		}
	}
	return ResolvedOverride{}, false
}

// workloadEntries names the sandbox's forks (by their baseline's name) and virtual workloads.
func (s *SandboxSpec) workloadEntries() map[string]WorkloadRef {
	m := map[string]WorkloadRef{}
	for _, f := range s.Forks {
		m[f.ForkOf.Name] = f.ForkOf
	}
	for _, v := range s.Virtual {
		m[v.Name] = v.Workload
	}
	return m
}

func kindOr(k WorkloadKind) WorkloadKind {
	if k == "" {
		return KindDeployment
	}
	return k
}

func sortedKeys(m map[string]WorkloadRef) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
