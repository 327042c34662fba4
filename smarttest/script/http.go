package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// UserAgent is the User-Agent of script requests that do not set one.
const UserAgent = "sandboxmesh-smart-test"

// httpMethods maps the module's functions to methods; request(method, url, ...) takes any of them.
var httpMethods = map[string]string{
	"get": http.MethodGet, "post": http.MethodPost, "put": http.MethodPut, "delete": http.MethodDelete,
	"patch": http.MethodPatch, "head": http.MethodHead, "options": http.MethodOptions,
}

// httpModule is the http module: one function a method and request().
func (r *run) httpModule() *starlarkstruct.Module {
	members := starlark.StringDict{}
	for fn, method := range httpMethods {
		method := method
		members[fn] = starlark.NewBuiltin("http."+fn, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return r.do(thread, b.Name(), method, args, kwargs)
		})
	}
	members["request"] = starlark.NewBuiltin("http.request", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) == 0 {
			for i, kv := range kwargs {
				if k, _ := starlark.AsString(kv[0]); k == "method" {
					args = starlark.Tuple{kv[1]}
					kwargs = append(append([]starlark.Tuple{}, kwargs[:i]...), kwargs[i+1:]...)
					break
				}
			}
		}
		if len(args) == 0 {
			return nil, fmt.Errorf("%s: missing argument for method", b.Name())
		}
		m, ok := starlark.AsString(args[0])
		if !ok {
			return nil, fmt.Errorf("%s: method: got %s, want string", b.Name(), args[0].Type())
		}
		method, ok := httpMethods[strings.ToLower(m)]
		if !ok {
			return nil, fmt.Errorf("%s: method: %q is not one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS", b.Name(), m)
		}
		return r.do(thread, b.Name(), method, args[1:], kwargs)
	})
	return &starlarkstruct.Module{Name: "http", Members: members}
}

// httpArgs are the keyword arguments common to every http function.
type httpArgs struct {
	url      string
	params   starlark.Value
	headers  starlark.Value
	body     starlark.Value
	json     starlark.Value
	jsonBody starlark.Value
	form     starlark.Value
	auth     starlark.Value
	timeout  starlark.Value
	capture  bool
	name     string
}

