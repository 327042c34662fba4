package routeapi

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Paths of the HTTP routes lookup API (docs/routes-api.md is the contract).
const (
	// PathLookup answers "where does routing key K go for baseline workload W".
	PathLookup = "/v1/lookup"
	// PathRoutes lists the route table, optionally filtered.
	PathRoutes = "/v1/routes"
	// PathRoutingRules is Signadot's routes API shape: the fork/local routes as routingRules.
	PathRoutingRules = "/api/v1/workloads/routing-rules"
)

// MaxWait is the longest a long-poll (?wait=) blocks; longer values are clamped to it.
const MaxWait = 60 * time.Second

// ETag returns the strong entity tag of the table at version served by the server of epoch:
// "<epoch>.<version>" in double quotes. Every endpoint answers with it; a client sends it back in
// If-None-Match to get 304 Not Modified (or, with ?wait=, to block until the table changes).
func ETag(epoch string, version uint64) string {
	return `"` + epoch + "." + strconv.FormatUint(version, 10) + `"`
}

// RoutesResponse is the body of GET /v1/routes.
type RoutesResponse struct {
	// Epoch identifies the server instance (it changes when the operator restarts).
	Epoch string `json:"epoch"`
	// Version of the table the routes were read from.
	Version uint64 `json:"version"`
	// Routes matching the filters, sorted by workload then key (never null).
	Routes []Route `json:"routes"`
}

// RoutingRulesResponse is the body of GET /api/v1/workloads/routing-rules (Signadot's shape).
type RoutingRulesResponse struct {
	// RoutingRules are the routes whose destination is a fork or a local tunnel (never null).
	RoutingRules []RoutingRule `json:"routingRules"`
}

// RoutingRule is one Signadot routing rule: requests (or messages) for Baseline carrying RoutingKey
// belong to DestinationSandbox.
type RoutingRule struct {
	// RoutingKey of the sandbox or route group.
	RoutingKey string `json:"routingKey"`
	// Baseline workload the rule diverts traffic from.
	Baseline RuleBaseline `json:"baseline"`
	// DestinationSandbox owns the destination.
	DestinationSandbox RuleSandbox `json:"destinationSandbox"`
	// Mappings give, per baseline workload port, where to send (never null).
	Mappings []RuleMapping `json:"mappings"`
}

// RuleBaseline names the baseline workload of a RoutingRule.
type RuleBaseline struct {
	// Kind is Deployment or Rollout.
	Kind string `json:"kind"`
	// Namespace of the workload.
	Namespace string `json:"namespace"`
	// Name of the workload.
	Name string `json:"name"`
}

// RuleSandbox names the destination sandbox (or route group) of a RoutingRule.
type RuleSandbox struct {
	// Name of the Sandbox.
	Name string `json:"name"`
}

// RuleMapping maps one baseline workload port to its destinations.
type RuleMapping struct {
	// WorkloadPort is the baseline container port.
	WorkloadPort int32 `json:"workloadPort"`
	// Destinations to send to (one today).
	Destinations []RuleDestination `json:"destinations"`
}

// RuleDestination is a host and port of a RuleMapping.
type RuleDestination struct {
	// Host is the fork Service DNS name or the local tunnel address.
	Host string `json:"host"`
	// Port at Host.
	Port int32 `json:"port"`
}

// queryError is a bad query parameter; its message starts with the field path "query.<name>".
type queryError struct{ field, msg string }

func (e *queryError) Error() string { return "query." + e.field + ": " + e.msg }

// query reads parameters of one request, checking repeats and (when strict) unknown names.
type query struct {
	v url.Values
}

