package script

import (
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// smartTestModule is Signadot's smart_test module: smart_test.check(name) and smart_test.check(name, cond,
// message).
func (r *run) smartTestModule() *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: "smart_test", Members: starlark.StringDict{
		"check": starlark.NewBuiltin("smart_test.check", r.checkBuiltin),
	}}
}

func (r *run) checkBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var cond starlark.Value
	var message starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "cond?", &cond, "message?", &message); err != nil {
		return nil, err
	}
	ck, err := r.check(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if cond != nil && !cond.Truth() {
		msg := "check failed"
		if s, ok := starlark.AsString(message); ok && s != "" {
			msg = s
		} else if message != starlark.None {
			msg = message.String()
		}
		r.addError(ck.index, msg, callerPos(thread))
	}
	return ck, nil
}

// MaxCheckNameBytes bounds a check's name.
const MaxCheckNameBytes = 256

// check returns the check named name, registering it on first use; a script names at most MaxCheckErrors
// checks.
func (r *run) check(name string) (*checkValue, error) {
	switch {
	case name == "":
		return nil, fmt.Errorf("name: must not be empty")
	case len(name) > MaxCheckNameBytes:
		return nil, fmt.Errorf("name: longer than %d bytes", MaxCheckNameBytes)
	}
	i, ok := r.checks[name]
	if !ok {
		if len(r.result.Checks) >= r.cfg.MaxCheckErrors {
			return nil, fmt.Errorf("name %q: more than %d checks", name, r.cfg.MaxCheckErrors)
		}
		i = len(r.result.Checks)
		r.checks[name] = i
		r.result.Checks = append(r.result.Checks, Check{Name: name, Errors: []CheckError{}})
	}
	return &checkValue{r: r, name: name, index: i}, nil
}

func (r *run) addError(index int, msg string, pos SourcePosition) {
	if r.errorsLen >= r.cfg.MaxCheckErrors {
		r.result.DroppedCheckErrors++
		return
	}
	r.errorsLen++
	c := &r.result.Checks[index]
	c.Errors = append(c.Errors, CheckError{Message: truncate(msg, MaxMessageBytes), SourcePosition: pos})
}

// checkValue is the Starlark check object: .name and .error(format, *args, **kwargs).
type checkValue struct {
	r     *run
	name  string
	index int
}

var _ starlark.HasAttrs = (*checkValue)(nil)

func (c *checkValue) String() string        { return fmt.Sprintf("<check %q>", c.name) }
func (c *checkValue) Type() string          { return "smart_test.check" }
func (c *checkValue) Freeze()               {}
func (c *checkValue) Truth() starlark.Bool  { return len(c.r.result.Checks[c.index].Errors) == 0 }
func (c *checkValue) Hash() (uint32, error) { return starlark.String(c.name).Hash() }
func (c *checkValue) AttrNames() []string   { return []string{"error", "name"} }

func (c *checkValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(c.name), nil
	case "error":
		return starlark.NewBuiltin("error", c.errorBuiltin).BindReceiver(c), nil
	}
	return nil, nil
}

// errorBuiltin records a failure; the message is format.format(*args, **kwargs) as in Signadot's
// ck.error("status: {}", res.status_code).
func (c *checkValue) errorBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: missing argument for format", b.Name())
	}
	format, ok := starlark.AsString(args[0])
	if !ok {
		return nil, fmt.Errorf("%s: format: got %s, want string", b.Name(), args[0].Type())
	}
	msg := format
	if len(args) > 1 || len(kwargs) > 0 {
		f, _ := starlark.String(format).Attr("format")
		v, err := starlark.Call(thread, f, args[1:], kwargs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		msg, _ = starlark.AsString(v)
	}
	c.r.addError(c.index, msg, callerPos(thread))
	return starlark.None, nil
}

// assertModule records failed assertions as check errors without stopping the script.
func (r *run) assertModule() *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: "assert", Members: starlark.StringDict{
		"true": starlark.NewBuiltin("assert.true", r.assertTrue),
		"eq":   starlark.NewBuiltin("assert.eq", r.assertCompare(syntax.EQL, "!=")),
		"ne":   starlark.NewBuiltin("assert.ne", r.assertCompare(syntax.NEQ, "==")),
	}}
}

func (r *run) assertTrue(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cond starlark.Value
	var msg string
	check := "assert"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cond", &cond, "msg?", &msg, "check?", &check); err != nil {
		return nil, err
	}
	ck, err := r.check(check)
	if err != nil {
		return nil, fmt.Errorf("%s: check: %w", b.Name(), err)
	}
	if !cond.Truth() {
		if msg == "" {
			msg = fmt.Sprintf("assertion failed: %s is not true", cond.String())
		}
		r.addError(ck.index, msg, callerPos(thread))
	}
	return starlark.Bool(cond.Truth()), nil
}

func (r *run) assertCompare(op syntax.Token, notOp string) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var x, y starlark.Value
		var msg string
		check := "assert"
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "a", &x, "b", &y, "msg?", &msg, "check?", &check); err != nil {
			return nil, err
		}
		ck, err := r.check(check)
		if err != nil {
			return nil, fmt.Errorf("%s: check: %w", b.Name(), err)
		}
		ok, err := starlark.Compare(op, x, y)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		if !ok {
			detail := fmt.Sprintf("%s %s %s", truncate(x.String(), 200), notOp, truncate(y.String(), 200))
			if msg == "" {
				msg = "assertion failed: " + detail
			} else {
				msg += ": " + detail
			}
			r.addError(ck.index, msg, callerPos(thread))
		}
		return starlark.Bool(ok), nil
	}
}
