package v1alpha1

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// ForkService is what a fork expression can refer to: {{ .Service.Host }} and
// {{ .Service.Port }}.
type ForkService struct {
	// Host is the DNS name of the fork's Service.
	Host string
	// Port is the first container port of the forked workload.
	Port int32
}

// ErrInvalidExpression means a fork expression does not parse or refers to
// something other than .Service.Host and .Service.Port.
var ErrInvalidExpression = errors.New("invalid expression")

// maxExpressionOutput bounds a resolved value (an env value, not a document).
const maxExpressionOutput = 4096

// Resolve evaluates the expression of f for svc. The expression is text with
// {{ .Service.Host }} and {{ .Service.Port }} actions and nothing else (no
// functions, pipelines, conditions or loops); anything else is an error
// wrapping ErrInvalidExpression.
func (f *EnvValueFromFork) Resolve(svc ForkService) (string, error) {
	t, err := template.New("expression").Option("missingkey=error").Parse(f.Expression)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidExpression, err)
	}
	if t.Tree != nil && t.Tree.Root != nil {
		for _, n := range t.Tree.Root.Nodes {
			switch n := n.(type) {
			case *parse.TextNode:
			case *parse.ActionNode:
				if !allowedAction(n) {
					return "", fmt.Errorf("%w: %s: only {{ .Service.Host }} and {{ .Service.Port }} may be used", ErrInvalidExpression, n)
				}
			default:
				return "", fmt.Errorf("%w: %s: only {{ .Service.Host }} and {{ .Service.Port }} may be used", ErrInvalidExpression, n)
			}
		}
	}
	var b strings.Builder
	data := struct{ Service ForkService }{svc}
	if err := t.Execute(&limitedWriter{w: &b, n: maxExpressionOutput}, data); err != nil {
		return "", fmt.Errorf("%w: %v (only {{ .Service.Host }} and {{ .Service.Port }} exist)", ErrInvalidExpression, err)
	}
	return b.String(), nil
}

func allowedAction(n *parse.ActionNode) bool {
	if n.Pipe == nil || len(n.Pipe.Decl) > 0 || len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) != 1 {
		return false
	}
	f, ok := n.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
	return ok && len(f.Ident) == 2 && f.Ident[0] == "Service" && (f.Ident[1] == "Host" || f.Ident[1] == "Port")
}

// limitedWriter fails writes beyond n bytes (a range over a huge constant
// cannot blow up memory).
type limitedWriter struct {
	w *strings.Builder
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.w.Len()+len(p) > l.n {
		return 0, fmt.Errorf("result longer than %d bytes", l.n)
	}
	return l.w.Write(p)
}