func (r *run) do(thread *starlark.Thread, fn, method string, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var a httpArgs
	if err := starlark.UnpackArgs(fn, args, kwargs,
		"url", &a.url, "params?", &a.params, "headers?", &a.headers, "body?", &a.body, "json_body?", &a.jsonBody,
		"json?", &a.json, "form_body?", &a.form, "auth?", &a.auth, "timeout?", &a.timeout, "capture?", &a.capture,
		"name?", &a.name,
	); err != nil {
		return nil, err
	}
	for _, v := range []*starlark.Value{&a.params, &a.headers, &a.form, &a.auth} {
		if *v == starlark.None {
			*v = nil // None means not given
		}
	}
	pos := callerPos(thread)
	req, cancel, err := r.buildRequest(thread, fn, method, &a)
	if err != nil {
		return nil, err
	}
	defer cancel()

	r.result.Requests++
	if r.result.Requests > r.cfg.MaxRequests {
		return nil, fmt.Errorf("%s: %w: more than %d requests", fn, ErrRequestLimit, r.cfg.MaxRequests)
	}
	if r.cfg.HTTP == nil {
		return nil, fmt.Errorf("%s: no HTTP client is configured for this run", fn)
	}

	capIndex := -1
	if a.capture {
		c := Capture{Index: len(r.result.Captures), Name: a.name, Method: method, URL: req.URL.String(), Pos: pos}
		if r.cfg.Capture != nil {
			for k, vs := range r.cfg.Capture(c) {
				req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
			}
		}
		capIndex = c.Index
		r.result.Captures = append(r.result.Captures, c)
	}

	reqURL := req.URL.String() // before the Doer, which may rewrite it
	resp, body, err := r.send(req)
	if capIndex >= 0 {
		if err != nil {
			r.result.Captures[capIndex].Error = err.Error()
		} else {
			r.result.Captures[capIndex].StatusCode = resp.StatusCode
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", fn, req.URL.Redacted(), err)
	}
	return newResponse(resp, reqURL, body), nil
}

// send does the request and reads the body up to MaxBodyBytes.
func (r *run) send(req *http.Request) (*http.Response, []byte, error) {
	resp, err := r.cfg.HTTP.Do(req)
	if err != nil {
		if r.ctx.Err() != nil {
			return nil, nil, r.ctxErr()
		}
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the response body: %w", err)
	}
	if int64(len(body)) > r.cfg.MaxBodyBytes {
		return nil, nil, fmt.Errorf("%w: response body is longer than %d bytes", ErrBodyLimit, r.cfg.MaxBodyBytes)
	}
	return resp, body, nil
}

func (r *run) buildRequest(thread *starlark.Thread, fn, method string, a *httpArgs) (*http.Request, context.CancelFunc, error) {
	u, err := url.Parse(a.url)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: url: %w", fn, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("%s: url: %q is not an absolute http or https URL", fn, a.url)
	}
	if a.params != nil {
		q := u.Query()
		if err := eachStrings(a.params, func(k string, vs []string) { q[k] = append(q[k], vs...) }); err != nil {
			return nil, nil, fmt.Errorf("%s: params: %w", fn, err)
		}
		u.RawQuery = q.Encode()
	}

	var body []byte
	var contentType string
	set := 0
	if a.body != nil && a.body != starlark.None {
		set++
		switch b := a.body.(type) {
		case starlark.String:
			body = []byte(string(b))
		case starlark.Bytes:
			body = []byte(string(b))
		default:
			return nil, nil, fmt.Errorf("%s: body: got %s, want string or bytes", fn, a.body.Type())
		}
	}
	for _, j := range []struct {
		name string
		v    starlark.Value
	}{{"json_body", a.jsonBody}, {"json", a.json}} {
		if j.v == nil {
			continue
		}
		set++
		enc, err := starlark.Call(thread, json.Module.Members["encode"], starlark.Tuple{j.v}, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", fn, j.name, err)
		}
		s, _ := starlark.AsString(enc)
		body, contentType = []byte(s), "application/json"
	}
	if a.form != nil {
		set++
		form := url.Values{}
		if err := eachStrings(a.form, func(k string, vs []string) { form[k] = append(form[k], vs...) }); err != nil {
			return nil, nil, fmt.Errorf("%s: form_body: %w", fn, err)
		}
		body, contentType = []byte(form.Encode()), "application/x-www-form-urlencoded"
	}
	if set > 1 {
		return nil, nil, fmt.Errorf("%s: body, json_body, json and form_body: give at most one", fn)
	}
	if int64(len(body)) > r.cfg.MaxBodyBytes {
		return nil, nil, fmt.Errorf("%s: body: %w: %d bytes, limit %d", fn, ErrBodyLimit, len(body), r.cfg.MaxBodyBytes)
	}

	timeout := r.cfg.HTTPTimeout
	if a.timeout != nil && a.timeout != starlark.None {
		d, err := toDuration(a.timeout)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: timeout: %w", fn, err)
		}
		if d == 0 || d > r.cfg.HTTPTimeout {
			return nil, nil, fmt.Errorf("%s: timeout: %s is not in (0, %s]", fn, d, r.cfg.HTTPTimeout)
		}
		timeout = d
	}

	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("%s: %w", fn, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if a.headers != nil {
		first := map[string]bool{}
		err := eachStrings(a.headers, func(k string, vs []string) {
			ck := http.CanonicalHeaderKey(k)
			if !first[ck] {
				first[ck] = true
				req.Header.Del(ck)
			}
			req.Header[ck] = append(req.Header[ck], vs...)
		})
		if err != nil {
			cancel()
			return nil, nil, fmt.Errorf("%s: headers: %w", fn, err)
		}
		for k, vs := range req.Header {
			for _, v := range vs {
				if !validHeader(k, v) {
					cancel()
					return nil, nil, fmt.Errorf("%s: headers: %q: invalid header name or value", fn, k)
				}
			}
		}
	}
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h // Go sends req.Host, not a Host header
		req.Header.Del("Host")
	}
	if a.auth != nil {
		auth, ok := a.auth.(starlark.Tuple)
		if !ok || len(auth) != 2 {
			cancel()
			return nil, nil, fmt.Errorf("%s: auth: got %s, want (username, password)", fn, a.auth.String())
		}
		user, ok1 := starlark.AsString(auth[0])
		pass, ok2 := starlark.AsString(auth[1])
		if !ok1 || !ok2 {
			cancel()
			return nil, nil, fmt.Errorf("%s: auth: want (username, password) strings", fn)
		}
		req.SetBasicAuth(user, pass)
	}
	return req, cancel, nil
}

