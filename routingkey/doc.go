// Package routingkey is the one routing-key library of SandboxMesh: it extracts
// the routing key of a request from every header form we support, injects it
// into outgoing requests in every form, generates and validates keys, builds
// the header regexes that mesh backends (Istio, Gateway API) route on, and
// gives applications one-line propagation through an OpenTelemetry
// propagator, a net/http middleware and RoundTripper, and gRPC interceptors.
//
// # Header forms
//
// For every configured key name N (default [DefaultKeyName], "sm-routing-key"):
//
//   - custom headers (Config.CustomHeaders): the whole value is the key;
//   - W3C baggage: a list member N=<key>, with optional whitespace around
//     "=" and the member, optional ";properties" (ignored), percent-encoded
//     values, several header fields (joined with ","); a baggage list longer
//     than [MaxBaggageBytes] is ignored as a whole;
//   - W3C tracestate: a list member N=<key> (no whitespace around "=", as the
//     grammar requires); a list longer than [MaxTracestateBytes] is ignored;
//   - OpenTracing "ot-baggage-N", Jaeger "uberctx-N" and B3/Brave
//     "baggage-N": the whole value is the key.
//
// Single-valued forms (custom headers, ot-baggage-N, uberctx-N, baggage-N) must
// carry exactly one header field whose value is exactly a valid key; several
// fields are treated as their comma-joined value (as Envoy does) and therefore
// never match. Values are not trimmed or percent-decoded.
//
// Only valid keys (see [Validate]) are ever returned: a member or header with
// an invalid value is ignored and the search goes on. Malformed input never
// panics. Baggage and tracestate parsing is lenient outside our own member: a
// malformed foreign member does not hide a well-formed routing-key member.
//
// # Precedence
//
// When headers disagree, the first source in this order that yields a valid
// key wins:
//
//  1. custom headers, in configured order;
//  2. baggage;
//  3. tracestate;
//  4. ot-baggage-N;
//  5. uberctx-N;
//  6. baggage-N.
//
// Within one header, the first configured key name wins (KeyNames[0] before
// KeyNames[1]), and for one key name the first valid member in the list (after
// joining several header fields with ",") wins. [Extractor.HeaderNames] lists
// the headers in exactly this order.
//
// # Mesh matchers
//
// [Extractor.HeaderMatchers] returns, per header, an RE2 regex with Envoy
// semantics (full match of the comma-joined value). A request carries the key
// if any matcher matches. The regexes agree with [Extractor.Extract] on every
// single header, with these documented divergences: the mesh matches a
// literal key only (Extract also accepts a percent-encoded baggage value);
// the mesh matches a header in which any member with one of our names
// carries the key (Extract returns the first valid one, so a header with two
// different keys matches both); the mesh does not apply the size limits; and
// RE2 in Envoy may not match "." on invalid UTF-8 where Go's regexp does. See
// docs/routing-key.md, which also covers Envoy's RE2 program-size limit.
//
// # Applications
//
// [Extractor.Middleware] and [Extractor.Transport] propagate the key through
// net/http, the gRPC interceptors through gRPC metadata, and
// [Extractor.Propagator] through OpenTelemetry; [WithKey] and [FromContext]
// carry it in a context.Context.
package routingkey
