// Package routeapi owns the devmesh route-server protocol: the route data model (a versioned table of
// "for baseline workload W, routing key K goes to destination D"), immutable snapshots with O(1) lookups,
// deltas between snapshots, the gRPC Watch service (JSON codec, no protoc) with its Server and Client, and
// the versioned HTTP/JSON routes lookup API used by queue consumers (GET /v1/lookup, /v1/routes and
// Signadot's /api/v1/workloads/routing-rules, with ETag and long-poll; docs/routes-api.md).
//
// The operator hosts a Server (Register on its grpc.Server, LookupHandler on its HTTP mux) and feeds it
// with Publish or PublishWorkload; devmesh sidecars run a Client and read Client.Table on every request.
package routeapi

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// KindDeployment is the default workload kind.
const KindDeployment = "Deployment"

// KindRollout is an Argo Rollout (its pods are routed like a Deployment's).
const KindRollout = "Rollout"

// DestinationKind says what a routing key leads to.
type DestinationKind string

const (
	// DestinationFork sends the request to a fork of the baseline workload (its Service host).
	DestinationFork DestinationKind = "fork"
	// DestinationLocal sends the request to a developer's local tunnel address.
	DestinationLocal DestinationKind = "local"
	// DestinationBaseline keeps the request on the baseline workload (virtual workloads).
	DestinationBaseline DestinationKind = "baseline"
)

// ErrInvalidRoute is returned (wrapped, with the field path) for a route that fails validation.
var ErrInvalidRoute = errors.New("invalid route")

// WorkloadRef names a baseline workload.
type WorkloadRef struct {
	// Namespace of the workload.
	Namespace string `json:"namespace"`
	// Kind of the workload; empty means Deployment.
	Kind string `json:"kind,omitempty"`
	// Name of the workload.
	Name string `json:"name"`
}

// String renders the reference as namespace/kind/name.
func (w WorkloadRef) String() string {
	return w.Namespace + "/" + w.kindOrDefault() + "/" + w.Name
}

func (w WorkloadRef) kindOrDefault() string {
	if w.Kind == "" {
		return KindDeployment
	}
	return w.Kind
}

// normalized returns w with the default kind filled in, so that map keys compare equal.
func (w WorkloadRef) normalized() WorkloadRef {
	w.Kind = w.kindOrDefault()
	return w
}

// OwnerRouteGroup is SandboxRef.Kind for a route a RouteGroup caused.
const OwnerRouteGroup = "RouteGroup"

// SandboxRef names the sandbox (or route group) that caused a route.
type SandboxRef struct {
	// Kind is OwnerRouteGroup for a route group's route; "" (or "Sandbox") for a sandbox's.
	Kind string `json:"kind,omitempty"`
	// Namespace of the Sandbox (or RouteGroup) object.
	Namespace string `json:"namespace,omitempty"`
	// Name of the Sandbox (or RouteGroup) object.
	Name string `json:"name"`
}

// String renders the reference as namespace/name (or name alone).
func (s SandboxRef) String() string {
	if s.Namespace == "" {
		return s.Name
	}
	return s.Namespace + "/" + s.Name
}

// PortMapping maps a baseline container (target) port to the port to use at the destination.
type PortMapping struct {
	// Port is the baseline container/target port the request arrived for.
	Port int32 `json:"port"`
	// DestinationPort is the port at Destination.Host.
	DestinationPort int32 `json:"destinationPort"`
}

// Destination says where a routed request goes.
type Destination struct {
	// Sandbox that owns this destination.
	Sandbox SandboxRef `json:"sandbox"`
	// Kind of destination.
	Kind DestinationKind `json:"kind"`
	// Host to send to: the fork Service DNS name or the local tunnel address. Empty for baseline.
	Host string `json:"host,omitempty"`
	// Ports maps baseline ports to destination ports; a baseline port not listed keeps its number.
	Ports []PortMapping `json:"ports,omitempty"`
	// Override, when set, sends the route's requests to a developer's machine first and falls through to
	// this destination when the machine does not answer or its answer says so (local override,
	// docs/local.md).
	Override *Override `json:"override,omitempty"`
}

