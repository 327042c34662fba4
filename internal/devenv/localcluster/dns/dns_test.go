package dns

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func query(t *testing.T, s *Server, name string, typ dnsmessage.Type) (dnsmessage.RCode, []dnsmessage.Resource) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(s.Answer(q)); err != nil {
		t.Fatalf("unpack answer for %s: %v", name, err)
	}
	if m.ID != 7 || !m.Response {
		t.Fatalf("bad header %+v", m.Header)
	}
	return m.RCode, m.Answers
}

func TestAnswer(t *testing.T) {
	s := New("cluster.local", nil)
	ready := true
	host := "web-0"
	s.Update([]*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "demo"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo"}, Spec: corev1.ServiceSpec{ClusterIP: "None"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "demo"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.org"}},
	}, []*discoveryv1.EndpointSlice{
		{ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "demo", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.244.0.7"}, Hostname: &host, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			}},
	})
	tests := []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		want  string
	}{
		{"echo.demo.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.96.0.20"},
		{"ECHO.demo.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.96.0.20"},
		{"echo.demo.svc.cluster.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, ""},
		{"web.demo.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.244.0.7"},
		{"web-0.web.demo.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.244.0.7"},
		{"10-244-0-9.demo.pod.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "10.244.0.9"},
		{"_http._tcp.echo.demo.svc.cluster.local.", dnsmessage.TypeSRV, dnsmessage.RCodeSuccess, "srv:80"},
		{"ext.demo.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, "cname:example.org."},
		{"nope.demo.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
		{"echo.demo.svc.cluster.local.demo.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
		{"example.org.", dnsmessage.TypeA, dnsmessage.RCodeNameError, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.typ.String(), func(t *testing.T) {
			rcode, ans := query(t, s, tc.name, tc.typ)
			if rcode != tc.rcode {
				t.Fatalf("rcode = %v, want %v", rcode, tc.rcode)
			}
			got := ""
			for _, a := range ans {
				switch r := a.Body.(type) {
				case *dnsmessage.AResource:
					got = netip.AddrFrom4(r.A).String()
				case *dnsmessage.SRVResource:
					got = "srv:" + itoa(r.Port)
				case *dnsmessage.CNAMEResource:
					got = "cname:" + r.CNAME.String()
				}
			}
			if got != tc.want {
				t.Errorf("answer = %q, want %q", got, tc.want)
			}
		})
	}
	if s.Answer([]byte{1, 2, 3}) != nil {
		t.Error("garbage got an answer")
	}
}

func itoa(v uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), v).String()[len("0.0.0.0:"):]
}

// FuzzAnswer feeds arbitrary bytes to the query parser: it must never panic and
// any answer must be a well-formed DNS message.
func FuzzAnswer(f *testing.F) {
	s := New("cluster.local", nil)
	s.Update([]*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "demo"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.20"}}}, nil)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, q []byte) {
		out := s.Answer(q)
		if out == nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
	})
}
