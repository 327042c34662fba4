package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func operatorPod(name string, ready bool, port int32) corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}}}
	c := corev1.Container{Name: "operator", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 8080}}}
	if port != 0 {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: "local-gateway", ContainerPort: port})
	}
	p.Spec.Containers = []corev1.Container{c}
	return p
}

func lease(holder string) *coordinationv1.Lease {
	return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}
}

func TestPickOperatorPod(t *testing.T) {
	deleting := operatorPod("op-d", true, 15013)
	deleting.DeletionTimestamp = &metav1.Time{}
	pending := operatorPod("op-p", true, 15013)
	pending.Status.Phase = corev1.PodPending
	for _, tc := range []struct {
		name     string
		pods     []corev1.Pod
		lease    *coordinationv1.Lease
		pod, err string
		port     int
	}{
		{name: "one pod, port from its spec", pods: []corev1.Pod{operatorPod("op-a", true, 16000)}, pod: "op-a", port: 16000},
		{name: "one pod, default port", pods: []corev1.Pod{operatorPod("op-a", true, 0)}, pod: "op-a", port: 15013},
		{name: "unready, deleting and pending pods are skipped", pods: []corev1.Pod{operatorPod("op-u", false, 1), deleting, pending, operatorPod("op-a", true, 15013)}, pod: "op-a", port: 15013},
		{name: "several: the leader", pods: []corev1.Pod{operatorPod("op-a", true, 15013), operatorPod("op-b", true, 15013)}, lease: lease("op-b_3f2a9c1e-uuid"), pod: "op-b", port: 15013},
		{name: "several, no lease", pods: []corev1.Pod{operatorPod("op-a", true, 15013), operatorPod("op-b", true, 15013)}, err: "no leader in Lease sandboxmesh-operator.sandboxmesh.dev"},
		{name: "several, leader not ready", pods: []corev1.Pod{operatorPod("op-a", true, 15013), operatorPod("op-b", true, 15013), operatorPod("op-c", false, 15013)}, lease: lease("op-c_x"), err: `leader "op-c"`},
		{name: "none", pods: nil, err: "no ready operator pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, port, err := pickOperatorPod(tc.pods, tc.lease)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || pod != tc.pod || port != tc.port {
				t.Fatalf("got %s:%d %v, want %s:%d", pod, port, err, tc.pod, tc.port)
			}
		})
	}
}

func TestProxyEnv(t *testing.T) {
	got := strings.Join(proxyEnv("127.0.0.1:15080"), " ")
	for _, want := range []string{"ALL_PROXY=socks5h://127.0.0.1:15080", "all_proxy=socks5h://127.0.0.1:15080", "HTTP_PROXY=http://127.0.0.1:15080", "https_proxy=http://127.0.0.1:15080", "NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1"} {
		if !strings.Contains(got, want) {
			t.Errorf("proxy env lacks %s: %s", want, got)
		}
	}
}

func FuzzParseAllowList(f *testing.F) {
	for _, s := range []string{
		`{"sandboxes":{"mine":[{"local":"route","toLocal":"localhost:8083"}]}}`,
		`{"sandboxes":{}}`, `{}`, `{"sandboxes":{"":[]}}`, `{"sandboxes":{"a":[{"local":""}]}}`,
		`{"other":1}`, `{"sandboxes":null} {}`, `[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseAllowList(b)
		if err != nil {
			return
		}
		// What parses writes and parses back the same.
		out, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := parseAllowList(out)
		if err != nil || !reflect.DeepEqual(l, l2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, l, l2)
		}
	})
}