// Override is where a route's requests go first (a forward to a developer's machine, reached through the
// local-workload tunnel's Service) and when they fall through to the route's destination.
type Override struct {
	// Host of the forward's Service.
	Host string `json:"host"`
	// Ports maps the baseline port the override acts on to the port at Host. Requests for other ports
	// are not overridden.
	Ports []PortMapping `json:"ports"`
	// ExceptStatusCodes: the forward's answer is used unless its status is one of these. Empty: the answer
	// is used only when it carries the header sm-override: true (or sd-override: true); otherwise the
	// request falls through.
	ExceptStatusCodes []int32 `json:"exceptStatusCodes,omitempty"`
}

func (o *Override) equal(p *Override) bool {
	if o == nil || p == nil {
		return o == p
	}
	return o.Host == p.Host && slices.Equal(o.Ports, p.Ports) && slices.Equal(o.ExceptStatusCodes, p.ExceptStatusCodes)
}

// addr returns Host:port of the forward for baseline port, or "" when the override does not act on it.
func (o *Override) addr(port int32) string {
	if o == nil {
		return ""
	}
	for _, p := range o.Ports {
		if p.Port == port {
			return joinHostPort(o.Host, p.DestinationPort)
		}
	}
	return ""
}

// Route is one row of the table: requests to Workload carrying RoutingKey go to Destination.
type Route struct {
	// Workload is the baseline workload the request was addressed to.
	Workload WorkloadRef `json:"workload"`
	// RoutingKey is the sandbox or route-group routing key.
	RoutingKey string `json:"routingKey"`
	// Destination of matching requests.
	Destination Destination `json:"destination"`
}

func (r Route) id() routeID { return routeID{r.Workload.normalized(), r.RoutingKey} }

type routeID struct {
	w   WorkloadRef
	key string
}

// Validate checks a route and returns an error wrapping ErrInvalidRoute with the field path.
func (r Route) Validate() error {
	bad := func(field, msg string) error {
		return fmt.Errorf("route %s key %q: %s: %s: %w", r.Workload, r.RoutingKey, field, msg, ErrInvalidRoute)
	}
	switch {
	case r.Workload.Namespace == "":
		return bad("workload.namespace", "required")
	case r.Workload.Name == "":
		return bad("workload.name", "required")
	case r.RoutingKey == "":
		return bad("routingKey", "required")
	case strings.ContainsAny(r.RoutingKey, " ,;=\t\r\n"):
		return bad("routingKey", "must not contain separators")
	}
	switch r.Destination.Kind {
	case DestinationFork, DestinationLocal:
		if r.Destination.Host == "" {
			return bad("destination.host", "required for kind "+string(r.Destination.Kind))
		}
	case DestinationBaseline:
	default:
		return bad("destination.kind", fmt.Sprintf("unknown kind %q", r.Destination.Kind))
	}
	for i, p := range r.Destination.Ports {
		if p.Port <= 0 || p.Port > 65535 || p.DestinationPort <= 0 || p.DestinationPort > 65535 {
			return bad(fmt.Sprintf("destination.ports[%d]", i), "port out of range")
		}
	}
	if o := r.Destination.Override; o != nil {
		if o.Host == "" {
			return bad("destination.override.host", "required")
		}
		if len(o.Ports) == 0 {
			return bad("destination.override.ports", "required")
		}
		for i, p := range o.Ports {
			if p.Port <= 0 || p.Port > 65535 || p.DestinationPort <= 0 || p.DestinationPort > 65535 {
				return bad(fmt.Sprintf("destination.override.ports[%d]", i), "port out of range")
			}
		}
		for i, c := range o.ExceptStatusCodes {
			if c < 100 || c > 599 {
				return bad(fmt.Sprintf("destination.override.exceptStatusCodes[%d]", i), "not an HTTP status")
			}
		}
	}
	return nil
}

func (d *Destination) equal(o *Destination) bool {
	return d.Sandbox == o.Sandbox && d.Kind == o.Kind && d.Host == o.Host && slices.Equal(d.Ports, o.Ports) && d.Override.equal(o.Override)
}

