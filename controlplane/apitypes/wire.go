package apitypes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// WireRuleKind says what DecodeWire does with a field the target type lacks.
type WireRuleKind int

const (
	// WireUnsupported is a field of Signadot's API that SandboxMesh does not
	// implement: accepted when absent, null or empty ("", false, 0, [], {} or
	// an object of such), refused with its full path when it carries a value.
	WireUnsupported WireRuleKind = iota + 1
	// WireReadOnly is a field of an answer that clients send back (status,
	// createdAt...): dropped whatever its value.
	WireReadOnly
	// WireExtract is a field the caller handles itself: removed from the
	// body and returned by DecodeWire (null and absent are not returned).
	WireExtract
)

// WireRule is how DecodeWire treats one field the target type lacks (or,
// for WireReadOnly, any field).
type WireRule struct {
	Kind WireRuleKind
	// Why completes "not supported by SandboxMesh: " for WireUnsupported.
	Why string
}

// WireRules maps schema paths to rules. A schema path is a field path with
// the list indices left out: "spec.forks[].endpoints", "spec.middleware".
type WireRules map[string]WireRule

// Extracted is a WireExtract field found in a body.
type Extracted struct {
	// Path is the field's path, e.g. spec.forks[0].endpoints.
	Path string
	// Schema is its schema path, e.g. spec.forks[].endpoints.
	Schema string
	// Value is its JSON value (never null).
	Value json.RawMessage
}

// WireError is a request body DecodeWire refused.
type WireError struct {
	// Malformed: the body is not JSON of the right shape (syntax, wrong
	// types, unknown fields); otherwise a field carries a value SandboxMesh
	// does not support.
	Malformed bool
	// Msg says what is wrong when no field is to blame (syntax errors).
	Msg string
	// Fields are the offending fields with their full paths.
	Fields FieldErrors
}

// Error formats the error.
func (e *WireError) Error() string {
	if len(e.Fields) > 0 {
		return e.Fields.Error()
	}
	return e.Msg
}

// DecodeWire decodes body, one JSON value, into v (a pointer) the way clients
// generated from Signadot's v2 swagger send it: null is accepted for every
// field (as absent), rules say what to do with the Signadot fields v lacks,
// and every other unknown field or value of the wrong JSON type is refused
// with its full path (spec.forks[0].customizations.foo). The remaining body
// is then decoded strictly. Errors are *WireError.
func DecodeWire(body []byte, v any, rules WireRules) ([]Extracted, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, &WireError{Malformed: true, Msg: fmt.Sprintf("%v (at byte %d)", se, se.Offset)}
		}
		return nil, &WireError{Malformed: true, Msg: err.Error()}
	}
	if _, err := dec.Token(); err == nil {
		return nil, &WireError{Malformed: true, Msg: "trailing data after the JSON value"}
	}
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return nil, fmt.Errorf("apitypes: DecodeWire needs a pointer, got %T", v)
	}
	w := &walker{rules: rules}
	if t.Elem().Kind() == reflect.Struct {
		if _, ok := tree.(map[string]any); !ok {
			return nil, &WireError{Malformed: true, Msg: "the body must be a JSON object, got JSON " + jsonKind(tree)}
		}
	}
	tree, _ = w.value("", "", t.Elem(), tree)
	if len(w.errs.errs) > 0 {
		return nil, &WireError{Malformed: w.malformed, Fields: w.errs.errs}
	}
	clean, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("apitypes: re-encode body: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(clean))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		// The walk checked names and types; what is left is a value a
		// custom decoder refused (a malformed time, say).
		return nil, &WireError{Malformed: true, Msg: err.Error()}
	}
	return w.ext, nil
}

type walker struct {
	rules     WireRules
	errs      checker
	ext       []Extracted
	malformed bool
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
)

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func (w *walker) typeErr(path string, v any, want string) {
	w.malformed = true
	w.errs.add(path, "got JSON %s, want %s", jsonKind(v), want)
}

