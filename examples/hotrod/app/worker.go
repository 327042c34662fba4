package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxEvents is how many processed events a worker remembers for GET /events.
const maxEvents = 1000

// eventLog is the worker's memory of the events it processed, newest last.
type eventLog struct {
	mu    sync.Mutex
	nodes []Node
}

func (l *eventLog) add(n Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.nodes) == maxEvents {
		l.nodes = append(l.nodes[:0], l.nodes[1:]...)
	}
	l.nodes = append(l.nodes, n)
}

func (l *eventLog) list(id string) []Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Node{}
	for _, n := range l.nodes {
		if id == "" || n.Data["event"] == id {
			out = append(out, n)
		}
	}
	return out
}

// validEventID reports whether id is 1 to 128 letters, digits, '-', '_' or '.'.
func validEventID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func newEventID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startQueues opens the buses of the service: frontend publishes on each queue of Config.QueueURLs; a
// worker consumes its one queue in the background until Shutdown.
func (s *Server) startQueues(ctx context.Context) error {
	switch s.cfg.Service {
	case Frontend:
		for _, u := range s.cfg.QueueURLs {
			b, err := openBus(ctx, u, false, s.log)
			if err != nil {
				s.closeQueues(ctx)
				return fmt.Errorf("%s: %w", s.cfg.Service, err)
			}
			s.buses = append(s.buses, b)
		}
	case Worker:
		b, err := openBus(ctx, s.cfg.QueueURLs[0], true, s.log)
		if err != nil {
			return fmt.Errorf("%s: %w", s.cfg.Service, err)
		}
		s.buses = []bus{b}
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.stopConsume = cancel
		s.consumeDone = make(chan struct{})
		go func() {
			defer close(s.consumeDone)
			if err := b.Consume(cctx, s.work); err != nil && cctx.Err() == nil {
				s.errc <- fmt.Errorf("%s: consume %s: %w", s.cfg.Service, b.Kind(), err)
			}
		}()
	}
	return nil
}

// closeQueues stops consuming and closes the buses.
func (s *Server) closeQueues(ctx context.Context) error {
	if s.stopConsume != nil {
		s.stopConsume()
		select {
		case <-s.consumeDone:
		case <-ctx.Done():
		}
	}
	var errs []error
	for _, b := range s.buses {
		if err := b.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: close %s: %w", s.cfg.Service, b.Kind(), err))
		}
	}
	s.buses = nil
	return errors.Join(errs...)
}

// publish (frontend) sends the dispatch event of a request on every queue and notes it in n.
func (s *Server) publish(ctx context.Context, r *http.Request, n *Node) bool {
	id := r.URL.Query().Get("event")
	if id == "" {
		id = newEventID()
	} else if !validEventID(id) {
		return false
	}
	ev := Event{ID: id, Customer: n.Data["customer"]}
	var kinds []string
	for _, b := range s.buses {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		err := b.Publish(pctx, ev)
		cancel()
		if err != nil {
			n.Error = fmt.Sprintf("publish event %s on %s: %v", id, b.Kind(), err)
			break
		}
		kinds = append(kinds, b.Kind())
	}
	n.Data["event"] = id
	n.Data["published"] = strings.Join(kinds, ",")
	return true
}

// work (worker) processes one dispatch event: it asks customer, with the event's context, and remembers
// what it did for GET /events.
func (s *Server) work(ctx context.Context, d Delivery) error {
	start := time.Now()
	n := s.newNode(ctx, d.Header)
	n.Data = map[string]string{"event": d.Event.ID, "customer": d.Event.Customer, "queue": s.buses[0].Kind()}
	n.Calls = []Node{s.callCustomer(ctx, d.Event.Customer)}
	s.events.add(n)
	s.requests.WithLabelValues("event", fmt.Sprint(n.RoutingKey != ""), "processed").Inc()
	s.log.InfoContext(ctx, "event", "event", d.Event.ID, "routingKey", n.RoutingKey, "traceId", n.TraceID,
		"customerServedBy", n.Calls[0].Sandbox, "error", n.Calls[0].Error, "duration", time.Since(start))
	return nil
}

// listEvents (worker) answers the events this worker processed: {"events": [Node…]}, optionally only those
// of ?event=ID.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("event")
	if id != "" && !validEventID(id) {
		writeError(r.Context(), w, http.StatusBadRequest, "invalid_event", fmt.Sprintf("query event=%q: want 1 to 128 of [A-Za-z0-9._-]", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": s.events.list(id)})
}
