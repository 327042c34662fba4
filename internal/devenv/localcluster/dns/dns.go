// Package dns is the local cluster's DNS server: it watches Services and
// EndpointSlices through the Kubernetes API and answers the cluster's names the
// way CoreDNS's kubernetes plugin does for the common cases:
//
//	<svc>.<ns>.svc.<domain>              A/AAAA: the ClusterIP, or the ready endpoints of a headless Service
//	<hostname>.<svc>.<ns>.svc.<domain>   A/AAAA: an endpoint of a headless Service with a hostname
//	_<port>._<proto>.<svc>.<ns>.svc.<domain>  SRV: the named port
//	<svc>.<ns>.svc.<domain>              CNAME for ExternalName Services
//	<a-b-c-d>.<ns>.pod.<domain>          A: the address spelled in the name
//
// Names outside the cluster domain get NXDOMAIN: the server never forwards a
// query, so no DNS packet leaves the machine.
package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const ttl = 5

// srvTarget is one SRV answer.
type srvTarget struct {
	target string
	port   uint16
}

// table is an immutable snapshot of the cluster's names.
type table struct {
	addrs  map[string][]netip.Addr
	cnames map[string]string
	srvs   map[string][]srvTarget
}

// Server answers DNS queries for one cluster domain.
type Server struct {
	domain string // "cluster.local." form
	log    *slog.Logger

	mu  sync.RWMutex
	tab table
}

// New returns a Server for the cluster domain (e.g. "cluster.local").
func New(domain string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		domain: strings.ToLower(strings.TrimSuffix(domain, ".")) + ".",
		log:    log,
		tab:    table{addrs: map[string][]netip.Addr{}, cnames: map[string]string{}, srvs: map[string][]srvTarget{}},
	}
}

// Run watches the API through client, serves DNS on addr over UDP and TCP and
// blocks until ctx ends. It returns once the listeners are closed.
func (s *Server) Run(ctx context.Context, client kubernetes.Interface, addr string) error {
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	defer udp.Close()
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dns: listen tcp %s: %w", addr, err)
	}
	defer tcp.Close()

	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	svcInf := factory.Core().V1().Services()
	epsInf := factory.Discovery().V1().EndpointSlices()
	rebuild := make(chan struct{}, 1)
	poke := func() {
		select {
		case rebuild <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	if _, err := svcInf.Informer().AddEventHandler(h); err != nil {
		return fmt.Errorf("dns: watch services: %w", err)
	}
	if _, err := epsInf.Informer().AddEventHandler(h); err != nil {
		return fmt.Errorf("dns: watch endpointslices: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-rebuild:
				svcs, err1 := svcInf.Lister().List(labels.Everything())
				slices, err2 := epsInf.Lister().List(labels.Everything())
				if err := errors.Join(err1, err2); err != nil {
					s.log.Error("list for dns table", "err", err)
					continue
				}
				s.Update(svcs, slices)
			}
		}
	}()
	s.log.Info("dns serving", "addr", addr, "domain", s.domain)
	go s.serveTCP(ctx, tcp)
	go func() {
		<-ctx.Done()
		udp.Close()
		tcp.Close()
	}()
	buf := make([]byte, 4096)
	for {
		n, from, err := udp.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dns: read udp %s: %w", addr, err)
		}
		resp := s.Answer(buf[:n])
		if resp == nil {
			continue
		}
		if len(resp) > 512 {
			resp = truncate(buf[:n])
		}
		_, _ = udp.WriteTo(resp, from)
	}
}

func (s *Server) serveTCP(ctx context.Context, l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for ctx.Err() == nil {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				var lb [2]byte
				if _, err := io.ReadFull(c, lb[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(lb[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				resp := s.Answer(msg)
				if resp == nil {
					return
				}
				out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
				if _, err := c.Write(append(out, resp...)); err != nil {
					return
				}
			}
		}()
	}
}

// Update replaces the name table with one built from the given objects.
func (s *Server) Update(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) {
	t := table{addrs: map[string][]netip.Addr{}, cnames: map[string]string{}, srvs: map[string][]srvTarget{}}
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, es := range slices {
		if name := es.Labels[discoveryv1.LabelServiceName]; name != "" {
			bySvc[es.Namespace+"/"+name] = append(bySvc[es.Namespace+"/"+name], es)
		}
	}
	for _, svc := range svcs {
		base := strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + s.domain)
		switch {
		case svc.Spec.Type == corev1.ServiceTypeExternalName:
			t.cnames[base] = strings.ToLower(strings.TrimSuffix(svc.Spec.ExternalName, ".") + ".")
			continue
		case svc.Spec.ClusterIP == corev1.ClusterIPNone:
			for _, es := range bySvc[svc.Namespace+"/"+svc.Name] {
				for _, ep := range es.Endpoints {
					if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
						continue
					}
					for _, a := range ep.Addresses {
						ip, err := netip.ParseAddr(a)
						if err != nil {
							continue
						}
						t.addrs[base] = append(t.addrs[base], ip)
						if ep.Hostname != nil && *ep.Hostname != "" {
							h := strings.ToLower(*ep.Hostname) + "." + base
							t.addrs[h] = append(t.addrs[h], ip)
						}
					}
				}
			}
			if _, ok := t.addrs[base]; !ok {
				t.addrs[base] = nil // the name exists even without ready endpoints
			}
		default:
			ips := svc.Spec.ClusterIPs
			if len(ips) == 0 && svc.Spec.ClusterIP != "" {
				ips = []string{svc.Spec.ClusterIP}
			}
			for _, a := range ips {
				if ip, err := netip.ParseAddr(a); err == nil {
					t.addrs[base] = append(t.addrs[base], ip)
				}
			}
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "" {
				continue
			}
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			n := "_" + strings.ToLower(p.Name) + "._" + proto + "." + base
			t.srvs[n] = append(t.srvs[n], srvTarget{target: base, port: uint16(p.Port)})
		}
	}
	s.mu.Lock()
	s.tab = t
	s.mu.Unlock()
}