// Target is the result of a lookup: where to send a request.
type Target struct {
	// Destination is the matched destination (shared, do not modify).
	Destination *Destination
	// Port is the destination port for the requested baseline port.
	Port int32
	// Addr is Host:Port, precomputed for mapped ports.
	Addr string
	// OverrideAddr is the forward's host:port when Destination.Override acts on the requested port: the
	// request goes there first (local override); "" otherwise.
	OverrideAddr string
}

// entry is a destination with host:port strings precomputed per mapped port.
type entry struct {
	dest  Destination
	addrs []string // addrs[i] is Host:Ports[i].DestinationPort
}

func newEntry(d Destination) *entry {
	e := &entry{dest: d}
	if d.Host != "" && len(d.Ports) > 0 {
		e.addrs = make([]string, len(d.Ports))
		for i, p := range d.Ports {
			e.addrs[i] = joinHostPort(d.Host, p.DestinationPort)
		}
	}
	return e
}

// interner shares the strings that repeat across routes (hosts, namespaces, kinds) so that a big
// decoded snapshot does not keep one copy per route.
type interner map[string]string

func (in interner) str(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	in[s] = s
	return s
}

func (in interner) dest(d Destination) Destination {
	d.Sandbox.Namespace = in.str(d.Sandbox.Namespace)
	d.Sandbox.Kind = in.str(d.Sandbox.Kind)
	d.Kind = DestinationKind(in.str(string(d.Kind)))
	d.Host = in.str(d.Host)
	return d
}

func joinHostPort(host string, port int32) string {
	if strings.IndexByte(host, ':') >= 0 && !strings.HasPrefix(host, "[") {
		return "[" + host + "]:" + strconv.Itoa(int(port))
	}
	return host + ":" + strconv.Itoa(int(port))
}

// Table is an immutable, versioned snapshot of the route table. The zero value and nil are empty tables.
// Lookups are O(1) in the number of routes and safe for concurrent use.
type Table struct {
	version uint64
	n       int
	byW     map[WorkloadRef]map[string]*entry
}

// NewTable builds a table at version from routes. A duplicate (workload, key) is an error.
func NewTable(version uint64, routes []Route) (*Table, error) {
	t := &Table{version: version, byW: make(map[WorkloadRef]map[string]*entry)}
	in := interner{}
	for i, r := range routes {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		w := r.Workload.normalized()
		m := t.byW[w]
		if m == nil {
			m = make(map[string]*entry)
			t.byW[w] = m
		}
		if _, dup := m[r.RoutingKey]; dup {
			return nil, fmt.Errorf("routes[%d]: route %s key %q: duplicate: %w", i, w, r.RoutingKey, ErrInvalidRoute)
		}
		m[r.RoutingKey] = newEntry(in.dest(r.Destination))
		t.n++
	}
	return t, nil
}

// rebuild is NewTable for the next version of t: entries whose destination did not change are shared
// with t instead of being rebuilt (cheaper publishes, less garbage).
func (t *Table) rebuild(version uint64, routes []Route) (*Table, error) {
	nt := &Table{version: version, byW: make(map[WorkloadRef]map[string]*entry)}
	in := interner{}
	for i, r := range routes {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		w := r.Workload.normalized()
		m := nt.byW[w]
		if m == nil {
			m = make(map[string]*entry, len(t.byW[w]))
			nt.byW[w] = m
		}
		if _, dup := m[r.RoutingKey]; dup {
			return nil, fmt.Errorf("routes[%d]: route %s key %q: duplicate: %w", i, w, r.RoutingKey, ErrInvalidRoute)
		}
		if oe, ok := t.byW[w][r.RoutingKey]; ok && oe.dest.equal(&r.Destination) {
			m[r.RoutingKey] = oe
		} else {
			m[r.RoutingKey] = newEntry(in.dest(r.Destination))
		}
		nt.n++
	}
	return nt, nil
}

// Version returns the table's version (0 for an empty, never-synced table).
func (t *Table) Version() uint64 {
	if t == nil {
		return 0
	}
	return t.version
}

