package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"
)

// FieldProblem is one thing wrong with a spec, at a field path
// ("spec.create[0].script").
type FieldProblem struct {
	Path    string
	Message string
}

func (p FieldProblem) String() string { return p.Path + ": " + p.Message }

var (
	reStepName   = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	reInputName  = regexp.MustCompile(`^[A-Za-z_][-._A-Za-z0-9]*$`)
	reOutputName = regexp.MustCompile(`^[A-Za-z_][-_A-Za-z0-9]*$`)
	reEnvName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reNamespace  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// ValidateResourcePlugin checks a ResourcePlugin's spec: what its CRD
// checks (same field paths) plus what CEL leaves out (valueFromStep links
// point to a step and an output it declares, no cycles, a create step never
// reads a delete step). It returns nil for a valid spec.
func ValidateResourcePlugin(spec *ResourcePluginSpec) []FieldProblem {
	var ps []FieldProblem
	add := func(path, format string, a ...any) {
		ps = append(ps, FieldProblem{Path: path, Message: fmt.Sprintf(format, a...)})
	}
	if len(spec.Description) > 255 {
		add("spec.description", "at most 255 bytes")
	}
	r := spec.Runner
	switch {
	case r.Image == "":
		add("spec.runner.image", "required")
	case len(r.Image) > 512:
		add("spec.runner.image", "at most 512 bytes")
	}
	if r.Namespace != "" && (len(r.Namespace) > 63 || !reNamespace.MatchString(r.Namespace)) {
		add("spec.runner.namespace", "must be a DNS label (at most 63 characters)")
	}
	if len(r.PodTemplateOverlay) > 65536 {
		add("spec.runner.podTemplateOverlay", "at most 65536 bytes")
	}
	switch {
	case r.RunnerPath == "":
	case !strings.HasPrefix(r.RunnerPath, "/"):
		add("spec.runner.runnerPath", "must be an absolute path")
	case len(r.RunnerPath) > 1024:
		add("spec.runner.runnerPath", "at most 1024 bytes")
	}
	lists := []struct {
		field string
		steps []PluginStep
	}{{"create", spec.Create}, {"delete", spec.Delete}}
	for _, l := range lists {
		lp := "spec." + l.field
		if len(l.steps) > 16 {
			add(lp, "at most 16 steps")
		}
		seen := map[string]bool{}
		for i, s := range l.steps {
			sp := fmt.Sprintf("%s[%d]", lp, i)
			if seen[s.Name] {
				add(lp, "step names must be unique (%s twice)", s.Name)
			}
			seen[s.Name] = true
			validateStep(sp, &s, add)
		}
	}
	for _, d := range spec.Delete {
		for _, c := range spec.Create {
			if c.Name == d.Name {
				add("spec.delete", "step names are unique across create and delete (%s is both)", d.Name)
			}
		}
	}
	if len(ps) > 0 {
		return ps // links are checked on lists that are otherwise valid
	}
	if _, err := StepOrder(spec.Create, nil); err != nil {
		ps = append(ps, stepOrderProblem("spec.create", err))
	}
	if _, err := StepOrder(spec.Delete, spec.Create); err != nil {
		ps = append(ps, stepOrderProblem("spec.delete", err))
	}
	for i, s := range spec.Create {
		for j, in := range s.Inputs {
			if in.ValueFromStep == nil {
				continue
			}
			for _, d := range spec.Delete {
				if d.Name == in.ValueFromStep.Name {
					add(fmt.Sprintf("spec.create[%d].inputs[%d].valueFromStep.name", i, j), "a create step cannot read the delete step %s", d.Name)
				}
			}
		}
	}
	return ps
}

func stepOrderProblem(list string, err error) FieldProblem {
	if e, ok := err.(*StepOrderError); ok {
		return FieldProblem{Path: list + e.Path, Message: e.Message}
	}
	return FieldProblem{Path: list, Message: err.Error()}
}

func validateStep(sp string, s *PluginStep, add func(path, format string, a ...any)) {
	if len(s.Name) > 63 || !reStepName.MatchString(s.Name) {
		add(sp+".name", "must be a DNS label starting with a letter (at most 63 characters)")
	}
	if len(s.Script) > 65536 {
		add(sp+".script", "at most 65536 bytes")
	}
	if !strings.HasPrefix(s.Script, "#!") {
		add(sp+".script", "a script starts with #! (e.g. #!/bin/sh)")
	}
	if len(s.Inputs) > 16 {
		add(sp+".inputs", "at most 16 inputs")
	}
	if len(s.Outputs) > 16 {
		add(sp+".outputs", "at most 16 outputs")
	}
	seen := map[string]bool{}
	for j, in := range s.Inputs {
		ip := fmt.Sprintf("%s.inputs[%d]", sp, j)
		if seen[in.Name] {
			add(sp+".inputs", "input names must be unique (%s twice)", in.Name)
		}
		seen[in.Name] = true
		if len(in.Name) > 63 || !reInputName.MatchString(in.Name) {
			add(ip+".name", "must match ^[A-Za-z_][-._A-Za-z0-9]*$ (at most 63 characters)")
		}
		if in.ValueFromSandbox == (in.ValueFromStep != nil) {
			add(ip, "exactly one of valueFromSandbox: true and valueFromStep")
		}
		if r := in.ValueFromStep; r != nil {
			if len(r.Name) > 63 || !reStepName.MatchString(r.Name) {
				add(ip+".valueFromStep.name", "must be a DNS label starting with a letter (at most 63 characters)")
			}
			if len(r.Output) > 63 || !reOutputName.MatchString(r.Output) {
				add(ip+".valueFromStep.output", "must match ^[A-Za-z_][-_A-Za-z0-9]*$ (at most 63 characters)")
			}
		}
		if a := in.As; a != nil {
			if a.Env == "" && a.Path == "" {
				add(ip+".as", "as takes env, path or both")
			}
			if a.Env != "" {
				if len(a.Env) > 128 || !reEnvName.MatchString(a.Env) {
					add(ip+".as.env", "must match ^[A-Za-z_][A-Za-z0-9_]*$ (at most 128 characters)")
				}
				if strings.HasPrefix(a.Env, "SANDBOXMESH_") || strings.HasPrefix(a.Env, "SIGNADOT_") {
					add(ip+".as.env", "SANDBOXMESH_ and SIGNADOT_ variables are set by SandboxMesh")
				}
			}
			if a.Path != "" {
				validatePath(ip+".as.path", a.Path, add)
				if strings.Contains(a.Path, "/../") || strings.HasSuffix(a.Path, "/..") {
					add(ip+".as.path", "a path may not contain ..")
				}
				if a.Path == "/sandboxmesh" || strings.HasPrefix(a.Path, "/sandboxmesh/") {
					add(ip+".as.path", "/sandboxmesh is SandboxMesh's")
				}
			}
		}
	}
	seen = map[string]bool{}
	for j, o := range s.Outputs {
		op := fmt.Sprintf("%s.outputs[%d]", sp, j)
		if seen[o.Name] {
			add(sp+".outputs", "output names must be unique (%s twice)", o.Name)
		}
		seen[o.Name] = true
		if len(o.Name) > 63 || !reOutputName.MatchString(o.Name) {
			add(op+".name", "must match ^[A-Za-z_][-_A-Za-z0-9]*$ (at most 63 characters)")
		}
		validatePath(op+".valueFromPath", o.ValueFromPath, add)
		if len(o.Description) > 255 {
			add(op+".description", "at most 255 bytes")
		}
	}
}

func validatePath(p, v string, add func(path, format string, a ...any)) {
	if !strings.HasPrefix(v, "/") {
		add(p, "must be an absolute path")
	}
	if len(v) > 1024 {
		add(p, "at most 1024 bytes")
	}
}

// StepOrderError is why steps cannot be ordered; Path is relative to the
// step list ("[1].inputs[0].valueFromStep").
type StepOrderError struct {
	Path    string
	Message string
}

func (e *StepOrderError) Error() string { return e.Path + ": " + e.Message }

// StepOrder orders steps so that every step runs after the steps whose
// outputs it reads (valueFromStep), declared order breaking ties (Kahn's
// algorithm, stable). A link to one of before (the create steps, when steps
// are the delete steps) adds no edge: those ran earlier. A link to a step or
// an output that does not exist, or a cycle, is a *StepOrderError.
func StepOrder(steps, before []PluginStep) ([]int, error) {
	index := map[string]int{}
	for i, s := range steps {
		index[s.Name] = i
	}
	declares := func(s *PluginStep, out string) bool {
		for _, o := range s.Outputs {
			if o.Name == out {
				return true
			}
		}
		return false
	}
	deps := make([]map[int]bool, len(steps))
	for i, s := range steps {
		deps[i] = map[int]bool{}
		for j, in := range s.Inputs {
			r := in.ValueFromStep
			if r == nil {
				continue
			}
			path := fmt.Sprintf("[%d].inputs[%d].valueFromStep", i, j)
			if k, ok := index[r.Name]; ok {
				if !declares(&steps[k], r.Output) {
					return nil, &StepOrderError{Path: path + ".output", Message: fmt.Sprintf("step %s has no output %s", r.Name, r.Output)}
				}
				if k == i {
					return nil, &StepOrderError{Path: path + ".name", Message: fmt.Sprintf("step %s reads its own output", r.Name)}
				}
				deps[i][k] = true
				continue
			}
			found := false
			for b := range before {
				if before[b].Name == r.Name {
					found = true
					if !declares(&before[b], r.Output) {
						return nil, &StepOrderError{Path: path + ".output", Message: fmt.Sprintf("step %s has no output %s", r.Name, r.Output)}
					}
				}
			}
			if !found {
				return nil, &StepOrderError{Path: path + ".name", Message: fmt.Sprintf("no step %s", r.Name)}
			}
		}
	}
	order := make([]int, 0, len(steps))
	done := make([]bool, len(steps))
	for len(order) < len(steps) {
		next := -1
		for i := range steps {
			if done[i] {
				continue
			}
			ready := true
			for k := range deps[i] {
				if !done[k] {
					ready = false
					break
				}
			}
			if ready {
				next = i
				break
			}
		}
		if next < 0 {
			var names []string
			for i := range steps {
				if !done[i] {
					names = append(names, steps[i].Name)
				}
			}
			return nil, &StepOrderError{Path: "", Message: "the valueFromStep links of steps " + strings.Join(names, ", ") + " form a cycle"}
		}
		done[next] = true
		order = append(order, next)
	}
	return order, nil
}
