// Package diff owns the traffic diff of smart tests: the capture model
// ([Capture]), the pairing of the captures of a sandbox run with those of a
// baseline run, the structured diff of one pair ([DiffCaptures]), the
// classification of each difference as noise or finding, and the summary in
// the shape of Signadot's TrafficDiff ([Compare], [Result], [TrafficDiff]).
// It is pure: standard library only, no I/O, deterministic (the same input
// gives the same output, byte for byte once encoded).
//
// # Pairing
//
// The captures of one run are keyed by capture point, request name (the
// script's name for the request, else the method and the path template, in
// which segments that look like ids become "{}"), and occurrence (the n-th
// capture with that point and name, in Seq order, then ID order). A target
// (sandbox) capture pairs with the baseline-A capture of the same key, and
// baseline A pairs with baseline B in the same way. Captures of the target
// or of baseline A without a partner are listed as unpaired; a key missing
// from baseline B only means no noise is learned for that pair.
//
// # Structured diff
//
// A pair is compared as two documents whose paths are RFC 6901 JSON
// pointers: /request/method, /request/path, /request/query/{name},
// /request/headers/{lower-case name}, /request/body[/...],
// /response/status, /response/headers/{name}, /response/body[/...].
// Header and query values with several values are joined with ", ".
// Headers in Options.IgnoreHeaders (hop-by-hop, per-request ids, trace and
// routing-key propagation; a trailing "*" matches a prefix) are skipped.
// Bodies with equal bytes give no op and are never decoded. A body that
// decodes as exactly one JSON value is compared structurally: objects by
// member, arrays by index, numbers by value (1, 1.0 and 1e0 are equal,
// exactly, without float rounding), and a value whose JSON type differs is
// one replace op with typeChange=true. An array whose elements are the same
// multiset in a different order is reported as one replace op on the array
// with reorder=true rather than as per-index changes (this applies to
// arrays of any element type, not only objects). Bodies that are not JSON
// (or were truncated by the capture point) fall back to text: one replace
// op on the body with both values truncated; binary bodies are shown as
// "<binary N bytes>". A body that becomes or stops being JSON is a type
// change. JSON is decoded by a small parser of this package into a tree
// of nodes (members sorted by key, the last of duplicate keys winning)
// that holds the values encoding/json gives with UseNumber (fuzzed against
// it), with a tenth of its allocations; BenchmarkDecode1MB and
// BenchmarkDiff1MB measure both beside encoding/json and reflect.DeepEqual.
//
// Output is bounded: at most Options.MaxOps ops are reported per pair
// (findings first, then noise, each in path order; the counters count all
// ops found, up to an internal bound of 10000 per pair), and values longer
// than Options.MaxValueBytes when encoded are shown truncated, as a JSON
// string ending in "…".
//
// # Classification
//
// Following Diffy, the two baseline runs measure noise. An op of the
// target-vs-baseline diff is noise (green) when
//   - the same op kind at the same path appears in the diff of baseline A
//     against baseline B for the same pair, or
//   - the same op kind appears in the A-vs-B diff of any pair with the same
//     capture point and request name at the same path with array indices
//     replaced by "*", and the values of both ops have the same shapes
//     (uuid, timestamp, hex id, integer, number, string, ...): a field that
//     holds a fresh uuid or timestamp in each baseline run is learned as
//     noise at every occurrence and array position.
//
// Every other op is a finding: red when it changes the response status,
// changes a value's JSON type in a request or response body (null is a
// type; a body that stops or starts being JSON counts), or removes an
// object member of a body or the whole body; yellow otherwise (changed
// values, added members, added or removed array elements, reordered
// arrays, any header change, method, path and query changes). A null
// value that becomes a number is therefore red, and so is a number that
// becomes a string: consumers that parse the field break.
//
// Relevance is a number in [0, 1] per op: green 0; red 1.0 for a status
// change, 0.9 for a type change, 0.8 for a removal; yellow 0.6 for a
// response body change, 0.4 for a response header change, 0.3 for a
// request change (the request is the caller's doing, whose own hop shows the
// cause), and 0.2 for a reordered array. MaxRelevance is the maximum over
// ops. Signadot's thresholds and scores are not public; these are ours.
//
// # Counters
//
// [TrafficDiff] counts, over the target-vs-baseline ops of all pairs,
// additions, removals and replacements, and captures = pairs compared; each
// of Red, Yellow, Green counts the ops of that category and captures = pairs
// with at least one op of that category. CapturePoints is the number of
// distinct capture points among the pairs, UnpairedCaptures the number of
// unpaired captures.
//
// # Shape
//
// JSON names follow Signadot's models where they are known: TrafficDiff
// {captures, additions, removals, replacements, maxRelevance, red, yellow,
// green, capturePoints, unpairedCaptures}, per point diffs[]{request,
// response: {baseline, target, diffOps[]}}, DiffOp {op, path, value,
// oldValue, classification.noise}. Ours in addition: classification
// category and relevance, typeChange and reorder on an op, and the lists
// [Result.Unpaired] and [Result.Findings] (the counters in TrafficDiff are
// numbers). Signadot's baselineSession and targetSession belong to the
// execution, which the control plane owns. Bodies in captures encode as
// base64, as []byte does. Compare and DiffCaptures do not modify their
// arguments and may run concurrently.
package diff
