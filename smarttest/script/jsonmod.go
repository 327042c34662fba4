package script

import (
	"fmt"

	"go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// MaxJSONDepth bounds the nesting of decoded JSON: go.starlark.net/lib/json decodes recursively, and a body
// of a million "[" would exhaust the goroutine stack, which is fatal to the host.
const MaxJSONDepth = 10_000

// jsonModule is go.starlark.net/lib/json with decode refusing input nested deeper than MaxJSONDepth.
var jsonModule = func() *starlarkstruct.Module {
	members := starlark.StringDict{}
	for k, v := range json.Module.Members {
		members[k] = v
	}
	members["decode"] = starlark.NewBuiltin("json.decode", jsonDecode)
	m := &starlarkstruct.Module{Name: "json", Members: members}
	m.Freeze()
	return m
}()

func jsonDecode(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s string
	var def starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "x", &s, "default?", &def); err != nil {
		return nil, err
	}
	if err := checkJSONDepth(s, MaxJSONDepth); err != nil {
		if def != nil {
			return def, nil
		}
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.Call(thread, json.Module.Members["decode"], args, kwargs)
}

// checkJSONDepth reports an error when arrays and objects in s nest deeper than limit.
func checkJSONDepth(s string, limit int) error {
	depth, inString, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > limit {
				return fmt.Errorf("JSON nests deeper than %d levels at offset %d", limit, i)
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}
