package client

// Preview helpers: requests to a sandbox's endpoints through the control
// plane's preview proxy in its path form
// (<base>/preview/<org>/<sandbox>/<endpoint>/<path>, authenticated with the API
// key), with the sandbox's routing key injected. The preview proxy only
// reaches endpoints the sandbox declares in spec.defaultRouteGroup.endpoints;
// FindEndpoint maps an in-cluster target URL to such an endpoint. The CLI's
// `local proxy` and the MCP server's http_request tool use them.

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// ErrNoEndpoint means the sandbox declares no matching endpoint.
var ErrNoEndpoint = errors.New("no such endpoint")

// PreviewURL returns the path-form preview URL of an endpoint with path (which may
// carry a query) appended.
func PreviewURL(base, org, sandbox, endpoint, path string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("preview base URL %q: want http(s)://host[:port]", base)
	}
	rest, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", path, err)
	}
	p := strings.TrimLeft(rest.Path, "/")
	u.Path = u.Path + "/preview/" + url.PathEscape(org) + "/" + url.PathEscape(sandbox) + "/" + url.PathEscape(endpoint) + "/" + p
	u.RawQuery = rest.RawQuery
	return u, nil
}

// PreviewEndpoints lists the names and targets of a sandbox's declared endpoints.
func PreviewEndpoints(sb *Sandbox) []apitypes.SandboxEndpoint {
	if len(sb.Endpoints) > 0 {
		return sb.Endpoints
	}
	var out []apitypes.SandboxEndpoint
	if sb.Spec.DefaultRouteGroup != nil {
		for _, e := range sb.Spec.DefaultRouteGroup.Endpoints {
			out = append(out, apitypes.SandboxEndpoint{Name: e.Name, Target: e.Target})
		}
	}
	return out
}

// FindEndpoint returns the endpoint of sb whose target is target (scheme, host
// and port compared; e.g. http://frontend.shop.svc:8080), or named target.
func FindEndpoint(sb *Sandbox, target string) (apitypes.SandboxEndpoint, error) {
	eps := PreviewEndpoints(sb)
	for _, e := range eps {
		if e.Name == target {
			return e, nil
		}
	}
	want, err := url.Parse(target)
	if err == nil && want.Host != "" {
		for _, e := range eps {
			got, err := url.Parse(e.Target)
			if err == nil && strings.EqualFold(got.Scheme, want.Scheme) && strings.EqualFold(got.Host, want.Host) {
				return e, nil
			}
		}
	}
	var have []string
	for _, e := range eps {
		have = append(have, e.Name+"="+e.Target)
	}
	if len(have) == 0 {
		have = []string{"none"}
	}
	return apitypes.SandboxEndpoint{}, fmt.Errorf("sandbox %s declares no endpoint %q (declared: %s); the preview path only reaches declared endpoints: add {name: <name>, target: %s} to spec.defaultRouteGroup.endpoints and apply the sandbox again: %w",
		sb.Name, target, strings.Join(have, ", "), target, ErrNoEndpoint)
}

// PreviewProxy returns a reverse proxy that sends every request to endpoint of
// sandbox through the preview path at base, with the API key and the routing
// key set. The preview proxy strips the API key before the request reaches the
// cluster.
func PreviewProxy(base, org, sandbox, endpoint, apiKey, routingKey string, tr http.RoundTripper) (*httputil.ReverseProxy, error) {
	root, err := PreviewURL(base, org, sandbox, endpoint, "/")
	if err != nil {
		return nil, err
	}
	return &httputil.ReverseProxy{
		Transport:     tr,
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = root.Scheme
			pr.Out.URL.Host = root.Host
			pr.Out.URL.Path = strings.TrimRight(root.Path, "/") + "/" + strings.TrimLeft(pr.In.URL.Path, "/")
			pr.Out.URL.RawPath = ""
			pr.Out.Host = root.Host
			AuthorizePreview(pr.Out.Header, apiKey, routingKey)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "sandboxmesh local proxy: control plane at %s unreachable: %v\n", root.Host, err)
		},
	}, nil
}

// AuthorizePreview sets the API key and injects the routing key into h.
func AuthorizePreview(h http.Header, apiKey, routingKey string) {
	h.Set(apitypes.HeaderAPIKey, apiKey)
	if routingKey != "" {
		routingkey.Default.Inject(h, routingKey)
	}
}
