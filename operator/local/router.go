package local

import (
	"sigs.k8s.io/controller-runtime/pkg/event"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// Router is the cluster end of local workloads as the operator uses it: the listeners, where their
// Services live, and the events that tell the sandbox controller a machine connected or went away.
type Router struct {
	*Forwarders
	Services ServiceConfig
	events   chan event.GenericEvent
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
