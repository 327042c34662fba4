package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/localtunnel"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// Router is the cluster end of local workloads as the operator uses it: the listeners, where their
// Services live, and the events that tell the sandbox controller a machine connected or went away.
type Router struct {
	*Forwarders
	Services ServiceConfig
	events   chan event.GenericEvent
	catalog  atomic.Pointer[client.Reader]
}

// SetCatalog makes the gateway answer the machines' catalog requests (their root mode's names) from c, the
// manager's cache: every Service SandboxMesh did not make, with its TCP ports.
func (r *Router) SetCatalog(c client.Reader) { r.catalog.Store(&c) }

// Catalog lists the Services for the gateway (localtunnel.GatewayConfig.Catalog).
func (r *Router) Catalog(ctx context.Context) ([]localtunnel.CatalogService, error) {
	c := r.catalog.Load()
	if c == nil {
		return nil, errors.New("the operator is starting: try again")
	}
	var list corev1.ServiceList
	if err := (*c).List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list Services: %w", err)
	}
	out := make([]localtunnel.CatalogService, 0, len(list.Items))
	for i := range list.Items {
		s := &list.Items[i]
		if smv1.IsManaged(s.Labels) {
			continue
		}
		cs := localtunnel.CatalogService{Name: s.Name, Namespace: s.Namespace, Ports: []int32{}}
		for _, p := range s.Spec.Ports {
			if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
				cs.Ports = append(cs.Ports, p.Port)
			}
		}
		out = append(out, cs)
	}
	return out, nil
}

// NewRouter returns a Router of f whose Services follow cfg.
func NewRouter(f *Forwarders, cfg ServiceConfig) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Router{Forwarders: f, Services: cfg, events: make(chan event.GenericEvent, 64)}, nil
}

// Notify tells the sandbox controller that machine's tunnel connected or went away: the gateway calls it.
// It never blocks the caller and never drops a notification.
func (r *Router) Notify(machine string) {
	ev := event.GenericEvent{Object: MachineObject(machine)}
	select {
	case r.events <- ev:
	default:
		go func() { r.events <- ev }()
	}
}

// Events are Notify's, for a source.Channel: each carries MachineObject of the machine.
func (r *Router) Events() <-chan event.GenericEvent { return r.events }

// MachineObject stands for a machine in an event: a Sandbox object named after the machine id (never
// stored; MachineOf reads it back).
func MachineObject(machine string) *smv1.Sandbox {
	sb := &smv1.Sandbox{}
	sb.Name = machine
	sb.Annotations = map[string]string{annotationMachineEvent: "true"}
	return sb
}

// MachineOf returns the machine an event's object stands for, if it is a MachineObject.
func MachineOf(o interface {
	GetName() string
	GetAnnotations() map[string]string
}) (string, bool) {
	if o.GetAnnotations()[annotationMachineEvent] != "true" {
		return "", false
	}
	return o.GetName(), true
}

const annotationMachineEvent = "sandboxmesh.dev/local-machine-event"

// Connected reports whether sb's machine (spec.localMachineID) holds a tunnel.
func (r *Router) Connected(sb *smv1.Sandbox) bool {
	return sb.Spec.LocalMachineID != "" && r.Gateway().Connected(sb.Spec.LocalMachineID)
}

// LocalService says which Service leads to local workload l of sb (routing.LocalDestinations): the
// Service of Objects, while sb's machine is connected and every mapping of l has its listener.
func (r *Router) LocalService(sb *smv1.Sandbox, l *smv1.Local) (namespace, name string, ok bool) {
	if !r.Connected(sb) {
		return "", "", false
	}
	for _, m := range l.Mappings {
		if _, ok := r.Port(Key{Sandbox: sb.Namespace + "/" + sb.Name, Local: l.Name, Port: m.Port}); !ok {
			return "", "", false
		}
	}
	return r.Services.Namespace, naming.LocalName(sb.Namespace, sb.Name, l.Name), true
}

// Config configures a Router with its own gateway (New).
type Config struct {
	// Services says where the local workloads' Services live and which pod they name.
	Services ServiceConfig
	// ListenHost is the host the mappings' listeners bind ("" : every address of the pod).
	ListenHost string
	// FirstPort and LastPort bound the listeners' ports.
	FirstPort, LastPort int32
	// Policy checks the machines' outbound destinations (localtunnel.ClusterPolicy with the cluster's pod
	// and Service CIDRs); required.
	Policy localtunnel.Policy
	// Heartbeat is the tunnels' keepalive interval (0: localtunnel's default); a machine that misses
	// it is disconnected, and its local workloads' routes go.
	Heartbeat time.Duration
	// Log receives the gateway's and the listeners' events (nil: discarded).
	Log *slog.Logger
}

// New returns a Router with a new gateway whose machine events reach the sandbox controller (Notify).
// Serve the gateway with Router.Gateway().Serve; Close closes both.
func New(cfg Config) (*Router, error) {
	var r *Router
	ready := make(chan struct{})
	gw, err := localtunnel.NewGateway(localtunnel.GatewayConfig{Policy: cfg.Policy, Heartbeat: cfg.Heartbeat, Log: cfg.Log,
		OnChange: func(ev localtunnel.MachineEvent) {
			<-ready
			r.Notify(ev.MachineID)
		},
		Catalog: func(ctx context.Context) ([]localtunnel.CatalogService, error) {
			<-ready
			return r.Catalog(ctx)
		}})
	if err != nil {
		return nil, err
	}
	f, err := NewForwarders(gw, cfg.ListenHost, cfg.FirstPort, cfg.LastPort, cfg.Log)
	if err != nil {
		gw.Close()
		return nil, err
	}
	if r, err = NewRouter(f, cfg.Services); err != nil {
		gw.Close()
		return nil, err
	}
	close(ready)
	return r, nil
}

// Close closes the listeners and the gateway (the machines' sessions end).
func (r *Router) Close() {
	r.Forwarders.Close()
	_ = r.Gateway().Close()
}