// Len returns the number of routes.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// Lookup finds where a request for baseline workload w carrying key, arriving for baseline port, goes.
// It returns false when the key has no route for w.
func (t *Table) Lookup(w WorkloadRef, key string, port int32) (Target, bool) {
	if t == nil {
		return Target{}, false
	}
	if w.Kind == "" {
		w.Kind = KindDeployment
	}
	e, ok := t.byW[w][key]
	if !ok {
		return Target{}, false
	}
	return e.target(port), true
}

func (e *entry) target(port int32) Target {
	tg := e.plainTarget(port)
	if e.dest.Override != nil {
		tg.OverrideAddr = e.dest.Override.addr(port)
	}
	return tg
}

func (e *entry) plainTarget(port int32) Target {
	for i, p := range e.dest.Ports {
		if p.Port == port {
			tg := Target{Destination: &e.dest, Port: p.DestinationPort}
			if e.addrs != nil {
				tg.Addr = e.addrs[i]
			}
			return tg
		}
	}
	tg := Target{Destination: &e.dest, Port: port}
	if e.dest.Host != "" {
		tg.Addr = joinHostPort(e.dest.Host, port)
	}
	return tg
}

// RoutedAway reports whether key has a fork or local destination for workload w: traffic (and
// messages) with that key belong to a sandbox, not to w's baseline. A baseline destination (a sandbox
// that only virtualises w) does not route away.
func (t *Table) RoutedAway(w WorkloadRef, key string) bool {
	return t.Workload(w).RoutedAway(key)
}

// RoutesTo reports whether key, for workload w, leads to sandbox's fork or tunnel: the sandbox's own
// key, or a route group's key whose destination is that sandbox's (same host). This is the sandbox
// consumer's half of selective consumption, matching Signadot's destinationSandbox.
func (t *Table) RoutesTo(w WorkloadRef, key, sandbox string) bool {
	return t.Workload(w).RoutesTo(key, sandbox)
}

// WorkloadTable is the part of a table for one workload; lookups by key only. It is immutable.
type WorkloadTable struct {
	m map[string]*entry
}

// Workload returns the routes of w (possibly empty).
func (t *Table) Workload(w WorkloadRef) WorkloadTable {
	if t == nil {
		return WorkloadTable{}
	}
	return WorkloadTable{m: t.byW[w.normalized()]}
}

// Lookup finds the target for key and baseline port.
func (wt WorkloadTable) Lookup(key string, port int32) (Target, bool) {
	e, ok := wt.m[key]
	if !ok {
		return Target{}, false
	}
	return e.target(port), true
}

// Len returns the number of routes of the workload.
func (wt WorkloadTable) Len() int { return len(wt.m) }

// RoutedAway is Table.RoutedAway for the workload of wt.
func (wt WorkloadTable) RoutedAway(key string) bool {
	e, ok := wt.m[key]
	return ok && e.dest.Kind != DestinationBaseline
}

// RoutesTo is Table.RoutesTo for the workload of wt. A route group's key costs a scan of the workload's
// routes, the others one lookup; ForSandbox answers both with one lookup.
func (wt WorkloadTable) RoutesTo(key, sandbox string) bool {
	e, ok := wt.m[key]
	if !ok || e.dest.Kind == DestinationBaseline {
		return false
	}
	if e.dest.Sandbox.Kind != OwnerRouteGroup {
		return e.dest.Sandbox.Name == sandbox
	}
	for _, o := range wt.m {
		if o.dest.Sandbox.Kind != OwnerRouteGroup && o.dest.Sandbox.Name == sandbox && o.dest.Kind == e.dest.Kind && o.dest.Host == e.dest.Host {
			return true
		}
	}
	return false
}

// SandboxRoutes is the part of a WorkloadTable one sandbox's consumer asks about: RoutesTo for a fixed
// sandbox, in one lookup also for route-group keys. It is immutable; build it once per table.
type SandboxRoutes struct {
	wt      WorkloadTable
	sandbox string
	targets map[sandboxTarget]struct{} // the sandbox's own destinations (kind, host)
}

type sandboxTarget struct {
	kind DestinationKind
	host string
}

