package inject

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sandboxmesh/sandboxmesh/devmesh/proxy"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

// appPort is one intercepted app port.
type appPort struct {
	// App is the app's container port.
	App int32
	// Name is the container port's name ("" when unnamed or given by annotation).
	Name string
	// Protocol is how the sidecar proxies it.
	Protocol proxy.Protocol
	// Listen is the sidecar's port for it in explicit mode (0 in iptables mode).
	Listen int32
}

// protocolFromName infers the protocol from a port name's prefix (Istio-style "grpc-api", "tcp-db").
func protocolFromName(name string) proxy.Protocol {
	prefix, _, _ := strings.Cut(strings.ToLower(name), "-")
	switch prefix {
	case "grpc", "h2c", "http2":
		return proxy.ProtocolH2C
	case "tcp", "tls", "https", "mongo", "mysql", "redis", "postgres", "postgresql", "amqp", "kafka":
		return proxy.ProtocolTCP
	}
	return proxy.ProtocolAuto
}

func parsePortNumber(s string) (int32, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q out of range", s)
	}
	return int32(n), nil
}

// parsePortsAnnotation parses AnnotationPorts: appPort[:sidecarPort][/protocol], comma-separated.
func parsePortsAnnotation(s string, mode Mode) ([]appPort, error) {
	var out []appPort
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		spec, protoText, _ := strings.Cut(f, "/")
		appText, listenText, hasListen := strings.Cut(spec, ":")
		app, err := parsePortNumber(appText)
		if err != nil {
			return nil, fmt.Errorf("[%d] %q: %w", i, f, err)
		}
		p := appPort{App: app}
		if hasListen {
			if mode != ModeExplicit {
				return nil, fmt.Errorf("[%d] %q: a sidecar port is only valid in %s mode", i, f, ModeExplicit)
			}
			if p.Listen, err = parsePortNumber(listenText); err != nil {
				return nil, fmt.Errorf("[%d] %q: %w", i, f, err)
			}
		}
		if p.Protocol, err = proxy.ParseProtocol(protoText); err != nil {
			return nil, fmt.Errorf("[%d] %q: protocol %q: want auto, http, h2c, grpc or tcp", i, f, protoText)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}

func parsePortSet(s string) (map[int32]bool, error) {
	out := map[int32]bool{}
	for i, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		p, err := parsePortNumber(f)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[p] = true
	}
	return out, nil
}

// interceptedPorts lists the app ports the sidecar fronts, with their sidecar ports in explicit mode,
// and checks that none collides with a sidecar port.
func interceptedPorts(cfg *Config, pod *corev1.Pod, mode Mode) ([]appPort, error) {
	excluded := map[int32]bool{}
	for _, p := range cfg.ExcludePorts {
		excluded[p] = true
	}
	if s, ok := pod.Annotations[AnnotationExcludePorts]; ok {
		set, err := parsePortSet(s)
		if err != nil {
			return nil, fmt.Errorf("annotation %s=%q: %w", AnnotationExcludePorts, s, err)
		}
		for p := range set {
			excluded[p] = true
		}
	}
	// Every port some container of the pod already uses, with who uses it.
	used := map[int32]string{}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			for _, p := range c.Ports {
				if _, ok := used[p.ContainerPort]; !ok {
					used[p.ContainerPort] = "container " + c.Name
				}
			}
		}
	}
	reserved := map[int32]string{cfg.AdminPort: "the sidecar's admin port"}
	if mode == ModeIPTables {
		reserved[cfg.InboundPort] = "the sidecar's inbound port"
	}

	for port, who := range sortedPorts(used) {
		if what, ok := reserved[port]; ok {
			return nil, fmt.Errorf("port conflict: %s uses port %d, which is %s", who, port, what)
		}
	}
	var candidates []appPort
	if s, ok := pod.Annotations[AnnotationPorts]; ok {
		list, err := parsePortsAnnotation(s, mode)
		if err != nil {
			return nil, fmt.Errorf("annotation %s=%q: %w", AnnotationPorts, s, err)
		}
		names := map[int32]string{}
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if _, ok := names[p.ContainerPort]; !ok {
					names[p.ContainerPort] = p.Name
				}
			}
		}
		for _, p := range list {
			p.Name = names[p.App]
			candidates = append(candidates, p)
		}
	} else {
		for _, c := range pod.Spec.Containers {
			if slices.Contains(cfg.ExcludeContainers, c.Name) {
				continue
			}
			for _, p := range c.Ports {
				if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
					continue
				}
				candidates = append(candidates, appPort{App: p.ContainerPort, Name: p.Name, Protocol: protocolFromName(p.Name)})
			}
		}
	}
	var out []appPort
	seen := map[int32]bool{}
	for _, p := range candidates {
		if excluded[p.App] || seen[p.App] {
			continue
		}
		seen[p.App] = true
		if what, ok := reserved[p.App]; ok {
			return nil, fmt.Errorf("port conflict: app port %d is %s (%d)", p.App, what, p.App)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no TCP container ports to intercept (declare containerPorts or set annotation %s)", AnnotationPorts)
	}
	if mode == ModeExplicit {
		listens := map[int32]bool{}
		for _, p := range out {
			if p.Listen == 0 {
				continue
			}
			if what, ok := reserved[p.Listen]; ok {
				return nil, fmt.Errorf("port conflict: sidecar port %d for app port %d is %s", p.Listen, p.App, what)
			}
			if who, ok := used[p.Listen]; ok {
				return nil, fmt.Errorf("port conflict: sidecar port %d for app port %d is used by %s", p.Listen, p.App, who)
			}
			if listens[p.Listen] {
				return nil, fmt.Errorf("port conflict: sidecar port %d given twice", p.Listen)
			}
			listens[p.Listen] = true
		}
		next := cfg.ExplicitPortBase
		for i := range out {
			if out[i].Listen != 0 {
				continue
			}
			for {
				_, r := reserved[next]
				_, u := used[next]
				if !r && !u && !listens[next] && !seen[next] {
					break
				}
				next++
			}
			if next > 65535 {
				return nil, fmt.Errorf("no free sidecar port above %d", cfg.ExplicitPortBase)
			}
			out[i].Listen = next
			listens[next] = true
		}
	}
	return out, nil
}

