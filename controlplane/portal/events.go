package portal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// feed fans the store's sandbox changes (store.Watch: the feed that wakes
// the agents' long polls) out to the open event streams of each org. A
// subscriber keeps the set of changed names until it reads them, so a burst
// of changes costs one wake-up and the store's writer never blocks.
type feed struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{} // by org
}

type subscriber struct {
	mu      sync.Mutex
	pending map[string]struct{}
	wake    chan struct{} // capacity 1
}

func newFeed() *feed { return &feed{subs: map[string]map[*subscriber]struct{}{}} }

// observe is the store watcher: quick, never blocks.
func (f *feed) observe(c store.Change) {
	if c.Kind != store.KindSandbox || (c.What != store.ChangeObject && c.What != store.ChangeStatus) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs[c.Org] {
		s.mu.Lock()
		s.pending[c.Name] = struct{}{}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (f *feed) subscribe(org string) *subscriber {
	s := &subscriber{pending: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[org] == nil {
		f.subs[org] = map[*subscriber]struct{}{}
	}
	f.subs[org][s] = struct{}{}
	return s
}

func (f *feed) unsubscribe(org string, s *subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs[org], s)
	if len(f.subs[org]) == 0 {
		delete(f.subs, org)
	}
}

// take returns the changed names, sorted, and forgets them.
func (s *subscriber) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.pending))
	for n := range s.pending {
		out = append(out, n)
	}
	clear(s.pending)
	slices.Sort(out)
	return out
}

// sandboxEvent is the data of one "sandbox" event: the sandbox's new list
// row and status badge as HTML, or deleted (also when it no longer matches
// the stream's filter).
type sandboxEvent struct {
	Name    string `json:"name"`
	Deleted bool   `json:"deleted,omitempty"`
	Row     string `json:"row,omitempty"`
	Badge   string `json:"badge,omitempty"`
	Status  string `json:"status,omitempty"`
	// Observed is the detail page's conditions and events sections (streams
	// of one sandbox only).
	Observed string `json:"observed,omitempty"`
}

// events streams the org's sandbox changes as Server-Sent Events (GET
// /o/{org}/events?cluster=&label=&name=). Each change is read through the
// API with the visitor's session, so a revoked session or a role taken away
// ends the stream.
func (p *Portal) events(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxRead, "")
	if !ok {
		return
	}
	f, err := parseFilter(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	only := r.URL.Query().Get("name")
	sub := p.feed.subscribe(v.Org)
	defer p.feed.unsubscribe(v.Org, sub)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "retry: 3000\n: connected\n\n")
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(p.cfg.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-p.ctx.Done():
			return
		case <-tick.C:
			_, _ = fmt.Fprint(w, ": keep-alive\n\n")
		case <-sub.wake:
			names := sub.take()
			if !p.stillAllowed(r, v.Org) {
				_, _ = fmt.Fprint(w, "event: end\ndata: {}\n\n")
				_ = rc.Flush()
				return
			}
			for _, name := range names {
				if only != "" && name != only {
					continue
				}
				ev, ok := p.sandboxEvent(r, v, name, f, only != "")
				if !ok {
					continue
				}
				b, _ := json.Marshal(ev)
				_, _ = fmt.Fprintf(w, "event: sandbox\ndata: %s\n\n", b)
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// stillAllowed checks, before a batch of events, that the visitor's session
// is alive and its role in the org may still read sandboxes.
func (p *Portal) stillAllowed(r *http.Request, org string) bool {
	ck, err := r.Cookie(apitypes.SessionCookie)
	if err != nil {
		return false
	}
	pr, err := p.ids.Session(r.Context(), ck.Value)
	if err != nil {
		return false
	}
	_, err = p.ids.Authorize(r.Context(), pr, org, identity.ActionSandboxRead)
	return err == nil
}

// sandboxEvent reads one sandbox through the API and renders its row (a
// 404 is a deletion), and with detail the detail page's conditions and
// events (the same answer: the API's GET of one sandbox carries them). ok is false when it could not (logged; the next
// change sends the row again).
func (p *Portal) sandboxEvent(r *http.Request, v *view, name string, f filter, detail bool) (sandboxEvent, bool) {
	res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "sandboxes", name), "", nil)
	if res.code == http.StatusNotFound {
		return sandboxEvent{Name: name, Deleted: true}, true
	}
	var sb listSandbox
	if !res.ok() || res.decode(&sb) != nil {
		p.log.ErrorContext(r.Context(), "portal: reading a changed sandbox", "org", v.Org, "sandbox", name, "code", res.code, "err", res.err.Error)
		return sandboxEvent{}, false
	}
	if !f.match(&sb) {
		return sandboxEvent{Name: name, Deleted: true}, true
	}
	rv := rowView{Org: v.Org, S: &sb}
	row, err1 := p.fragment("row", rv)
	badge, err2 := p.fragment("badge", sb)
	if err1 != nil || err2 != nil {
		p.log.Error("portal: rendering a row", "err", fmt.Sprint(err1, err2))
		return sandboxEvent{}, false
	}
	ev := sandboxEvent{Name: name, Row: row, Badge: badge, Status: sb.Status.Message}
	if detail {
		var full struct {
			Status apitypes.Readiness `json:"status"`
		}
		var buf bytes.Buffer
		err := res.decode(&full)
		if err == nil {
			err = p.pages["sandbox"].ExecuteTemplate(&buf, "observed", full.Status)
		}
		if err != nil {
			p.log.ErrorContext(r.Context(), "portal: rendering a sandbox's conditions and events", "org", v.Org, "sandbox", name, "err", err)
			return sandboxEvent{}, false
		}
		ev.Observed = buf.String()
	}
	return ev, true
}
