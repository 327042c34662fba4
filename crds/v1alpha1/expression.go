package v1alpha1

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"
)

// ForkService is what a fork expression can refer to: {{ .Service.Host }} and
// {{ .Service.Port }} (Signadot's sandbox service references).
type ForkService struct {
	// Host is the DNS name of the fork's Service.
	Host string
	// Port is the first container port of the forked workload; 0 when it has
	// none (then an expression using {{ .Service.Port }} fails with ErrNoPort).
	Port int32
}

// ErrInvalidExpression means a fork expression does not parse or refers to
// something other than .Service.Host and .Service.Port.
var ErrInvalidExpression = errors.New("invalid expression")

// ErrNoPort means an expression uses {{ .Service.Port }} but the forked
// workload declares no container port.
var ErrNoPort = errors.New("the forked workload declares no container port")

// ExpressionPattern is the whole language of fork expressions as an RE2
// regular expression: text without "{{", and the actions {{ .Service.Host }}
// and {{ .Service.Port }} (with Go template trim markers and spacing; no
// functions, pipelines, variables, conditions, loops or comments). The CRD
// checks it with CEL (see EnvValueFromFork.Expression; a test keeps the two
// equal) and Resolve with Go, so kubectl and the REST API refuse the same
// expressions, with the field path.
const ExpressionPattern = `^(?:[^{]|[{][^{]|[{][{](?:-[ \t\r\n])?[ \t\r\n]*[.]Service[.](?:Host|Port)[ \t\r\n]*(?:[ \t\r\n]-)?[}][}])*[{]?$`

var reExpression = regexp.MustCompile(ExpressionPattern)

// maxExpressionOutput bounds a resolved value (an env value, not a document).
const maxExpressionOutput = 4096

// ExpressionHelp says what an expression may contain (for error messages).
const ExpressionHelp = "only text and the actions {{ .Service.Host }} and {{ .Service.Port }} may be used"

// Resolve evaluates the expression of f for svc with Go text/template. The
// expression is text with {{ .Service.Host }} and {{ .Service.Port }} actions
// and nothing else (ExpressionPattern); anything else is an error wrapping
// ErrInvalidExpression. Using {{ .Service.Port }} when svc.Port is 0 is an
// error wrapping ErrNoPort.
func (f *EnvValueFromFork) Resolve(svc ForkService) (string, error) {
	if !reExpression.MatchString(f.Expression) {
		// Say where: the template parser's message when it has one.
		if _, err := parseExpression(f.Expression); err != nil {
			return "", err
		}
		return "", fmt.Errorf("%w: %s", ErrInvalidExpression, ExpressionHelp)
	}
	tree, err := parseExpression(f.Expression)
	if err != nil {
		return "", err
	}
	if svc.Port <= 0 && usesPort(tree) {
		return "", fmt.Errorf("{{ .Service.Port }}: %w", ErrNoPort)
	}
	t, err := template.New("expression").Option("missingkey=error").AddParseTree("expression", tree)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidExpression, err)
	}
	var b strings.Builder
	data := struct{ Service ForkService }{svc}
	if err := t.Execute(&limitedWriter{w: &b, n: maxExpressionOutput}, data); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidExpression, err)
	}
	return b.String(), nil
}

// parseExpression parses s as a template (comments kept, so that they are
// refused like every node but text and the two actions).
func parseExpression(s string) (*parse.Tree, error) {
	t := parse.New("expression")
	t.Mode = parse.ParseComments | parse.SkipFuncCheck
	if _, err := t.Parse(s, "", "", map[string]*parse.Tree{}); err != nil {
		return nil, fmt.Errorf("%w: %v; %s", ErrInvalidExpression, err, ExpressionHelp)
	}
	if t.Root == nil {
		return t, nil
	}
	for _, n := range t.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
		case *parse.ActionNode:
			if field(n) == nil {
				return nil, fmt.Errorf("%w: %s: %s", ErrInvalidExpression, n, ExpressionHelp)
			}
		default:
			return nil, fmt.Errorf("%w: %s: %s", ErrInvalidExpression, n, ExpressionHelp)
		}
	}
	return t, nil
}

// field returns the .Service.Host or .Service.Port field of an action, or nil.
func field(n *parse.ActionNode) *parse.FieldNode {
	if n.Pipe == nil || len(n.Pipe.Decl) > 0 || n.Pipe.IsAssign || len(n.Pipe.Cmds) != 1 || len(n.Pipe.Cmds[0].Args) != 1 {
		return nil
	}
	f, ok := n.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 2 || f.Ident[0] != "Service" || (f.Ident[1] != "Host" && f.Ident[1] != "Port") {
		return nil
	}
	return f
}

func usesPort(t *parse.Tree) bool {
	if t.Root == nil {
		return false
	}
	for _, n := range t.Root.Nodes {
		if a, ok := n.(*parse.ActionNode); ok {
			if f := field(a); f != nil && f.Ident[1] == "Port" {
				return true
			}
		}
	}
	return false
}

// limitedWriter fails writes beyond n bytes.
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