// ForSandbox returns the routes of wt as sandbox's consumer sees them (a scan of the workload's routes).
func (wt WorkloadTable) ForSandbox(sandbox string) SandboxRoutes {
	sr := SandboxRoutes{wt: wt, sandbox: sandbox}
	for _, o := range wt.m {
		if o.dest.Sandbox.Kind != OwnerRouteGroup && o.dest.Sandbox.Name == sandbox && o.dest.Kind != DestinationBaseline {
			if sr.targets == nil {
				sr.targets = make(map[sandboxTarget]struct{})
			}
			sr.targets[sandboxTarget{o.dest.Kind, o.dest.Host}] = struct{}{}
		}
	}
	return sr
}

// RoutesTo is WorkloadTable.RoutesTo(key, sandbox) for the sandbox of sr.
func (sr SandboxRoutes) RoutesTo(key string) bool {
	e, ok := sr.wt.m[key]
	if !ok || e.dest.Kind == DestinationBaseline {
		return false
	}
	if e.dest.Sandbox.Kind != OwnerRouteGroup {
		return e.dest.Sandbox.Name == sr.sandbox
	}
	_, ok = sr.targets[sandboxTarget{e.dest.Kind, e.dest.Host}]
	return ok
}

// Routes returns every route, sorted by workload then key.
func (t *Table) Routes() []Route {
	if t == nil {
		return nil
	}
	out := make([]Route, 0, t.n)
	for w, m := range t.byW {
		for k, e := range m {
			out = append(out, Route{Workload: w, RoutingKey: k, Destination: e.dest})
		}
	}
	sortRoutes(out)
	return out
}

// RoutesFor returns the routes of the given workloads (all when ws is empty), sorted.
func (t *Table) RoutesFor(ws []WorkloadRef) []Route {
	if len(ws) == 0 {
		return t.Routes()
	}
	if t == nil {
		return nil
	}
	var out []Route
	for _, w := range ws {
		w = w.normalized()
		for k, e := range t.byW[w] {
			out = append(out, Route{Workload: w, RoutingKey: k, Destination: e.dest})
		}
	}
	sortRoutes(out)
	return out
}

func sortRoutes(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int {
		if c := strings.Compare(a.Workload.String(), b.Workload.String()); c != 0 {
			return c
		}
		return strings.Compare(a.RoutingKey, b.RoutingKey)
	})
}

// Op is a change operation.
type Op string

const (
	// OpAdd adds a route that did not exist.
	OpAdd Op = "add"
	// OpRemove removes a route (only Workload and RoutingKey matter).
	OpRemove Op = "remove"
	// OpReplace replaces the destination of an existing route.
	OpReplace Op = "replace"
)

// Change is one delta entry.
type Change struct {
	// Op is add, remove or replace.
	Op Op `json:"op"`
	// Route is the route added, removed or replaced.
	Route Route `json:"route"`
}

// Diff returns the changes that turn old into new, sorted by workload and key.
func Diff(old, new *Table) []Change {
	var out []Change
	var oldW, newW map[WorkloadRef]map[string]*entry
	if old != nil {
		oldW = old.byW
	}
	if new != nil {
		newW = new.byW
	}
	for w, om := range oldW {
		out = diffWorkload(out, w, om, newW[w])
	}
	for w, nm := range newW {
		if _, ok := oldW[w]; !ok {
			out = diffWorkload(out, w, nil, nm)
		}
	}
	sortChanges(out)
	return out
}

func diffWorkload(out []Change, w WorkloadRef, om, nm map[string]*entry) []Change {
	for k, oe := range om {
		ne, ok := nm[k]
		switch {
		case !ok:
			out = append(out, Change{Op: OpRemove, Route: Route{Workload: w, RoutingKey: k, Destination: oe.dest}})
		case !oe.dest.equal(&ne.dest):
			out = append(out, Change{Op: OpReplace, Route: Route{Workload: w, RoutingKey: k, Destination: ne.dest}})
		}
	}
	for k, ne := range nm {
		if _, ok := om[k]; !ok {
			out = append(out, Change{Op: OpAdd, Route: Route{Workload: w, RoutingKey: k, Destination: ne.dest}})
		}
	}
	return out
}

func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int {
		if c := strings.Compare(a.Route.Workload.String(), b.Route.Workload.String()); c != 0 {
			return c
		}
		return strings.Compare(a.Route.RoutingKey, b.Route.RoutingKey)
	})
}