// sortedPorts iterates m in port order, so that errors are deterministic.
func sortedPorts(m map[int32]string) func(func(int32, string) bool) {
	return func(yield func(int32, string) bool) {
		keys := make([]int32, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

// sidecarPortName names the sidecar's port for an app port, so a Service can use it as a named
// targetPort: "sm-<app port name>" or "sm-<app port>". "" when no valid, unused name exists.
func sidecarPortName(p appPort, taken map[string]bool) string {
	base := p.Name
	if base == "" {
		base = strconv.Itoa(int(p.App))
	}
	name := strings.TrimRight(truncate("sm-"+base, 15), "-")
	if len(validation.IsValidPortName(name)) > 0 || taken[name] {
		return ""
	}
	taken[name] = true
	return name
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func portList(ports []appPort) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		s := strconv.Itoa(int(p.App))
		if p.Listen != 0 {
			s = strconv.Itoa(int(p.Listen)) + "->" + s
		}
		if p.Protocol != proxy.ProtocolAuto {
			s += "/" + string(p.Protocol)
		}
		parts[i] = s
	}
	return strings.Join(parts, ",")
}

// workload is the baseline workload a pod belongs to.
type workload struct {
	Kind, Name string
}

// workloadOf finds the pod's workload: AnnotationWorkload ("name" or "Kind/name"), else its controller
// owner (a ReplicaSet named <deployment>-<pod-template-hash> is its Deployment, one named
// <rollout>-<rollouts-pod-template-hash> its Argo Rollout).
func workloadOf(pod *corev1.Pod) (workload, error) {
	if s, ok := pod.Annotations[AnnotationWorkload]; ok {
		kind, name, hasKind := strings.Cut(strings.TrimSpace(s), "/")
		if !hasKind {
			kind, name = routeapi.KindDeployment, kind
		}
		if kind == "" || name == "" || strings.Contains(name, "/") || len(validation.IsDNS1123Subdomain(name)) > 0 {
			return workload{}, fmt.Errorf("annotation %s=%q: want name or Kind/name", AnnotationWorkload, s)
		}
		return workload{Kind: kind, Name: name}, nil
	}
	for _, o := range pod.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" && o.APIVersion == "apps/v1" {
			if h := pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(o.Name, "-"+h) {
				return workload{Kind: routeapi.KindDeployment, Name: strings.TrimSuffix(o.Name, "-"+h)}, nil
			}
			// Argo Rollouts label their ReplicaSets' pods with their own hash.
			if h := pod.Labels["rollouts-pod-template-hash"]; h != "" && strings.HasSuffix(o.Name, "-"+h) {
				return workload{Kind: routeapi.KindRollout, Name: strings.TrimSuffix(o.Name, "-"+h)}, nil
			}
		}
		return workload{Kind: o.Kind, Name: o.Name}, nil
	}
	return workload{}, fmt.Errorf("no workload: the pod has no controller owner; set annotation %s", AnnotationWorkload)
}
