package script

import (
	"fmt"
	"time"

	starlarktime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// timeModule is go.starlark.net/lib/time plus sleep.
func (r *run) timeModule() *starlarkstruct.Module {
	members := starlark.StringDict{}
	for k, v := range starlarktime.Module.Members {
		members[k] = v
	}
	members["sleep"] = starlark.NewBuiltin("time.sleep", r.sleep)
	return &starlarkstruct.Module{Name: "time", Members: members}
}

// sleep waits for seconds (int or float) or a time.duration, at most MaxSleep, and stops early when the run
// ends.
func (r *run) sleep(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "seconds", &v); err != nil {
		return nil, err
	}
	d, err := toDuration(v)
	if err != nil {
		return nil, fmt.Errorf("%s: seconds: %w", b.Name(), err)
	}
	if d > r.cfg.MaxSleep {
		return nil, fmt.Errorf("%s: %w: %s is longer than %s", b.Name(), ErrSleepLimit, d, r.cfg.MaxSleep)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return starlark.None, nil
	case <-r.ctx.Done():
		return nil, fmt.Errorf("%s: %w", b.Name(), r.ctxErr())
	}
}

// toDuration converts seconds (int or float) or a time.duration; negative and non-finite values are errors.
func toDuration(v starlark.Value) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case starlarktime.Duration:
		d = time.Duration(x)
	case starlark.Int:
		s, ok := x.Int64()
		if !ok || s > int64(1<<62)/int64(time.Second) || s < 0 {
			return 0, fmt.Errorf("%s out of range", x)
		}
		d = time.Duration(s) * time.Second
	case starlark.Float:
		f := float64(x)
		if f != f || f < 0 || f > float64(1<<62)/float64(time.Second) {
			return 0, fmt.Errorf("%s out of range", x)
		}
		d = time.Duration(f * float64(time.Second))
	default:
		return 0, fmt.Errorf("got %s, want int, float or time.duration", v.Type())
	}
	if d < 0 {
		return 0, fmt.Errorf("%s is negative", d)
	}
	return d, nil
}