// value checks v against t at path and returns it with nulls, read-only,
// unsupported-but-empty and extracted fields removed; keep is false for null.
func (w *walker) value(path, schema string, t reflect.Type, v any) (out any, keep bool) {
	if v == nil {
		return nil, false
	}
	if t == rawMessageType || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType) {
		return v, true
	}
	switch t.Kind() {
	case reflect.Pointer:
		return w.value(path, schema, t.Elem(), v)
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			w.typeErr(path, v, "object")
			return v, true
		}
		w.object(path, schema, t, obj)
		return obj, true
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 { // []byte: base64 in a string
			if _, ok := v.(string); !ok {
				w.typeErr(path, v, "base64 string")
			}
			return v, true
		}
		list, ok := v.([]any)
		if !ok {
			w.typeErr(path, v, "array")
			return v, true
		}
		for i, item := range list {
			if out, keep := w.value(fmt.Sprintf("%s[%d]", path, i), schema+"[]", t.Elem(), item); keep {
				list[i] = out
			} else {
				list[i] = nil
			}
			if w.errs.full() {
				break
			}
		}
		return list, true
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			w.typeErr(path, v, "object")
			return v, true
		}
		for _, k := range sortedKeys(obj) {
			if out, keep := w.value(fmt.Sprintf("%s[%q]", path, k), schema+"{}", t.Elem(), obj[k]); keep {
				obj[k] = out
			} else {
				obj[k] = nil
			}
		}
		return obj, true
	case reflect.String:
		if _, ok := v.(string); !ok {
			w.typeErr(path, v, "string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			w.typeErr(path, v, "boolean")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeErr(path, v, "integer")
			break
		}
		i, err := n.Int64()
		if err != nil || reflect.Zero(t).OverflowInt(i) {
			w.typeErr(path, v, fmt.Sprintf("an integer that fits in %s", t.Kind()))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeErr(path, v, "integer")
			break
		}
		i, err := n.Int64()
		if err != nil || i < 0 || reflect.Zero(t).OverflowUint(uint64(i)) {
			w.typeErr(path, v, fmt.Sprintf("an integer that fits in %s", t.Kind()))
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeErr(path, v, "number")
			break
		}
		if _, err := n.Float64(); err != nil {
			w.typeErr(path, v, "a number in range")
		}
	}
	return v, true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (w *walker) object(path, schema string, t reflect.Type, obj map[string]any) {
	fields := jsonFields(t)
	for _, k := range sortedKeys(obj) {
		if w.errs.full() {
			return
		}
		p, sp := join(path, k), join(schema, k)
		f, ok := fields[k]
		if !ok {
			f, ok = fields[strings.ToLower(k)] // encoding/json matches names case-insensitively
		}
		if ok {
			sp = join(schema, f.name) // rules name fields as the type does
		}
		if w.rules[sp].Kind == WireReadOnly {
			delete(obj, k)
			continue
		}
		if ok {
			if out, keep := w.value(p, sp, f.typ, obj[k]); keep {
				obj[k] = out
			} else {
				delete(obj, k)
			}
			continue
		}
		r, ok := w.rules[sp]
		if !ok {
			w.malformed = true
			w.errs.add(p, "unknown field")
			continue
		}
		switch r.Kind {
		case WireUnsupported:
			if bad, full := firstValue(p, obj[k]); full {
				w.errs.add(bad, "not supported by SandboxMesh: %s; remove it or send null", r.Why)
			}
		case WireExtract:
			if obj[k] != nil {
				raw, _ := json.Marshal(obj[k])
				w.ext = append(w.ext, Extracted{Path: p, Schema: sp, Value: raw})
			}
		}
		delete(obj, k)
	}
}

// firstValue returns the path of the first non-empty value in v (items of
// lists count whatever they hold) and whether there is one.
func firstValue(path string, v any) (string, bool) {
	switch x := v.(type) {
	case nil:
	case string:
		return path, x != ""
	case bool:
		return path, x
	case json.Number:
		f, err := x.Float64()
		return path, err != nil || f != 0
	case []any:
		if len(x) > 0 {
			return path + "[0]", true
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if p, full := firstValue(join(path, k), x[k]); full {
				return p, true
			}
		}
	}
	return path, false
}

var fieldCache sync.Map // reflect.Type -> map[string]jsonField

// jsonField is a field of a struct as encoding/json sees it.
type jsonField struct {
	name string // its JSON name
	typ  reflect.Type
}

// jsonFields maps the JSON names of t's fields (and, lower-cased, as a
// fallback) to them, following embedded structs as encoding/json does.
func jsonFields(t reflect.Type) map[string]jsonField {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]jsonField)
	}
	m := map[string]jsonField{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					add(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := m[name]; !dup {
				m[name] = jsonField{name: name, typ: ft}
			}
		}
	}
	add(t)
	for name, f := range m {
		if l := strings.ToLower(name); l != name {
			if _, dup := m[l]; !dup {
				m[l] = f
			}
		}
	}
	fieldCache.Store(t, m)
	return m
}
