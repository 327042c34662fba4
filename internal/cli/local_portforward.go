package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// Where `local connect` finds the operator's local gateway with PortForward.
const (
	// DefaultOperatorNamespace is the namespace the chart is installed in by convention.
	DefaultOperatorNamespace = "sandboxmesh-system"
	// operatorSelector selects the operator's pods (the chart's labels).
	operatorSelector = "app.kubernetes.io/part-of=sandboxmesh,app.kubernetes.io/component=operator"
	// operatorLease is the operator's leader-election Lease.
	operatorLease = "sandboxmesh-operator.sandboxmesh.dev"
	// gatewayPortName is the operator container's port of the local gateway.
	gatewayPortName = "local-gateway"
	// defaultGatewayPort is the chart's localWorkloads.port.
	defaultGatewayPort = 15013
)

// gatewayDialer returns how the daemon reaches the cluster's local gateway
// for conn: a TCP dial of proxyAddress, or a Kubernetes port-forward to the
// operator pod (found again on every dial, so a new leader is followed).
func (a *App) gatewayDialer(conn localtunnel.Connection, log *slog.Logger) (func(context.Context) (net.Conn, error), error) {
	switch conn.ConnectionType() {
	case localtunnel.ProxyAddress:
		return localtunnel.TCPDialer(conn.ProxyAddress), nil
	case localtunnel.PortForward:
		rc, err := a.kubeConfig(conn)
		if err != nil {
			return nil, err
		}
		ns := a.getenv("SANDBOXMESH_OPERATOR_NAMESPACE")
		if ns == "" {
			ns = DefaultOperatorNamespace
		}
		pf, err := newPortForwarder(rc, ns, log)
		if err != nil {
			return nil, err
		}
		return pf.dial, nil
	}
	return nil, fmt.Errorf("local.connections[%s].type %q is not supported", conn.Cluster, conn.Type)
}

// portForwarder opens one port-forward stream to the operator pod's local
// gateway port per dial.
type portForwarder struct {
	rc        *rest.Config
	cs        kubernetes.Interface
	namespace string
	log       *slog.Logger
	reqID     atomic.Int64
}

func newPortForwarder(rc *rest.Config, namespace string, log *slog.Logger) (*portForwarder, error) {
	rc = rest.CopyConfig(rc)
	rc.Timeout = 15 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	return &portForwarder{rc: rc, cs: cs, namespace: namespace, log: log}, nil
}

// pickOperatorPod chooses the pod whose gateway to reach: the only ready
// operator pod, or, with several, the leader named by the Lease's
// holderIdentity (controller-runtime's "<pod>_<uuid>"). It returns the pod's
// name and its gateway port.
func pickOperatorPod(pods []corev1.Pod, lease *coordinationv1.Lease) (string, int, error) {
	var ready []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(p) {
			ready = append(ready, p)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].Name < ready[j].Name })
	switch len(ready) {
	case 0:
		return "", 0, fmt.Errorf("no ready operator pod (%d found with %s)", len(pods), operatorSelector)
	case 1:
		return ready[0].Name, gatewayPort(ready[0]), nil
	}
	if lease == nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		return "", 0, fmt.Errorf("%d ready operator pods and no leader in Lease %s", len(ready), operatorLease)
	}
	holder, _, _ := strings.Cut(*lease.Spec.HolderIdentity, "_")
	for _, p := range ready {
		if p.Name == holder {
			return p.Name, gatewayPort(p), nil
		}
	}
	return "", 0, fmt.Errorf("the leader %q (Lease %s) is not a ready operator pod", holder, operatorLease)
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func gatewayPort(p corev1.Pod) int {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == gatewayPortName {
				return int(port.ContainerPort)
			}
		}
	}
	return defaultGatewayPort
}

// findPod lists the operator's pods (and, with several, its Lease) and picks one.
func (f *portForwarder) findPod(ctx context.Context) (string, int, error) {
	pods, err := f.cs.CoreV1().Pods(f.namespace).List(ctx, metav1.ListOptions{LabelSelector: operatorSelector})
	if err != nil {
		return "", 0, fmt.Errorf("list operator pods in %s: %w", f.namespace, err)
	}
	var lease *coordinationv1.Lease
	if len(pods.Items) > 1 {
		lease, err = f.cs.CoordinationV1().Leases(f.namespace).Get(ctx, operatorLease, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", 0, fmt.Errorf("read Lease %s/%s: %w", f.namespace, operatorLease, err)
		}
	}
	name, port, err := pickOperatorPod(pods.Items, lease)
	if err != nil {
		return "", 0, fmt.Errorf("namespace %s: %w (is the chart installed there? set SANDBOXMESH_OPERATOR_NAMESPACE)", f.namespace, err)
	}
	return name, port, nil
}

// dial opens a port-forward to the operator pod and returns its data stream
// as a connection.
func (f *portForwarder) dial(ctx context.Context) (net.Conn, error) {
	pod, port, err := f.findPod(ctx)
	if err != nil {
		return nil, err
	}
	u := f.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(f.namespace).Name(pod).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(f.rc)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s: %w", f.namespace, pod, err)
	}
	var dialer httpstream.Dialer = spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	if ws, err := portforward.NewSPDYOverWebsocketDialer(u, f.rc); err == nil {
		dialer = portforward.NewFallbackDialer(ws, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	type result struct {
		c   httpstream.Connection
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- result{c, err}
	}()
	var hc httpstream.Connection
	select {
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward to %s/%s: %w", f.namespace, pod, ctx.Err())
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("port-forward to %s/%s: %w", f.namespace, pod, r.err)
		}
		hc = r.c
	}
	id := strconv.FormatInt(f.reqID.Add(1), 10)
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, id)
	errStream, err := hc.CreateStream(h)
	if err != nil {
		hc.Close()
		return nil, fmt.Errorf("port-forward to %s/%s:%d: error stream: %w", f.namespace, pod, port, err)
	}
	errStream.Close() // we only read from it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := hc.CreateStream(h)
	if err != nil {
		hc.Close()
		return nil, fmt.Errorf("port-forward to %s/%s:%d: data stream: %w", f.namespace, pod, port, err)
	}
	c := &pfConn{Stream: data, conn: hc, addr: pfAddr(fmt.Sprintf("%s/%s:%d", f.namespace, pod, port))}
	go func() {
		b, _ := io.ReadAll(io.LimitReader(errStream, 4096))
		if len(b) > 0 {
			f.log.Warn("port-forward error", "pod", pod, "port", port, "err", string(b))
			c.Close()
		}
	}()
	return c, nil
}

// pfAddr names a port-forward endpoint.
type pfAddr string

func (a pfAddr) Network() string { return "portforward" }
func (a pfAddr) String() string  { return string(a) }

// pfConn is a port-forward data stream as a net.Conn. Deadlines are not
// supported by SPDY streams: a deadline closes the connection when it passes
// (the tunnel's handshake and heartbeats rely on that to end a stuck peer).
type pfConn struct {
	httpstream.Stream
	conn httpstream.Connection
	addr pfAddr

	once  sync.Once
	mu    sync.Mutex
	timer *time.Timer
}

func (c *pfConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		c.Stream.Reset()
		c.conn.Close()
	})
	return nil
}

func (c *pfConn) LocalAddr() net.Addr  { return pfAddr("local") }
func (c *pfConn) RemoteAddr() net.Addr { return c.addr }

func (c *pfConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if t.IsZero() {
		return nil
	}
	c.timer = time.AfterFunc(time.Until(t), func() { _ = c.Close() })
	return nil
}

func (c *pfConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *pfConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }
