package local

import (
	"fmt"
	"net/netip"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// ServiceConfig says where the Services of local workloads live and what their endpoints are.
type ServiceConfig struct {
	// Namespace is the operator's namespace: the Services and EndpointSlices live there.
	Namespace string
	// PodName and PodIP are the operator pod's (the Forwarders listen on it).
	PodName, PodIP string
}

// Validate checks the config.
func (c ServiceConfig) Validate() error {
	switch {
	case c.Namespace == "":
		return fmt.Errorf("local: the operator's namespace is required")
	case c.PodName == "":
		return fmt.Errorf("local: the operator's pod name is required (downward API: metadata.name)")
	}
	if _, err := netip.ParseAddr(c.PodIP); err != nil {
		return fmt.Errorf("local: the operator's pod IP %q: %w (downward API: status.podIP)", c.PodIP, err)
	}
	return nil
}

// Labels are those of the Service and EndpointSlice of local workload local of sb.
func Labels(sb *smv1.Sandbox, local string) map[string]string {
	return map[string]string{
		smv1.LabelManagedBy:          smv1.ManagedBy,
		naming.LabelSandbox:          sb.Name,
		naming.LabelSandboxNamespace: sb.Namespace,
		naming.LabelLocal:            local,
	}
}

// Objects returns the Service (without selector) and the EndpointSlice of local workload l of sb. They
// have a port for every port of the baseline's Services (services, those selecting the baseline whose pod
// template is baseline, nil when unknown) whose target is one of l's mappings; the EndpointSlice sends it
// to that mapping's listener (ports: mapping port → listener port) on the operator's pod. A Service port
// keeps the baseline Service port's number, so routes map ports as they do for a fork.
func Objects(cfg ServiceConfig, sb *smv1.Sandbox, l *smv1.Local, baseline *appsv1.Deployment, services []corev1.Service, ports map[int32]int32) (*corev1.Service, *discoveryv1.EndpointSlice) {
	name := naming.LocalName(sb.Namespace, sb.Name, l.Name)
	labels := Labels(sb, l.Name)
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cfg.Namespace, Labels: labels},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
	}
	epLabels := map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "sandboxmesh.dev"}
	for k, v := range labels {
		epLabels[k] = v
	}
	family := discoveryv1.AddressTypeIPv4
	if a, err := netip.ParseAddr(cfg.PodIP); err == nil && a.Is6() {
		family = discoveryv1.AddressTypeIPv6
	}
	eps := &discoveryv1.EndpointSlice{
		TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: cfg.Namespace, Labels: epLabels},
		AddressType: family,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{cfg.PodIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: cfg.Namespace, Name: cfg.PodName}}},
	}
	sorted := append([]corev1.Service(nil), services...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	seen := map[int32]bool{}
	for _, bs := range sorted {
		for _, p := range bs.Spec.Ports {
			if seen[p.Port] || p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				continue
			}
			lp, ok := ports[targetPort(p, baseline)]
			if !ok {
				continue
			}
			seen[p.Port] = true
			pn := fmt.Sprintf("port-%d", p.Port)
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: pn, Protocol: corev1.ProtocolTCP, AppProtocol: p.AppProtocol,
				Port: p.Port, TargetPort: intstr.FromInt32(lp)})
			eps.Ports = append(eps.Ports, discoveryv1.EndpointPort{Name: ptr(pn), Protocol: ptr(corev1.ProtocolTCP), AppProtocol: p.AppProtocol, Port: ptr(lp)})
		}
	}
	return svc, eps
}

// targetPort is the container port a Service port leads to: its number, a named port of the baseline's
// pod template, or (unset) the Service port's own number.
func targetPort(p corev1.ServicePort, baseline *appsv1.Deployment) int32 {
	switch {
	case p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal != 0:
		return p.TargetPort.IntVal
	case p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "" && baseline != nil:
		for _, c := range baseline.Spec.Template.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == p.TargetPort.StrVal {
					return cp.ContainerPort
				}
			}
		}
		return 0
	}
	return p.Port
}

func ptr[T any](v T) *T { return &v }
