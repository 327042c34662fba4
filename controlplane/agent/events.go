package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// Kubernetes Events about the CRs (docs/controlplane.md, "Conditions and
// events"). The operator records them through controller-runtime's
// events.k8s.io/v1 recorder; the agent reads them through the same API, which
// also serves Events written as core/v1 (one storage).
//
// Cost: ONE list per EventsInterval (default 10s) of the Events in the
// agent's namespace whose regarding.apiVersion is sandboxmesh.dev/v1alpha1
// (a field selector the API server evaluates, from its watch cache), grouped
// in memory by kind and name. It does not grow with the number of list
// calls per sandbox: 1,000 sandboxes cost one list whose size is the Events
// of the last hour (the API server's event TTL) about the CRs, not 1,000
// lists. Between lists the grouping is reused, so the status loop's ticks
// (default 2s) read no Events, and an object's reported events change at
// most once per EventsInterval: an event series whose count grows cannot make
// the agent re-report faster than that.

// eventIndex is the last list of Events, grouped by kind/name and sorted
// newest first, in the report's shape (not the Events themselves: 5,000
// Events are a few MB).
type eventIndex struct {
	at     time.Time
	byObj  map[string][]observedEvent // kind ("Sandbox", "RouteGroup")/name
	listed bool
}

// observedEvent is an Event about a CR in the report's shape.
type observedEvent struct {
	uid types.UID
	at  time.Time // when it last happened
	ev  apitypes.ObjectEvent
}

// refreshEvents lists the namespace's Events about sandboxmesh.dev CRs when
// the last list is older than EventsInterval. A failed list keeps the last
// grouping (reported events go stale rather than vanish).
func (a *Agent) refreshEvents(ctx context.Context, now time.Time) error {
	if a.cfg.EventsInterval < 0 {
		return nil
	}
	a.evMu.Lock()
	fresh := a.events.listed && now.Sub(a.events.at) < a.cfg.EventsInterval
	a.evMu.Unlock()
	if fresh {
		return nil
	}
	var list eventsv1.EventList
	sel := fields.OneTermEqualSelector("regarding.apiVersion", v1alpha1.GroupVersion.String())
	if err := a.cfg.Client.List(ctx, &list, client.InNamespace(a.cfg.Namespace), client.MatchingFieldsSelector{Selector: sel}); err != nil {
		// Remember the attempt: a refused list (no RBAC) is not retried every tick.
		a.evMu.Lock()
		a.events.at, a.events.listed = now, true
		a.evMu.Unlock()
		return fmt.Errorf("list events in %s: %w", a.cfg.Namespace, err)
	}
	by := map[string][]observedEvent{}
	for i := range list.Items {
		ev := &list.Items[i]
		r := ev.Regarding
		if r.Namespace != "" && r.Namespace != a.cfg.Namespace {
			continue
		}
		oe, at := objectEvent(ev)
		k := r.Kind + "/" + r.Name
		by[k] = append(by[k], observedEvent{uid: r.UID, at: at, ev: oe})
	}
	for _, evs := range by {
		// Newest first; ties by reason and message, so the order (and the
		// agent's change signature) is stable.
		slices.SortFunc(evs, func(x, y observedEvent) int {
			if c := y.at.Compare(x.at); c != 0 {
				return c
			}
			if c := strings.Compare(x.ev.Reason, y.ev.Reason); c != 0 {
				return c
			}
			return strings.Compare(x.ev.Message, y.ev.Message)
		})
	}
	a.evMu.Lock()
	a.events = eventIndex{at: now, byObj: by, listed: true}
	a.evMu.Unlock()
	return nil
}

// objectEvents returns the newest MaxObservedEvents Events about the CR of
// kind and name, newest first; with uid, only those about that CR (when the
// event names one): a CR deleted and made again under the same name does
// not inherit its predecessor's events.
func (a *Agent) objectEvents(kind, name string, uid types.UID) []apitypes.ObjectEvent {
	a.evMu.Lock()
	defer a.evMu.Unlock()
	var out []apitypes.ObjectEvent
	for _, e := range a.events.byObj[kind+"/"+name] {
		if len(out) == apitypes.MaxObservedEvents {
			break
		}
		if e.uid != "" && uid != "" && e.uid != uid {
			continue
		}
		out = append(out, e.ev)
	}
	return out
}

// maxEventMessage bounds an event's message in a report (the API server
// allows 1 KiB for an events.k8s.io note; core/v1 messages may be longer).
const maxEventMessage = 1024

// objectEvent turns an events.k8s.io Event (or a core/v1 one read through
// that API) into the report's shape; at is when it last happened.
func objectEvent(ev *eventsv1.Event) (apitypes.ObjectEvent, time.Time) {
	first := ev.EventTime.Time
	if first.IsZero() {
		first = ev.DeprecatedFirstTimestamp.Time
	}
	if first.IsZero() {
		first = ev.CreationTimestamp.Time
	}
	last, count := first, int32(1)
	if s := ev.Series; s != nil {
		count = s.Count
		if !s.LastObservedTime.IsZero() {
			last = s.LastObservedTime.Time
		}
	} else {
		if ev.DeprecatedCount > 1 {
			count = ev.DeprecatedCount
		}
		if t := ev.DeprecatedLastTimestamp.Time; t.After(last) {
			last = t
		}
	}
	ctrl := ev.ReportingController
	if ctrl == "" {
		ctrl = ev.DeprecatedSource.Component
	}
	msg := ev.Note
	if len(msg) > maxEventMessage {
		msg = strings.ToValidUTF8(msg[:maxEventMessage], "") + "…"
	}
	return apitypes.ObjectEvent{Type: ev.Type, Reason: ev.Reason, Message: msg, Count: count,
		FirstTimestamp: rfc3339(first), LastTimestamp: rfc3339(last), ReportingController: ctrl}, last
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// conditions turns a CR's conditions into the report's shape.
func conditions(cs []metav1.Condition) []apitypes.Condition {
	if len(cs) == 0 {
		return nil
	}
	out := make([]apitypes.Condition, 0, len(cs))
	for _, c := range cs {
		out = append(out, apitypes.Condition{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message,
			LastTransitionTime: rfc3339(c.LastTransitionTime.Time)})
	}
	return out
}