// Apply returns a new table at version with changes applied; t is unchanged. Only the maps of the
// workloads touched are copied, so a small delta on a big table is cheap. An add of an existing route or
// a remove/replace of a missing one is an error (the delta does not fit this table).
func (t *Table) Apply(version uint64, changes []Change) (*Table, error) {
	nt := &Table{version: version, n: t.Len()}
	if t != nil {
		nt.byW = maps.Clone(t.byW)
	}
	if nt.byW == nil {
		nt.byW = make(map[WorkloadRef]map[string]*entry)
	}
	copied := make(map[WorkloadRef]bool)
	for i, c := range changes {
		r := c.Route
		w := r.Workload.normalized()
		if !copied[w] {
			m := maps.Clone(nt.byW[w])
			if m == nil {
				m = make(map[string]*entry)
			}
			nt.byW[w] = m
			copied[w] = true
		}
		m := nt.byW[w]
		_, exists := m[r.RoutingKey]
		switch c.Op {
		case OpAdd, OpReplace:
			if err := r.Validate(); err != nil {
				return nil, fmt.Errorf("changes[%d]: %w", i, err)
			}
			if c.Op == OpAdd && exists {
				return nil, fmt.Errorf("changes[%d]: add route %s key %q: already present: %w", i, w, r.RoutingKey, ErrInvalidRoute)
			}
			if c.Op == OpReplace && !exists {
				return nil, fmt.Errorf("changes[%d]: replace route %s key %q: not present: %w", i, w, r.RoutingKey, ErrInvalidRoute)
			}
			if !exists {
				nt.n++
			}
			m[r.RoutingKey] = newEntry(r.Destination)
		case OpRemove:
			if !exists {
				return nil, fmt.Errorf("changes[%d]: remove route %s key %q: not present: %w", i, w, r.RoutingKey, ErrInvalidRoute)
			}
			delete(m, r.RoutingKey)
			nt.n--
		default:
			return nil, fmt.Errorf("changes[%d]: op %q: unknown: %w", i, c.Op, ErrInvalidRoute)
		}
	}
	for w := range copied {
		if len(nt.byW[w]) == 0 {
			delete(nt.byW, w)
		}
	}
	return nt, nil
}

// withWorkload returns a copy of t at version where w's routes are exactly routes (all for w).
func (t *Table) withWorkload(version uint64, w WorkloadRef, routes []Route) (*Table, error) {
	w = w.normalized()
	var old map[string]*entry
	if t != nil {
		old = t.byW[w]
	}
	m := make(map[string]*entry, len(routes))
	in := interner{}
	for i, r := range routes {
		if r.Workload.normalized() != w {
			return nil, fmt.Errorf("routes[%d]: workload %s: not %s: %w", i, r.Workload, w, ErrInvalidRoute)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		if _, dup := m[r.RoutingKey]; dup {
			return nil, fmt.Errorf("routes[%d]: route %s key %q: duplicate: %w", i, w, r.RoutingKey, ErrInvalidRoute)
		}
		if oe, ok := old[r.RoutingKey]; ok && oe.dest.equal(&r.Destination) {
			m[r.RoutingKey] = oe // unchanged: share the immutable entry
			continue
		}
		m[r.RoutingKey] = newEntry(in.dest(r.Destination))
	}
	nt := &Table{version: version, n: t.Len()}
	if t != nil {
		nt.byW = maps.Clone(t.byW)
	}
	if nt.byW == nil {
		nt.byW = make(map[WorkloadRef]map[string]*entry)
	}
	nt.n -= len(nt.byW[w])
	if len(m) == 0 {
		delete(nt.byW, w)
	} else {
		nt.byW[w] = m
	}
	nt.n += len(m)
	return nt, nil
}

// filter returns the changes touching the given workloads (all when ws is nil).
func filterChanges(changes []Change, ws map[WorkloadRef]bool) []Change {
	if ws == nil {
		return changes
	}
	var out []Change
	for _, c := range changes {
		if ws[c.Route.Workload.normalized()] {
			out = append(out, c)
		}
	}
	return out
}