// lookup resolves a lower-case fully-qualified name. found reports whether the
// name exists (for NODATA vs NXDOMAIN).
func (s *Server) lookup(name string) (addrs []netip.Addr, cname string, srvs []srvTarget, found bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if a, ok := s.tab.addrs[name]; ok {
		return a, "", nil, true
	}
	if c, ok := s.tab.cnames[name]; ok {
		return nil, c, nil, true
	}
	if v, ok := s.tab.srvs[name]; ok {
		return nil, "", v, true
	}
	// <a-b-c-d>.<ns>.pod.<domain>
	if rest, ok := strings.CutSuffix(name, ".pod."+s.domain); ok {
		if i := strings.IndexByte(rest, '.'); i > 0 {
			if ip, err := netip.ParseAddr(strings.ReplaceAll(rest[:i], "-", ".")); err == nil && ip.Is4() {
				return []netip.Addr{ip}, "", nil, true
			}
		}
	}
	// Names that exist in the zone without data of their own.
	switch name {
	case s.domain, "svc." + s.domain, "pod." + s.domain:
		return nil, "", nil, true
	}
	return nil, "", nil, false
}

// Answer builds the response to one DNS query message; nil for garbage.
func (s *Server) Answer(query []byte) []byte {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil || hdr.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return reply(hdr, nil, dnsmessage.RCodeFormatError, nil)
	}
	name := strings.ToLower(q.Name.String())
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: ttl}
	var answers []func(*dnsmessage.Builder) error
	if !strings.HasSuffix(name, "."+s.domain) && name != s.domain {
		return reply(hdr, &q, dnsmessage.RCodeNameError, nil)
	}
	addrs, cname, srvs, found := s.lookup(name)
	if !found {
		return reply(hdr, &q, dnsmessage.RCodeNameError, nil)
	}
	if cname != "" {
		target, err := dnsmessage.NewName(cname)
		if err == nil {
			h := rh
			answers = append(answers, func(b *dnsmessage.Builder) error {
				return b.CNAMEResource(h, dnsmessage.CNAMEResource{CNAME: target})
			})
		}
	}
	switch q.Type {
	case dnsmessage.TypeA, dnsmessage.TypeALL:
		for _, a := range addrs {
			if a.Is4() {
				h, v := rh, a.As4()
				answers = append(answers, func(b *dnsmessage.Builder) error { return b.AResource(h, dnsmessage.AResource{A: v}) })
			}
		}
	}
	switch q.Type {
	case dnsmessage.TypeAAAA, dnsmessage.TypeALL:
		for _, a := range addrs {
			if a.Is6() && !a.Is4In6() {
				h, v := rh, a.As16()
				answers = append(answers, func(b *dnsmessage.Builder) error { return b.AAAAResource(h, dnsmessage.AAAAResource{AAAA: v}) })
			}
		}
	}
	if q.Type == dnsmessage.TypeSRV || q.Type == dnsmessage.TypeALL {
		for _, v := range srvs {
			target, err := dnsmessage.NewName(v.target)
			if err != nil {
				continue
			}
			h, port := rh, v.port
			answers = append(answers, func(b *dnsmessage.Builder) error {
				return b.SRVResource(h, dnsmessage.SRVResource{Priority: 0, Weight: 100, Port: port, Target: target})
			})
		}
	}
	return reply(hdr, &q, dnsmessage.RCodeSuccess, answers)
}

func reply(qh dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode, answers []func(*dnsmessage.Builder) error) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{
		ID: qh.ID, Response: true, Authoritative: true, RecursionDesired: qh.RecursionDesired, RCode: rcode,
	})
	b.EnableCompression()
	if q != nil {
		if err := b.StartQuestions(); err != nil {
			return nil
		}
		if err := b.Question(*q); err != nil {
			return nil
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil
	}
	for _, a := range answers {
		if err := a(&b); err != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// truncate answers a query whose UDP answer would not fit with the TC bit set,
// so the client retries over TCP.
func truncate(query []byte) []byte {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, Truncated: true})
	_ = b.StartQuestions()
	_ = b.Question(q)
	out, _ := b.Finish()
	return out
}
