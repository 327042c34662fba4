package nats

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sandboxmesh/sandboxmesh/mq"
)

// HeaderCarrier adapts nats.Header to propagation.TextMapCarrier and propagation.ValuesGetter. NATS header
// names are case-sensitive; Get and Values match names case-insensitively (an exact match first), so headers
// written as "Traceparent" or "BAGGAGE" by other clients are read. Set replaces every case variant of the
// name.
type HeaderCarrier nats.Header

var (
	_ propagation.TextMapCarrier = HeaderCarrier(nil)
	_ propagation.ValuesGetter   = HeaderCarrier(nil)
)

// Get returns the first value of the header key, matched case-insensitively.
func (c HeaderCarrier) Get(key string) string {
	if vs := c.Values(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Values returns the values of the header key, matched case-insensitively: the exact match first, then
// the other case variants in the order of their names.
func (c HeaderCarrier) Values(key string) []string {
	exact := c[key]
	var others []string
	for k := range c {
		if k != key && strings.EqualFold(k, key) {
			others = append(others, k)
		}
	}
	if len(others) == 0 {
		return exact
	}
	sort.Strings(others)
	out := append([]string(nil), exact...)
	for _, k := range others {
		out = append(out, c[k]...)
	}
	return out
}

// Set sets the header key to value, removing other case variants of key.
func (c HeaderCarrier) Set(key, value string) {
	for k := range c {
		if k != key && strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[key] = []string{value}
}

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	ks := make([]string, 0, len(c))
	for k := range c {
		ks = append(ks, k)
	}
	return ks
}

// Inject writes the trace context, baggage and routing key of ctx into msg's headers (creating them when
// nil) with mq.DefaultPropagation. Publish msg with the client as usual (nc.PublishMsg, js.PublishMsg).
func Inject(ctx context.Context, msg *nats.Msg) { InjectWith(ctx, mq.DefaultPropagation, msg) }

// InjectWith is Inject with a Propagation of the app's choice (nil means mq.DefaultPropagation).
func InjectWith(ctx context.Context, p *mq.Propagation, msg *nats.Msg) {
	if p == nil {
		p = mq.DefaultPropagation
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	p.Inject(ctx, HeaderCarrier(msg.Header))
}

// InjectFromHTTP writes the trace context, baggage and routing key of an incoming HTTP request into msg's
// headers: for a handler that publishes a message while serving r.
func InjectFromHTTP(r *http.Request, msg *nats.Msg) {
	Inject(mq.DefaultPropagation.FromHTTP(r), msg)
}

// NewMsg returns a message for subject with data and the headers Inject writes for ctx.
func NewMsg(ctx context.Context, subject string, data []byte) *nats.Msg {
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	Inject(ctx, msg)
	return msg
}

// Extract returns ctx with the trace context, baggage and routing key of the headers h (p nil means
// mq.DefaultPropagation), and the routing key ("" when there is none). routingkey.FromContext on the
// result gives the key, so the next outgoing HTTP or gRPC call of a handler propagates it.
func Extract(ctx context.Context, p *mq.Propagation, h nats.Header) (context.Context, string) {
	if p == nil {
		p = mq.DefaultPropagation
	}
	return p.Extract(ctx, carrierFor(h))
}