// validHeader reports whether a header can be sent (no control characters, token name).
func validHeader(k, v string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// eachStrings walks a dict of name -> value or list of values, converting scalars to strings.
func eachStrings(v starlark.Value, fn func(k string, vs []string)) error {
	m, ok := v.(starlark.IterableMapping)
	if !ok {
		return fmt.Errorf("got %s, want dict", v.Type())
	}
	for _, kv := range m.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return fmt.Errorf("key %s: got %s, want string", kv[0].String(), kv[0].Type())
		}
		var vs []string
		switch v := kv[1].(type) {
		case *starlark.List, starlark.Tuple:
			it := starlark.Iterate(v)
			var x starlark.Value
			for it.Next(&x) {
				s, err := scalarString(x)
				if err != nil {
					it.Done()
					return fmt.Errorf("%q: %w", k, err)
				}
				vs = append(vs, s)
			}
			it.Done()
		default:
			s, err := scalarString(v)
			if err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			vs = []string{s}
		}
		fn(k, vs)
	}
	return nil
}

func scalarString(v starlark.Value) (string, error) {
	switch x := v.(type) {
	case starlark.String:
		return string(x), nil
	case starlark.Int, starlark.Float, starlark.Bool:
		return x.String(), nil
	}
	return "", fmt.Errorf("got %s, want string, int, float or bool", v.Type())
}

// response is the Starlark response object, starlet's shape plus .status, .ok and .text.
type response struct {
	statusCode int
	status     string
	url        string
	headers    *headersValue
	body       string
}

// newResponse makes the response object; its url is the one the script asked for, not where the Doer sent it.
func newResponse(resp *http.Response, u string, body []byte) *response {
	return &response{statusCode: resp.StatusCode, status: resp.Status, url: u, headers: newHeaders(resp.Header), body: string(body)}
}

var _ starlark.HasAttrs = (*response)(nil)

func (r *response) String() string        { return fmt.Sprintf("<response %s>", r.status) }
func (r *response) Type() string          { return "http.response" }
func (r *response) Freeze()               {}
func (r *response) Truth() starlark.Bool  { return true }
func (r *response) Hash() (uint32, error) { return 0, errors.New("unhashable type: http.response") }
func (r *response) AttrNames() []string {
	return []string{"body", "encoding", "headers", "json", "ok", "status", "status_code", "text", "url"}
}

