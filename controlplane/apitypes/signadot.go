package apitypes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// answerFields are the fields of an answer that clients send back in a PUT
// (generated clients send the whole model): dropped whatever their value.
var answerFields = []string{"status", "endpoints", "routingKey", "createdAt", "updatedAt"}

// SandboxWireRules are the Signadot v2 sandbox fields SandboxMesh lacks
// (see docs/signadot-compat.md): accepted empty, refused with a value.
var SandboxWireRules = WireRules{
	"spec.endpoints":                      {Kind: WireExtract}, // sandbox.HostEndpoint, see SandboxLegacyEndpoints
	"spec.forks[].endpoints":              {Kind: WireExtract}, // sandbox.ForkEndpoint
	"spec.forks[].name":                   {Kind: WireUnsupported, Why: "a fork is named after its forkOf workload"},
	"spec.connection":                     {Kind: WireUnsupported, Why: "devbox connections do not exist here; local workloads use the sandboxmesh local tunnel"},
	"spec.disableSandboxTrafficManager":   {Kind: WireUnsupported, Why: "there is no sandbox traffic manager"},
	"spec.local[].env":                    {Kind: WireUnsupported, Why: "environment overrides of local workloads are not served"},
	"spec.local[].files":                  {Kind: WireUnsupported, Why: "file overrides of local workloads are not served"},
	"spec.local[].mappings[].appProtocol": {Kind: WireUnsupported, Why: "the tunnel carries TCP; the protocol is not needed"},
	"spec.forks[].customizations.env[].valueFrom.configMapKeyRef": {Kind: WireUnsupported, Why: "use valueFrom.configMap"},
	"spec.forks[].customizations.env[].valueFrom.secretKeyRef":    {Kind: WireUnsupported, Why: "use valueFrom.secret"},
}

// RouteGroupWireRules are the Signadot v2 route group fields SandboxMesh lacks.
var RouteGroupWireRules = WireRules{
	"spec.match.any[].any": {Kind: WireUnsupported, Why: "nested match criteria; list label criteria directly under any or all"},
	"spec.match.any[].all": {Kind: WireUnsupported, Why: "nested match criteria; list label criteria directly under any or all"},
	"spec.match.all[].any": {Kind: WireUnsupported, Why: "nested match criteria; list label criteria directly under any or all"},
	"spec.match.all[].all": {Kind: WireUnsupported, Why: "nested match criteria; list label criteria directly under any or all"},
}

func init() {
	for _, f := range answerFields {
		SandboxWireRules[f] = WireRule{Kind: WireReadOnly}
		RouteGroupWireRules[f] = WireRule{Kind: WireReadOnly}
	}
}