func (q query) get(name string) (string, error) {
	vs := q.v[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", &queryError{name, fmt.Sprintf("given %d times, want at most once", len(vs))}
}

// only rejects parameters outside known (the /v1 endpoints are strict so that a typo never widens a
// filter silently).
func (q query) only(known ...string) error {
	var unknown []string
	for k := range q.v {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return &queryError{unknown[0], fmt.Sprintf("unknown parameter (known: %s)", strings.Join(known, ", "))}
}

func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

func (q query) namespace(name string) (string, error) {
	v, err := q.get(name)
	if err != nil || v == "" {
		return v, err
	}
	if !isDNSLabel(v) {
		return "", &queryError{name, fmt.Sprintf("%q is not a namespace name (DNS-1123 label)", v)}
	}
	return v, nil
}

func (q query) objectName(name string) (string, error) {
	v, err := q.get(name)
	if err != nil || v == "" {
		return v, err
	}
	if !isDNSSubdomain(v) {
		return "", &queryError{name, fmt.Sprintf("%q is not an object name (DNS-1123 subdomain)", v)}
	}
	return v, nil
}

// kind reads a workload kind; deployment and rollout are accepted in any case and normalized.
func (q query) kind(name string) (string, error) {
	v, err := q.get(name)
	if err != nil || v == "" {
		return v, err
	}
	switch {
	case strings.EqualFold(v, KindDeployment):
		return KindDeployment, nil
	case strings.EqualFold(v, KindRollout):
		return KindRollout, nil
	}
	ok := len(v) <= 63 && v[0] >= 'A' && v[0] <= 'Z'
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if !ok {
		return "", &queryError{name, fmt.Sprintf("%q is not a workload kind (e.g. Deployment, Rollout)", v)}
	}
	return v, nil
}

func (q query) routingKey(name string) (string, error) {
	v, err := q.get(name)
	if err != nil || v == "" {
		return v, err
	}
	if strings.ContainsAny(v, " ,;=\t\r\n") {
		return "", &queryError{name, "must not contain separators (space , ; =)"}
	}
	return v, nil
}

func (q query) port(name string) (int32, error) {
	v, err := q.get(name)
	if err != nil || v == "" {
		return 0, err
	}
	n, perr := strconv.ParseInt(v, 10, 32)
	if perr != nil || n <= 0 || n > 65535 {
		return 0, &queryError{name, fmt.Sprintf("%q is not a port number (1-65535)", v)}
	}
	return int32(n), nil
}

// wait reads ?wait=: a Go duration (30s, 1m), clamped to MaxWait; absent means 0 (no blocking).
func (q query) wait() (time.Duration, error) {
	v, err := q.get("wait")
	if err != nil || v == "" {
		return 0, err
	}
	d, perr := time.ParseDuration(v)
	if perr != nil || d < 0 {
		return 0, &queryError{"wait", fmt.Sprintf("%q is not a non-negative Go duration (e.g. 30s, max %s)", v, MaxWait)}
	}
	return min(d, MaxWait), nil
}

func required(field, v string) error {
	if v == "" {
		return &queryError{field, "required"}
	}
	return nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// lookupQuery is the parsed query of GET /v1/lookup.
type lookupQuery struct {
	workload WorkloadRef
	key      string
	port     int32
	wait     time.Duration
}

func parseLookupQuery(v url.Values) (lookupQuery, error) {
	q := query{v}
	var lq lookupQuery
	var e [8]error
	e[0] = q.only("namespace", "kind", "workload", "routingKey", "port", "wait")
	lq.workload.Namespace, e[1] = q.namespace("namespace")
	lq.workload.Kind, e[2] = q.kind("kind")
	lq.workload.Name, e[3] = q.objectName("workload")
	lq.key, e[4] = q.routingKey("routingKey")
	lq.port, e[5] = q.port("port")
	lq.wait, e[6] = q.wait()
	err := firstErr(e[:]...)
	if err == nil {
		err = firstErr(required("namespace", lq.workload.Namespace), required("workload", lq.workload.Name), required("routingKey", lq.key))
	}
	if err != nil {
		return lookupQuery{}, err
	}
	lq.workload = lq.workload.normalized()
	return lq, nil
}

// routesQuery is the parsed query of GET /v1/routes; empty fields match everything.
type routesQuery struct {
	namespace, kind, workload string
	wait                      time.Duration
}

func parseRoutesQuery(v url.Values) (routesQuery, error) {
	q := query{v}
	var rq routesQuery
	var e [5]error
	e[0] = q.only("namespace", "kind", "workload", "wait")
	rq.namespace, e[1] = q.namespace("namespace")
	rq.kind, e[2] = q.kind("kind")
	rq.workload, e[3] = q.objectName("workload")
	rq.wait, e[4] = q.wait()
	if err := firstErr(e[:]...); err != nil {
		return routesQuery{}, err
	}
	return rq, nil
}

// rulesQuery is the parsed query of GET /api/v1/workloads/routing-rules; empty fields match everything.
type rulesQuery struct {
	baseline routesQuery
	key      string
	sandbox  string
}

// parseRulesQuery parses Signadot's parameters. Unknown parameters are ignored, as clients written
// against Signadot's route server may send more than SandboxMesh knows.
func parseRulesQuery(v url.Values) (rulesQuery, error) {
	q := query{v}
	var rq rulesQuery
	var e [6]error
	rq.baseline.kind, e[0] = q.kind("baselineKind")
	rq.baseline.namespace, e[1] = q.namespace("baselineNamespace")
	rq.baseline.workload, e[2] = q.objectName("baselineName")
	rq.key, e[3] = q.routingKey("routingKey")
	rq.sandbox, e[4] = q.objectName("destinationSandboxName")
	rq.baseline.wait, e[5] = q.wait()
	if err := firstErr(e[:]...); err != nil {
		return rulesQuery{}, err
	}
	return rq, nil
}

// routes returns the routes of t matching the filters, sorted by workload (namespace, kind, name)
// then key.
func (rq routesQuery) routes(t *Table) []Route {
	out := []Route{}
	if t == nil {
		return out
	}
	add := func(w WorkloadRef, m map[string]*entry) {
		for k, e := range m {
			out = append(out, Route{Workload: w, RoutingKey: k, Destination: e.dest})
		}
	}
	if rq.namespace != "" && rq.kind != "" && rq.workload != "" {
		w := WorkloadRef{Namespace: rq.namespace, Kind: rq.kind, Name: rq.workload}
		add(w, t.byW[w])
	} else {
		for w, m := range t.byW {
			if (rq.namespace == "" || w.Namespace == rq.namespace) && (rq.kind == "" || w.Kind == rq.kind) && (rq.workload == "" || w.Name == rq.workload) {
				add(w, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b Route) int {
		return cmp.Or(strings.Compare(a.Workload.Namespace, b.Workload.Namespace), strings.Compare(a.Workload.Kind, b.Workload.Kind),
			strings.Compare(a.Workload.Name, b.Workload.Name), strings.Compare(a.RoutingKey, b.RoutingKey))
	})
	return out
}

// rules returns the routing rules of t matching the filters: routes to forks and local tunnels only
// (a baseline destination keeps traffic on the baseline, so it diverts nothing). A route group's rule
// names as destinationSandbox the sandbox whose fork (or tunnel) it leads to, as Signadot does: a
// sandbox's consumer asks for destinationSandboxName=<itself> and gets its route-group keys too.
func (rq rulesQuery) rules(t *Table) []RoutingRule {
	out := []RoutingRule{}
	routes := rq.baseline.routes(t)
	// owner[workload][host] is the sandbox whose own route leads to host.
	owner := map[WorkloadRef]map[string]string{}
	for _, r := range routes {
		d := r.Destination
		if d.Sandbox.Kind != OwnerRouteGroup && (d.Kind == DestinationFork || d.Kind == DestinationLocal) {
			if owner[r.Workload] == nil {
				owner[r.Workload] = map[string]string{}
			}
			owner[r.Workload][d.Host] = d.Sandbox.Name
		}
	}
	for _, r := range routes {
		d := r.Destination
		if d.Kind != DestinationFork && d.Kind != DestinationLocal {
			continue
		}
		sandbox := d.Sandbox.Name
		if d.Sandbox.Kind == OwnerRouteGroup {
			if sb, ok := owner[r.Workload][d.Host]; ok {
				sandbox = sb
			}
		}
		if (rq.key != "" && r.RoutingKey != rq.key) || (rq.sandbox != "" && sandbox != rq.sandbox) {
			continue
		}
		rule := RoutingRule{
			RoutingKey:         r.RoutingKey,
			Baseline:           RuleBaseline{Kind: r.Workload.kindOrDefault(), Namespace: r.Workload.Namespace, Name: r.Workload.Name},
			DestinationSandbox: RuleSandbox{Name: sandbox},
			Mappings:           make([]RuleMapping, 0, len(d.Ports)),
		}
		for _, p := range d.Ports {
			rule.Mappings = append(rule.Mappings, RuleMapping{WorkloadPort: p.Port, Destinations: []RuleDestination{{Host: d.Host, Port: p.DestinationPort}}})
		}
		out = append(out, rule)
	}
	return out
}

// LookupHandler serves the routes lookup API (docs/routes-api.md): GET /v1/lookup, GET /v1/routes and
// Signadot's GET /api/v1/workloads/routing-rules. Every answer carries the ETag of the table version it
// was read from; If-None-Match with that ETag gets 304, and with ?wait= blocks until the table changes.
// Mount it at the root of the operator's lookup HTTP server.
func (s *Server) LookupHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathLookup, func(w http.ResponseWriter, r *http.Request) {
		lq, err := parseLookupQuery(r.URL.Query())
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "invalid_argument", err.Error())
			return
		}
		s.serveVersioned(w, r, lq.wait, func(t *Table) any {
			resp := LookupResponse{Version: t.version, Workload: lq.workload, RoutingKey: lq.key}
			if tg, ok := t.Lookup(lq.workload, lq.key, lq.port); ok {
				d := *tg.Destination
				resp.Routed, resp.Destination, resp.Sandbox = true, &d, d.Sandbox.Name
				resp.RoutedAway = d.Kind != DestinationBaseline
			}
			return resp
		})
	})
	mux.HandleFunc("GET "+PathRoutes, func(w http.ResponseWriter, r *http.Request) {
		rq, err := parseRoutesQuery(r.URL.Query())
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "invalid_argument", err.Error())
			return
		}
		s.serveVersioned(w, r, rq.wait, func(t *Table) any {
			return RoutesResponse{Epoch: s.epoch, Version: t.version, Routes: rq.routes(t)}
		})
	})
	mux.HandleFunc("GET "+PathRoutingRules, func(w http.ResponseWriter, r *http.Request) {
		rq, err := parseRulesQuery(r.URL.Query())
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "invalid_argument", err.Error())
			return
		}
		s.serveVersioned(w, r, rq.baseline.wait, func(t *Table) any {
			return RoutingRulesResponse{RoutingRules: rq.rules(t)}
		})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathLookup || r.URL.Path == PathRoutes || r.URL.Path == PathRoutingRules {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" not allowed on "+r.URL.Path+": use GET")
			return
		}
		writeError(w, r, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// serveVersioned answers with render(table) and the table's ETag, or 304 when If-None-Match holds
// that ETag. With wait > 0 and a matching ETag it first blocks until a publish changes the version
// (then answers 200), wait elapses or the server closes its waiters (304), or the client goes away.
func (s *Server) serveVersioned(w http.ResponseWriter, r *http.Request, wait time.Duration, render func(*Table) any) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	inm := r.Header.Values("If-None-Match")
	var timer *time.Timer
	for {
		changed := *s.changed.Load() // before the table: a commit in between closes this channel
		t := s.cur.Load()
		etag := ETag(s.epoch, t.version)
		h.Set("ETag", etag)
		hit, star := noneMatch(inm, etag)
		if !hit {
			writeJSON(w, http.StatusOK, render(t))
			return
		}
		if wait <= 0 || star {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if timer == nil {
			if s.waiters.Add(1) > s.maxWait {
				s.waiters.Add(-1)
				h.Set("Retry-After", "1")
				writeError(w, r, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("too many long-polls (%d); retry without wait or later", s.maxWait))
				return
			}
			defer s.waiters.Add(-1)
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-changed:
			continue
		case <-timer.C:
		case <-s.closing:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
}

// noneMatch reports whether the If-None-Match header values list etag (weak comparison, RFC 9110
// 13.1.2) and whether they are "*".
func noneMatch(values []string, etag string) (hit, star bool) {
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return true, true
			}
			if strings.TrimPrefix(tag, "W/") == etag {
				return true, false
			}
		}
	}
	return false, false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, r *http.Request, code int, c, msg string) {
	id := r.Header.Get("X-Request-Id")
	if id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header().Del("ETag")
	writeJSON(w, code, ErrorBody{Code: c, Error: msg, RequestID: id})
}
