package local

import (
	"errors"
	"net/netip"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// TestObjects: the local Service keeps the baseline Service ports whose target (number, named container
// port, or unset) is a mapped port, and its EndpointSlice sends each to that mapping's listener.
func TestObjects(t *testing.T) {
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Namespace: "dev", Name: "sb"}}
	l := &smv1.Local{Name: "route", Mappings: []smv1.PortMapping{{Port: 8080, ToLocal: "localhost:8080"}, {Port: 9090, ToLocal: "localhost:9090"}}}
	base := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "admin", ContainerPort: 7070}}}}}}}}
	svcs := []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "route"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
		{Name: "web", Port: 80, TargetPort: intstr.FromString("http")},
		{Name: "admin", Port: 81, TargetPort: intstr.FromString("admin")}, // not mapped
		{Name: "grpc", Port: 9090},                                        // target unset: the port itself
		{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},             // not TCP
	}}}}
	cfg := ServiceConfig{Namespace: "sandboxmesh-system", PodName: "op-0", PodIP: "10.244.0.7"}
	svc, eps := Objects(cfg, sb, l, base, svcs, map[int32]int32{8080: 20001, 9090: 20002})
	if svc.Namespace != "sandboxmesh-system" || svc.Spec.Selector != nil || len(svc.Spec.Ports) != 2 {
		t.Fatalf("Service: %+v", svc)
	}
	for i, want := range [][2]int32{{80, 20001}, {9090, 20002}} {
		p, e := svc.Spec.Ports[i], eps.Ports[i]
		if p.Port != want[0] || p.TargetPort.IntVal != want[1] || *e.Port != want[1] || *e.Name != p.Name {
			t.Errorf("port %d: Service %+v EndpointSlice %+v, want %v", i, p, e, want)
		}
	}
	if eps.Endpoints[0].Addresses[0] != "10.244.0.7" || eps.Endpoints[0].TargetRef.Name != "op-0" || eps.AddressType != "IPv4" {
		t.Errorf("EndpointSlice: %+v", eps)
	}
	if err := (ServiceConfig{Namespace: "x", PodName: "p", PodIP: "not-an-ip"}).Validate(); err == nil {
		t.Error("a bad pod IP is accepted")
	}
}

// TestForwardersPorts: a key keeps its port, ports come from the range, a full range is an error, a
// released port is given out again only after the others.
func TestForwardersPorts(t *testing.T) {
	gw, err := localtunnel.NewGateway(localtunnel.GatewayConfig{Policy: localtunnel.ClusterPolicy{CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	f, err := NewForwarders(gw, "127.0.0.1", 42300, 42301, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, b, c := Key{"ns/sb", "l", 1}, Key{"ns/sb", "l", 2}, Key{"ns/other", "l", 1}
	pa, err := f.Ensure(a, Target{MachineID: "m"})
	if err != nil || pa < 42300 || pa > 42301 {
		t.Fatalf("a: %d %v", pa, err)
	}
	if again, _ := f.Ensure(a, Target{MachineID: "m2"}); again != pa {
		t.Fatalf("a again: %d, want %d", again, pa)
	}
	pb, err := f.Ensure(b, Target{MachineID: "m"})
	if err != nil || pb == pa {
		t.Fatalf("b: %d %v", pb, err)
	}
	if _, err := f.Ensure(c, Target{MachineID: "m"}); !errors.Is(err, ErrNoPort) {
		t.Fatalf("full range: %v", err)
	}
	f.Release("ns/sb", func(k Key) bool { return k == b })
	if _, ok := f.Port(a); ok {
		t.Fatal("a kept its port after Release")
	}
	if pc, err := f.Ensure(c, Target{MachineID: "m"}); err != nil || pc != pa {
		t.Fatalf("c after a was released: %d %v", pc, err)
	}
	if _, err := NewForwarders(gw, "", 10, 5, nil); err == nil {
		t.Fatal("an empty range is accepted")
	}
}
