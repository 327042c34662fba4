package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// reDirective matches @{name} and @{embed: file}.
var reDirective = regexp.MustCompile(`@\{\s*([^{}]*?)\s*\}`)

var reVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// parseSets parses --set k=v flags.
func parseSets(sets []string) (map[string]string, error) {
	vars := map[string]string{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok || !reVarName.MatchString(k) {
			return nil, usageErrorf("--set %q: want name=value (name: letters, digits, '_', '-', '.')", s)
		}
		vars[k] = v
	}
	return vars, nil
}

// renderTemplate fills @{var} with vars and @{embed: file} with the file's
// contents (relative to dir). An embed that is a whole YAML value (after "key: "
// or "- ") becomes a quoted string, so multi-line files are safe; elsewhere the
// contents are inserted as they are and must be one line. Every missing
// variable is reported at once.
func renderTemplate(src []byte, vars map[string]string, dir, file string) ([]byte, error) {
	var missing []string
	var errs []string
	lines := bytes.Split(src, []byte("\n"))
	for i, line := range lines {
		lineNo := i + 1
		lines[i] = reDirective.ReplaceAllFunc(line, func(m []byte) []byte {
			inner := string(reDirective.FindSubmatch(m)[1])
			if rest, ok := strings.CutPrefix(inner, "embed:"); ok {
				name := strings.TrimSpace(rest)
				if name == "" {
					errs = append(errs, fmt.Sprintf("%s:%d: @{embed: <file>} needs a file name", file, lineNo))
					return m
				}
				p := name
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, p)
				}
				content, err := os.ReadFile(p)
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s:%d: embed %s: %v", file, lineNo, name, err))
					return m
				}
				if wholeValue(line, m) {
					q, _ := json.Marshal(string(content))
					return q
				}
				if bytes.ContainsAny(bytes.TrimRight(content, "\n"), "\n") {
					errs = append(errs, fmt.Sprintf("%s:%d: embed %s: the file has several lines; use @{embed: ...} as a whole value (key: @{embed: %s})", file, lineNo, name, name))
					return m
				}
				return bytes.TrimRight(content, "\r\n")
			}
			if !reVarName.MatchString(inner) {
				errs = append(errs, fmt.Sprintf("%s:%d: %s: want @{variable} or @{embed: file}", file, lineNo, m))
				return m
			}
			v, ok := vars[inner]
			if !ok {
				missing = append(missing, inner)
				return m
			}
			return []byte(v)
		})
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		missing = dedupe(missing)
		sets := make([]string, len(missing))
		for i, m := range missing {
			sets[i] = "--set " + m + "=<value>"
		}
		errs = append(errs, fmt.Sprintf("%s: no value for %s: pass %s", file, strings.Join(missing, ", "), strings.Join(sets, " ")))
	}
	if len(errs) > 0 {
		return nil, usageErrorf("%s", strings.Join(errs, "\n"))
	}
	return bytes.Join(lines, []byte("\n")), nil
}

// wholeValue reports whether directive m is the whole YAML value of line.
func wholeValue(line, m []byte) bool {
	i := bytes.Index(line, m)
	before := strings.TrimSpace(string(line[:i]))
	after := strings.TrimSpace(string(line[i+len(m):]))
	if after != "" && !strings.HasPrefix(after, "#") {
		return false
	}
	return strings.HasSuffix(before, ":") || before == "-" || before == ""
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
