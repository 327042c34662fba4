package mq

import (
	"sync/atomic"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

// TableSource gives the current route table. mq/routes.Client is one; a nil table is an empty one.
type TableSource interface {
	Table() *routeapi.Table
}

// Decision is the outcome of Selector.Decide, with the reason for logs and metrics.
type Decision uint8

const (
	// Process: the message is this consumer's.
	Process Decision = iota
	// SkipNoKey: a sandbox consumer skips messages without a routing key (the baseline's).
	SkipNoKey
	// SkipRoutedAway: the baseline skips a key routed to a sandbox that forks this workload.
	SkipRoutedAway
	// SkipNotMine: a sandbox consumer skips a key that is not routed to its sandbox.
	SkipNotMine
)

// String names the decision ("process", "skip-no-key", "skip-routed-away", "skip-not-mine").
func (d Decision) String() string {
	switch d {
	case Process:
		return "process"
	case SkipNoKey:
		return "skip-no-key"
	case SkipRoutedAway:
		return "skip-routed-away"
	case SkipNotMine:
		return "skip-not-mine"
	}
	return "unknown"
}

// Selector decides which messages a consumer processes (the rules are in the package doc). It is safe for
// concurrent use and allocates nothing per decision (one small allocation per new route table).
type Selector struct {
	id  Identity
	src TableSource
	// last is the baseline workload's part of the table last seen: while src gives the same table, a
	// decision is one lookup by key (no hashing of the workload reference).
	last atomic.Pointer[workloadRoutes]
}

type workloadRoutes struct {
	t  *routeapi.Table
	wt routeapi.WorkloadTable
	sr routeapi.SandboxRoutes // a sandbox's view of wt (route-group keys in one lookup)
}

// NewSelector returns the selector of consumer id over the routes of src. A nil src is a table without
// routes: the baseline processes everything, a sandbox only its own key.
func NewSelector(id Identity, src TableSource) *Selector {
	if id.Baseline.Kind == "" {
		id.Baseline.Kind = routeapi.KindDeployment
	}
	return &Selector{id: id, src: src}
}

// Identity returns the consumer's identity.
func (s *Selector) Identity() Identity { return s.id }

// Accept reports whether the consumer processes a message carrying routing key key ("" when it has none).
func (s *Selector) Accept(key string) bool { return s.Decide(key) == Process }

// Decide is Accept with the reason.
func (s *Selector) Decide(key string) Decision {
	if key == "" {
		if s.id.IsSandbox() {
			return SkipNoKey
		}
		return Process
	}
	if s.id.IsSandbox() && key == s.id.RoutingKey {
		return Process
	}
	r := s.routes()
	if !s.id.IsSandbox() {
		if r.wt.RoutedAway(key) {
			return SkipRoutedAway
		}
		return Process
	}
	if r.sr.RoutesTo(key) {
		return Process
	}
	return SkipNotMine
}

// DecideKeyed is Decide(e.Key()), remembered in e for as long as the route table does not change: the
// messages of a key seen before cost one comparison. e is the caller's goroutine's (KeyCache.Entry).
func (s *Selector) DecideKeyed(e *Keyed) Decision {
	var t *routeapi.Table
	if s.src != nil {
		t = s.src.Table()
	}
	if e.decided && e.table == t {
		return e.decision
	}
	// t was read before Decide reads the table: a decision made on a newer table is remembered with the
	// older one, and made again on the next message
	e.decision, e.table, e.decided = s.Decide(e.key), t, true
	return e.decision
}

// routes returns the baseline workload's routes in the current table.
func (s *Selector) routes() *workloadRoutes {
	var t *routeapi.Table
	if s.src != nil {
		t = s.src.Table()
	}
	if l := s.last.Load(); l != nil && l.t == t {
		return l
	}
	l := &workloadRoutes{t: t, wt: t.Workload(s.id.Baseline)}
	if s.id.IsSandbox() {
		l.sr = l.wt.ForSandbox(s.id.Sandbox)
	}
	s.last.Store(l)
	return l
}