// ForkEndpoint is Signadot's deprecated sandbox.ForkEndpoint
// (spec.forks[].endpoints[]): a port of the fork to expose.
type ForkEndpoint struct {
	Name     string `json:"name"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// HostEndpoint is Signadot's deprecated sandbox.HostEndpoint
// (spec.endpoints[]): an in-cluster host and port to expose.
type HostEndpoint struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// LegacyEndpoints are a sandbox's endpoints in Signadot's deprecated shapes.
type LegacyEndpoints struct {
	// Spec is spec.endpoints.
	Spec []HostEndpoint
	// Forks[i] is spec.forks[i].endpoints.
	Forks map[int][]ForkEndpoint
}

// Empty reports whether there are none.
func (l LegacyEndpoints) Empty() bool { return len(l.Spec) == 0 && len(l.Forks) == 0 }

// reIndex finds the fork index in spec.forks[<i>].endpoints.
var reIndex = regexp.MustCompile(`\[([0-9]+)\]`)

// SandboxLegacyEndpoints decodes the spec.endpoints and spec.forks[].endpoints
// that DecodeWire extracted with SandboxWireRules (nulls accepted, unknown
// fields refused with their full paths).
func SandboxLegacyEndpoints(ext []Extracted) (LegacyEndpoints, error) {
	var out LegacyEndpoints
	var errs FieldErrors
	for _, e := range ext {
		switch e.Schema {
		case "spec.endpoints":
			if _, err := DecodeWire(e.Value, &out.Spec, nil); err != nil {
				errs = append(errs, prefixed(e.Path, err)...)
			}
		case "spec.forks[].endpoints":
			var eps []ForkEndpoint
			if _, err := DecodeWire(e.Value, &eps, nil); err != nil {
				errs = append(errs, prefixed(e.Path, err)...)
				continue
			}
			i := -1
			if m := reIndex.FindStringSubmatch(e.Path); m != nil {
				i, _ = strconv.Atoi(m[1])
			}
			if out.Forks == nil {
				out.Forks = map[int][]ForkEndpoint{}
			}
			out.Forks[i] = eps
		}
	}
	if len(errs) > 0 {
		return out, &WireError{Malformed: true, Fields: errs}
	}
	return out, nil
}

// prefixed puts path in front of the field paths of a DecodeWire error of a
// part of a body.
func prefixed(path string, err error) FieldErrors {
	we, ok := err.(*WireError)
	if !ok || len(we.Fields) == 0 {
		return FieldErrors{{Path: path, Message: err.Error()}}
	}
	out := make(FieldErrors, len(we.Fields))
	for i, f := range we.Fields {
		out[i] = FieldError{Path: path + f.Path, Message: f.Message}
	}
	return out
}

// legacyProtocol maps Signadot's endpoint protocols onto target schemes.
func legacyProtocol(p string) (string, bool) {
	switch strings.ToLower(p) {
	case "", "http":
		return "http", true
	case "grpc":
		return "grpc", true
	case "tcp":
		return "tcp", true
	}
	return "", false
}

// Apply adds the legacy endpoints to spec.defaultRouteGroup.endpoints, the
// one form SandboxMesh routes: a fork endpoint becomes
// <protocol>://<workload>.<namespace>.deploy:<port> (the fork of forkOf), a
// host endpoint <protocol>://<service>.<namespace>.svc:<port>. An endpoint
// already there with the same name and target (a client sending back what
// it read) is kept once; the same name with another target is an error.
func (l LegacyEndpoints) Apply(spec *v1alpha1.SandboxSpec) FieldErrors {
	if l.Empty() {
		return nil
	}
	c := &checker{}
	if spec.DefaultRouteGroup == nil {
		spec.DefaultRouteGroup = &v1alpha1.DefaultRouteGroup{}
	}
	add := func(path, name, target string) {
		for _, e := range spec.DefaultRouteGroup.Endpoints {
			if e.Name != name {
				continue
			}
			if e.Target != target {
				c.add(path+".name", "%q is also in spec.defaultRouteGroup.endpoints, with target %q instead of %q", name, e.Target, target)
			}
			return
		}
		spec.DefaultRouteGroup.Endpoints = append(spec.DefaultRouteGroup.Endpoints, v1alpha1.Endpoint{Name: name, Target: target})
	}
	check := func(path string, name string, port int32, protocol string) (string, bool) {
		ok := true
		if fe := ValidateObjectName(path+".name", name); fe != nil {
			c.add(fe.Path, "%s", fe.Message)
			ok = false
		}
		if port < 1 || port > 65535 {
			c.add(path+".port", "must be between 1 and 65535 (got %d)", port)
			ok = false
		}
		scheme, known := legacyProtocol(protocol)
		if !known {
			c.add(path+".protocol", "must be http, grpc or tcp (got %q)", protocol)
			ok = false
		}
		return scheme, ok
	}
	for i := range len(spec.Forks) {
		for j, e := range l.Forks[i] {
			p := fmt.Sprintf("spec.forks[%d].endpoints[%d]", i, j)
			scheme, ok := check(p, e.Name, e.Port, e.Protocol)
			of := spec.Forks[i].ForkOf
			target := fmt.Sprintf("%s://%s.%s.deploy:%d", scheme, of.Name, of.Namespace, e.Port)
			if ok && !reTarget.MatchString(target) {
				c.add(p, "the fork of %s/%s cannot be an endpoint target (%q is not <workload>.<namespace>.deploy)", of.Namespace, of.Name, target)
				ok = false
			}
			if ok {
				add(p, e.Name, target)
			}
		}
	}
	for i := range l.Forks {
		if i >= len(spec.Forks) {
			c.add(fmt.Sprintf("spec.forks[%d].endpoints", i), "names no fork")
		}
	}
	for j, e := range l.Spec {
		p := fmt.Sprintf("spec.endpoints[%d]", j)
		scheme, ok := check(p, e.Name, e.Port, e.Protocol)
		host := strings.TrimSuffix(strings.TrimSuffix(e.Host, "."), ".cluster.local")
		if strings.Count(host, ".") == 1 {
			host += ".svc"
		}
		target := fmt.Sprintf("%s://%s:%d", scheme, host, e.Port)
		if ok && (!strings.HasSuffix(host, ".svc") || !reTarget.MatchString(target)) {
			c.add(p+".host", "%q must be <service>.<namespace>.svc (optionally followed by .cluster.local)", e.Host)
			ok = false
		}
		if ok {
			add(p, e.Name, target)
		}
	}
	return c.errs
}

// Splice writes the legacy endpoints into spec, a JSON sandbox spec, as
// spec.endpoints and spec.forks[i].endpoints, so that answers show them as
// they were sent.
func (l LegacyEndpoints) Splice(spec []byte) ([]byte, error) {
	if l.Empty() {
		return spec, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(spec, &m); err != nil {
		return nil, fmt.Errorf("splice legacy endpoints: %w", err)
	}
	if len(l.Spec) > 0 {
		raw, err := json.Marshal(l.Spec)
		if err != nil {
			return nil, fmt.Errorf("splice spec.endpoints: %w", err)
		}
		m["endpoints"] = raw
	}
	if len(l.Forks) > 0 {
		var forks []map[string]json.RawMessage
		if err := json.Unmarshal(m["forks"], &forks); err != nil {
			return nil, fmt.Errorf("splice spec.forks[].endpoints: %w", err)
		}
		for i, eps := range l.Forks {
			if i < len(forks) && len(eps) > 0 {
				raw, err := json.Marshal(eps)
				if err != nil {
					return nil, fmt.Errorf("splice spec.forks[%d].endpoints: %w", i, err)
				}
				forks[i]["endpoints"] = raw
			}
		}
		raw, err := json.Marshal(forks)
		if err != nil {
			return nil, fmt.Errorf("splice spec.forks: %w", err)
		}
		m["forks"] = raw
	}
	return json.Marshal(m)
}

// OrgList answers GET /api/v2/orgs: the orgs the API key may use (its own
// org; every org for an admin key), in Signadot's orgs.GetOrgNameResponse shape.
type OrgList struct {
	Orgs []OrgRef `json:"orgs"`
}

// OrgRef names an org.
type OrgRef struct {
	Name string `json:"name"`
	// DisplayName is the name (SandboxMesh orgs have no other).
	DisplayName string `json:"displayName"`
}

// SandboxExplanation answers GET .../sandboxes/{name}/status/explain: why a
// sandbox is (not) ready, in words, built from its status, the states of its
// forks, the cluster's agent and the workloads it reports.
type SandboxExplanation struct {
	Status Readiness `json:"status"`
	// Explanation is Context as one text, a finding per line.
	Explanation string `json:"explanation"`
	// Context lists the findings, most important first.
	Context []string `json:"context"`
}

// DevMeshAnalysis answers GET .../clusters/{cluster}/devmesh/analyze: which
// workloads run the devmesh sidecar and which Services a sandbox could fork,
// from the agent's last workload report.
type DevMeshAnalysis struct {
	Cluster string `json:"cluster"`
	// ReportedAt is when the agent last reported its workloads (RFC 3339).
	ReportedAt string `json:"reportedAt"`
	// Truncated says the agent reported only the first MaxWorkloads.
	Truncated bool                 `json:"truncated,omitempty"`
	Workloads []DevMeshWorkload    `json:"workloads"`
	Summary   []DevMeshStatusCount `json:"summary"`
}

// DevMeshWorkload is one workload of a DevMeshAnalysis.
type DevMeshWorkload struct {
	Workload v1alpha1.WorkloadRef `json:"workload"`
	// StatusCounts counts its pods by sidecar status (Signadot's shape; the
	// agent reports the pod template, so all replicas share one status).
	StatusCounts []DevMeshStatusCount `json:"statusCounts"`
	// Status is ok (the pod template asks for the sidecar) or missing.
	Status string `json:"status"`
	// ForkableServices are the Services in front of the workload: a fork of
	// it gets a copy of each, and endpoint targets may name them
	// (http://<service>.<namespace>.svc:<port>).
	ForkableServices []WorkloadService `json:"forkableServices"`
}

// DevMeshStatusCount is a number of pods (or, in a summary, of workloads) with a sidecar status.
type DevMeshStatusCount struct {
	Status string `json:"status"`
	Count  int64  `json:"count"`
}

// Sidecar statuses of a DevMeshWorkload.
const (
	DevMeshOK      = "ok"
	DevMeshMissing = "missing"
)

// AgentSpec returns a stored sandbox spec as agents get it: without the
// legacy endpoint fields Splice added (the CRD does not have them, and their
// endpoints are in spec.defaultRouteGroup.endpoints). Specs without them (no
// "port" key at all, the usual case) are returned as they are, unparsed.
func AgentSpec(spec json.RawMessage) json.RawMessage {
	if !bytes.Contains(spec, []byte(`"port":`)) {
		return spec
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(spec, &m) != nil {
		return spec
	}
	_, changed := m["endpoints"]
	delete(m, "endpoints")
	var forks []map[string]json.RawMessage
	if len(m["forks"]) > 0 && json.Unmarshal(m["forks"], &forks) == nil {
		stripped := false
		for _, f := range forks {
			if _, ok := f["endpoints"]; ok {
				delete(f, "endpoints")
				stripped = true
			}
		}
		if stripped {
			if raw, err := json.Marshal(forks); err == nil {
				m["forks"], changed = raw, true
			}
		}
	}
	if !changed {
		return spec
	}
	out, err := json.Marshal(m)
	if err != nil {
		return spec
	}
	return out
}
