package apitypes

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// PreviewPolicy limits what the preview endpoints of a cluster may reach
// (extension): GET/PUT /api/v2/orgs/{org}/clusters/{cluster}/preview-policy.
// Whatever it says, the Kubernetes API server (the Service kubernetes in
// default) is never a preview target, and the system namespaces
// (SystemNamespaces) are refused unless allowedNamespaces lists them.
type PreviewPolicy struct {
	// AllowedNamespaces are the only namespaces endpoint targets may be in;
	// empty: every namespace but the system ones.
	AllowedNamespaces []string `json:"allowedNamespaces"`
}

// SystemNamespaces are refused as preview targets unless a policy lists them.
var SystemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// MaxPolicyNamespaces bounds allowedNamespaces.
const MaxPolicyNamespaces = 256

// ValidatePreviewPolicy checks a policy with field paths.
func ValidatePreviewPolicy(p *PreviewPolicy) FieldErrors {
	c := &checker{}
	c.maxItems("allowedNamespaces", len(p.AllowedNamespaces), MaxPolicyNamespaces)
	seen := map[string]bool{}
	for i, ns := range p.AllowedNamespaces {
		if c.full() {
			break
		}
		path := fmt.Sprintf("allowedNamespaces[%d]", i)
		if fe := ValidateDNSName(path, ns); fe != nil {
			c.add(fe.Path, "%s", fe.Message)
		} else if seen[ns] {
			c.add(path, "duplicate namespace %q", ns)
		}
		seen[ns] = true
	}
	return c.errs
}

// splitServiceHost splits <name>.<namespace>.svc (or .svc.cluster.local, or
// the .deploy form of targets) into name, namespace and kind.
func splitServiceHost(host string) (name, ns, kind string, ok bool) {
	labels := strings.Split(host, ".")
	if len(labels) == 5 && labels[2] == "svc" && labels[3] == "cluster" && labels[4] == "local" {
		labels = labels[:3]
	}
	if len(labels) != 3 || (labels[2] != "svc" && labels[2] != "deploy") || !reNamespace.MatchString(labels[0]) || !reNamespace.MatchString(labels[1]) {
		return "", "", "", false
	}
	return labels[0], labels[1], labels[2], true
}

// Check reports why the policy refuses a preview target host (a target's
// <name>.<namespace>.svc|deploy, or the in-cluster host an agent resolved
// it to), or nil when it allows it. Only cluster-internal Service names are
// allowed: IP addresses and other names are refused.
func (p PreviewPolicy) Check(host string) error {
	name, ns, _, ok := splitServiceHost(strings.ToLower(host))
	switch {
	case !ok:
		return fmt.Errorf("%q is not a cluster-internal Service name (<name>.<namespace>.svc)", host)
	case name == "kubernetes" && ns == "default":
		return fmt.Errorf("%q is the Kubernetes API server, never a preview target", host)
	case slices.Contains(p.AllowedNamespaces, ns):
		return nil
	case len(p.AllowedNamespaces) > 0:
		return fmt.Errorf("namespace %q is not in the cluster's preview policy (allowedNamespaces %v)", ns, p.AllowedNamespaces)
	case slices.Contains(SystemNamespaces, ns):
		return fmt.Errorf("namespace %q is a system namespace: list it in the cluster's preview policy (allowedNamespaces) to allow it", ns)
	}
	return nil
}

// CheckEndpoints checks endpoint targets against the policy; path is the
// field path of the list (spec.endpoints, spec.defaultRouteGroup.endpoints).
func (p PreviewPolicy) CheckEndpoints(path string, eps []v1alpha1.Endpoint) FieldErrors {
	c := &checker{}
	for i, e := range eps {
		u, err := url.Parse(e.Target)
		if err != nil {
			continue // the spec validation reports it
		}
		if err := p.Check(u.Hostname()); err != nil {
			c.add(fmt.Sprintf("%s[%d].target", path, i), "refused by the cluster's preview policy: %v", err)
		}
	}
	return c.errs
}

var reSvcHost = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.svc(\.cluster\.local)?$`)

// ValidateObservedEndpoints checks the endpoints an agent reports: hosts and
// URLs must be cluster-internal Service names (<name>.<namespace>.svc, as
// the operator resolves them) with a valid port, so a misbehaving agent
// cannot point previews at arbitrary addresses.
func ValidateObservedEndpoints(path string, eps []v1alpha1.EndpointStatus) FieldErrors {
	c := &checker{}
	c.maxItems(path, len(eps), 64)
	host := func(p, hostport string, needPort bool) {
		h, port, err := net.SplitHostPort(hostport)
		if err != nil {
			if needPort {
				c.add(p, "%q: want <name>.<namespace>.svc:<port>", hostport)
				return
			}
			h, port = hostport, ""
		}
		if !reSvcHost.MatchString(h) {
			c.add(p, "%q is not a cluster-internal Service name (<name>.<namespace>.svc)", h)
		}
		if port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				c.add(p, "port %q is out of range (1-65535)", port)
			}
		}
	}
	for i, e := range eps {
		if c.full() {
			break
		}
		p := fmt.Sprintf("%s[%d]", path, i)
		if e.Host != "" {
			host(p+".host", e.Host, false)
		}
		if e.Port < 0 || e.Port > 65535 {
			c.add(p+".port", "must be between 1 and 65535 (got %d)", e.Port)
		}
		if e.URL != "" {
			u, err := url.Parse(e.URL)
			switch {
			case err != nil || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
				c.add(p+".url", "%q: want scheme://<name>.<namespace>.svc:<port>", e.URL)
			case u.Scheme != "http" && u.Scheme != "grpc" && u.Scheme != "tcp":
				c.add(p+".url", "scheme %q: want http, grpc or tcp", u.Scheme)
			default:
				host(p+".url", u.Host, false)
			}
		}
	}
	return c.errs
}
