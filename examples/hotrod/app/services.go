package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DefaultCustomer is the customer /dispatch uses when none is given.
const DefaultCustomer = "123"

// customers is the customer service's data: name and location ("x,y").
var customers = map[string][2]string{
	"123": {"Rachel's Floral Designs", "115,277"},
	"392": {"Trom Chocolatier", "577,322"},
	"567": {"Amazing Coffee Roasters", "211,653"},
	"731": {"Japanese Desserts", "728,326"},
}

// maxBody bounds the answers read from other services.
const maxBody = 1 << 20

// validCustomerID reports whether id is 1 to 9 digits.
func validCustomerID(id string) bool {
	if id == "" || len(id) > 9 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// customerParam reads and checks a customer ID query parameter; it answers
// 400 and returns false when it is not valid.
func customerParam(w http.ResponseWriter, r *http.Request, name, def string) (string, bool) {
	id := r.URL.Query().Get(name)
	if id == "" {
		id = def
	}
	if !validCustomerID(id) {
		writeError(r.Context(), w, http.StatusBadRequest, "invalid_customer",
			fmt.Sprintf("query %s=%q: want 1 to 9 digits", name, id))
		return "", false
	}
	return id, true
}

func headerGetter(h http.Header) func(string) []string {
	return func(k string) []string { return h.Values(k) }
}

// routes registers the service's API on mux.
func (s *Server) routes(mux *http.ServeMux) {
	switch s.cfg.Service {
	case Frontend:
		d := s.api("/dispatch", s.dispatch)
		mux.Handle("GET /dispatch", d)
		mux.Handle("GET /{$}", d)
	case Route:
		mux.Handle("GET /route", s.api("/route", s.route))
	case Customer:
		mux.Handle("GET /customer", s.api("/customer", s.customer))
	case Worker:
		mux.Handle("GET /events", s.api("/events", s.listEvents))
	}
}

// dispatch (frontend) asks route and driver, concurrently, and answers the tree.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ok := customerParam(w, r, "customer", DefaultCustomer)
	if !ok {
		return
	}
	n := s.newNode(ctx, headerGetter(r.Header))
	n.Data = map[string]string{"customer": id}
	var route, driver Node
	var wg sync.WaitGroup
	wg.Go(func() { route = s.callRoute(ctx, id) })
	wg.Go(func() { driver = s.callDriver(ctx, id) })
	wg.Wait()
	n.Calls = []Node{route, driver}
	if len(s.buses) > 0 && !n.HasError() && !s.publish(ctx, r, &n) {
		writeError(ctx, w, http.StatusBadRequest, "invalid_event", fmt.Sprintf("query event=%q: want 1 to 128 of [A-Za-z0-9._-]", r.URL.Query().Get("event")))
		return
	}
	code := http.StatusOK
	if n.HasError() {
		code = http.StatusBadGateway
	}
	writeJSON(w, code, n)
}

// route (route) answers an ETA for the customer.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	id, ok := customerParam(w, r, "customer", "")
	if !ok {
		return
	}
	n := s.newNode(r.Context(), headerGetter(r.Header))
	num, _ := strconv.Atoi(id)
	minutes := 2 + num%9
	n.Data = map[string]string{"customer": id, "eta": fmt.Sprintf("%dm", minutes)}
	if s.cfg.EtaAlgo == "v2" {
		delete(n.Data, "eta")
		n.Data["etaSeconds"] = strconv.Itoa(minutes * 60)
	}
	if s.db != nil {
		s.recordLookup(r.Context(), num, n.Data)
	}
	writeJSON(w, http.StatusOK, n)
}

// customer (customer) answers a customer's name and location.
func (s *Server) customer(w http.ResponseWriter, r *http.Request) {
	id, ok := customerParam(w, r, "id", "")
	if !ok {
		return
	}
	c, found := customers[id]
	if !found {
		writeError(r.Context(), w, http.StatusNotFound, "customer_not_found", fmt.Sprintf("customer %s not found", id))
		return
	}
	n := s.newNode(r.Context(), headerGetter(r.Header))
	n.Data = map[string]string{"id": id, "name": c[0], "location": c[1]}
	writeJSON(w, http.StatusOK, n)
}