func (r *response) Attr(name string) (starlark.Value, error) {
	switch name {
	case "status_code":
		return starlark.MakeInt(r.statusCode), nil
	case "status":
		return starlark.String(r.status), nil
	case "url":
		return starlark.String(r.url), nil
	case "headers":
		return r.headers, nil
	case "encoding":
		v, _ := r.headers.lookup("content-type")
		return starlark.String(v), nil
	case "ok":
		return starlark.Bool(r.statusCode >= 200 && r.statusCode < 400), nil
	case "text":
		return starlark.String(r.body), nil
	case "body":
		return starlark.NewBuiltin("body", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			return starlark.String(r.body), nil
		}).BindReceiver(r), nil
	case "json":
		return starlark.NewBuiltin("json", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			v, err := starlark.Call(thread, jsonModule.Members["decode"], starlark.Tuple{starlark.String(r.body)}, nil)
			if err != nil {
				return nil, fmt.Errorf("response.json: body is not JSON: %w", err)
			}
			return v, nil
		}).BindReceiver(r), nil
	}
	return nil, nil
}

// headersValue is a read-only, case-insensitive mapping of response headers; keys are lower case and
// repeated headers are joined with ", ".
type headersValue struct {
	keys []string
	m    map[string]string
}

func newHeaders(h http.Header) *headersValue {
	hv := &headersValue{m: make(map[string]string, len(h))}
	for k, vs := range h {
		lk := strings.ToLower(k)
		hv.m[lk] = strings.Join(vs, ", ")
		hv.keys = append(hv.keys, lk)
	}
	sort.Strings(hv.keys)
	return hv
}

var (
	_ starlark.IterableMapping = (*headersValue)(nil)
	_ starlark.Sequence        = (*headersValue)(nil)
	_ starlark.HasAttrs        = (*headersValue)(nil)
)

func (h *headersValue) lookup(k string) (string, bool) {
	v, ok := h.m[strings.ToLower(k)]
	return v, ok
}

func (h *headersValue) String() string {
	var b strings.Builder
	b.WriteString("{")
	for i, k := range h.keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(starlark.String(k).String() + ": " + starlark.String(h.m[k]).String())
	}
	b.WriteString("}")
	return b.String()
}
func (h *headersValue) Type() string          { return "http.headers" }
func (h *headersValue) Freeze()               {}
func (h *headersValue) Truth() starlark.Bool  { return len(h.keys) > 0 }
func (h *headersValue) Hash() (uint32, error) { return 0, errors.New("unhashable type: http.headers") }
func (h *headersValue) Len() int              { return len(h.keys) }

func (h *headersValue) Get(k starlark.Value) (starlark.Value, bool, error) {
	s, ok := starlark.AsString(k)
	if !ok {
		return nil, false, fmt.Errorf("http.headers: key: got %s, want string", k.Type())
	}
	v, found := h.lookup(s)
	if !found {
		return starlark.None, false, nil
	}
	return starlark.String(v), true, nil
}

func (h *headersValue) Iterate() starlark.Iterator {
	t := make(starlark.Tuple, len(h.keys))
	for i, k := range h.keys {
		t[i] = starlark.String(k)
	}
	return t.Iterate()
}

func (h *headersValue) Items() []starlark.Tuple {
	out := make([]starlark.Tuple, len(h.keys))
	for i, k := range h.keys {
		out[i] = starlark.Tuple{starlark.String(k), starlark.String(h.m[k])}
	}
	return out
}

func (h *headersValue) AttrNames() []string { return []string{"get", "items", "keys"} }

func (h *headersValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "get":
		return starlark.NewBuiltin("get", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var k string
			var def starlark.Value = starlark.None
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &k, &def); err != nil {
				return nil, err
			}
			if v, ok := h.lookup(k); ok {
				return starlark.String(v), nil
			}
			return def, nil
		}).BindReceiver(h), nil
	case "keys":
		return starlark.NewBuiltin("keys", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			l := make([]starlark.Value, len(h.keys))
			for i, k := range h.keys {
				l[i] = starlark.String(k)
			}
			return starlark.NewList(l), nil
		}).BindReceiver(h), nil
	case "items":
		return starlark.NewBuiltin("items", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			l := make([]starlark.Value, 0, len(h.keys))
			for _, kv := range h.Items() {
				l = append(l, kv)
			}
			return starlark.NewList(l), nil
		}).BindReceiver(h), nil
	}
	return nil, nil
}
