package routingkey

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/baggage"
)

type ctxKey struct{}

// WithKey returns a copy of ctx carrying key. An invalid key is ignored (ctx
// is returned unchanged), so FromContext only ever returns valid keys.
func WithKey(ctx context.Context, key string) context.Context {
	if !validKey(key) {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, key)
}

// ContextKey is the context key [WithKey] stores a key under, for context implementations that answer
// FromContext themselves (with [ContextValue]) without building WithKey's chain.
var ContextKey any = ctxKey{}

// ContextValue is what ctx.Value(k) returns in a context made by WithKey(parent, key) when k is
// ContextKey: key, or nil when key is invalid (WithKey does not store it); ok reports whether k is
// ContextKey.
func ContextValue(k any, key string) (v any, ok bool) {
	if _, ok := k.(ctxKey); !ok {
		return nil, false
	}
	if !validKey(key) {
		return nil, true
	}
	return key, true
}

// FromContext returns the key stored by [WithKey].
func FromContext(ctx context.Context) (string, bool) {
	key, ok := ctx.Value(ctxKey{}).(string)
	return key, ok
}

// KeyFromContext returns the key stored by [WithKey] or, failing that, the
// first valid value of a member with one of the configured key names in the
// OpenTelemetry baggage of ctx (baggage.FromContext).
func (e *Extractor) KeyFromContext(ctx context.Context) (string, bool) {
	if key, ok := FromContext(ctx); ok {
		return key, true
	}
	bag := baggage.FromContext(ctx)
	if bag.Len() == 0 {
		return "", false
	}
	for _, n := range e.names {
		if v := bag.Member(n).Value(); validKey(v) {
			return v, true
		}
	}
	return "", false
}

// Middleware returns a handler that stores the key extracted from the request
// headers in the request context ([FromContext]) before calling next.
func (e *Extractor) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key, ok := e.Extract(r.Header); ok {
			r = r.WithContext(WithKey(r.Context(), key))
		}
		next.ServeHTTP(w, r)
	})
}

// Transport returns a RoundTripper that injects the key of the request
// context ([Extractor.KeyFromContext]) into every outgoing request (on a
// clone; the caller's request is not modified) before calling base
// (http.DefaultTransport when nil).
func (e *Extractor) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{e: e, base: base}
}

type transport struct {
	e    *Extractor
	base http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	key, ok := t.e.KeyFromContext(r.Context())
	if !ok {
		return t.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	if r2.Header == nil {
		r2.Header = make(http.Header)
	}
	t.e.Inject(r2.Header, key)
	return t.base.RoundTrip(r2)
}