// findNearest (driver, gRPC) asks customer for the customer's location and
// answers a driver near it.
func (s *Server) findNearest(ctx context.Context, req *FindNearestRequest) (*Node, error) {
	if !validCustomerID(req.Customer) {
		return nil, status.Errorf(codes.InvalidArgument, "customer %q: want 1 to 9 digits", req.Customer)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	n := s.newNode(ctx, md.Get)
	c := s.callCustomer(ctx, req.Customer)
	n.Calls = []Node{c}
	num, _ := strconv.Atoi(req.Customer)
	n.Data = map[string]string{"driver": fmt.Sprintf("T7%05dC", num%100000), "location": c.Data["location"]}
	s.requests.WithLabelValues(FindNearestMethod, strconv.FormatBool(n.RoutingKey != ""), codes.OK.String()).Inc()
	s.log.InfoContext(ctx, "request", "method", FindNearestMethod, "routingKey", n.RoutingKey, "traceId", n.TraceID)
	return &n, nil
}

// getNode GETs a Node from another service; failures become the Node's Error.
func (s *Server) getNode(ctx context.Context, service Service, u string) Node {
	failed := func(err error) Node { return Node{Service: string(service), Error: err.Error()} }
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return failed(fmt.Errorf("call %s: %w", service, err))
	}
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return failed(fmt.Errorf("call %s: %w", service, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return failed(fmt.Errorf("call %s: read answer: %w", service, err))
	}
	return decodeAnswer(service, resp.StatusCode, resp.Status, body)
}

// decodeAnswer turns the answer of another service into its Node: the Node
// it sent (with an Error added when its status is not 200 and nothing below
// it says why), or a Node with the status and body as Error.
func decodeAnswer(service Service, code int, status string, body []byte) Node {
	var n Node
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &n); err != nil {
			return Node{Service: string(service), Error: fmt.Sprintf("call %s: decode answer: %v", service, err)}
		}
		if n.Service == "" {
			n.Service = string(service)
		}
		return n
	}
	// A Node with errors below it, an error body of ours, or something else (e.g. a proxy's page).
	if json.Unmarshal(body, &n) == nil && n.Service != "" {
		if !n.HasError() {
			n.Error = fmt.Sprintf("call %s: %s", service, status)
		}
		return n
	}
	const maxShown = 512
	text := strings.TrimSpace(string(body))
	if len(text) > maxShown {
		text = text[:maxShown] + "..."
	}
	return Node{Service: string(service), Error: fmt.Sprintf("call %s: %s: %s", service, status, text)}
}

func (s *Server) callRoute(ctx context.Context, customer string) Node {
	return s.getNode(ctx, Route, strings.TrimSuffix(s.cfg.RouteURL, "/")+"/route?customer="+url.QueryEscape(customer))
}

func (s *Server) callCustomer(ctx context.Context, id string) Node {
	return s.getNode(ctx, Customer, strings.TrimSuffix(s.cfg.CustomerURL, "/")+"/customer?id="+url.QueryEscape(id))
}

func (s *Server) callDriver(ctx context.Context, customer string) Node {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	var n Node
	if err := s.driverConn.Invoke(ctx, FindNearestMethod, &FindNearestRequest{Customer: customer}, &n); err != nil {
		return Node{Service: string(Driver), Error: fmt.Sprintf("call %s: %v", Driver, err)}
	}
	return n
}

// recordLookup adds a row to the lookups table of the route's database and
// puts the database's name and row count (or the error) into data.
func (s *Server) recordLookup(ctx context.Context, n int, data map[string]string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var db string
	var rows int64
	_, err := s.db.Exec(ctx, "INSERT INTO lookups (n) VALUES ($1)", n)
	if err == nil {
		err = s.db.QueryRow(ctx, "SELECT current_database(), count(*) FROM lookups").Scan(&db, &rows)
	}
	if err != nil {
		s.log.WarnContext(ctx, "record lookup", "err", err)
		data["databaseError"] = err.Error()
		return
	}
	data["database"], data["lookups"] = db, strconv.FormatInt(rows, 10)
}
