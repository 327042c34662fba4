package preview

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// PathPrefix starts every path-form preview URL: /preview/<org>/<name>/<endpoint>.
const PathPrefix = "/preview/"

// Base is where the preview URLs the API returns point, parsed from the
// control plane's --preview-url. Three forms:
//
//   - "https://preview.example.com[:port]": host form,
//     https://<endpoint>--<name>.preview.example.com/ (needs wildcard DNS and,
//     for https, a wildcard certificate in front of the control plane);
//   - "https://sm.example.com[:port]/preview": path form on a fixed address,
//     https://sm.example.com/preview/<org>/<name>/<endpoint>;
//   - "/preview": path form on the address the client used to reach the API
//     (the request's Host, https when the request came over TLS), so a URL
//     works as returned wherever the API itself is reachable, with no DNS.
//
// The path form serves API clients and tests; browser apps that use absolute
// paths want the host form.
type Base struct {
	// Scheme and Host of the host form or of a fixed path-form base; both
	// empty for the request-relative path form.
	Scheme, Host string
	// PathForm selects /preview/<org>/<name>/<endpoint> URLs.
	PathForm bool
}

// ParseBase parses a --preview-url value; empty means the host form on
// preview.localhost (which curl and browsers resolve to loopback).
func ParseBase(s string) (Base, error) {
	if s == "" {
		return Base{Scheme: "http", Host: "preview.localhost"}, nil
	}
	if s == strings.TrimSuffix(PathPrefix, "/") || s == PathPrefix {
		return Base{PathForm: true}, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Base{}, fmt.Errorf("preview URL %q: want http(s)://<domain>[:port] (host form), http(s)://<host>[:port]/preview or /preview (path form)", s)
	}
	if port := u.Port(); port != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Base{}, fmt.Errorf("preview URL %q: port %q is not a number from 1 to 65535", s, port)
		}
	}
	hostname := u.Hostname()
	isIP := net.ParseIP(hostname) != nil
	if !isIP && len(validation.IsDNS1123Subdomain(strings.ToLower(hostname))) > 0 {
		return Base{}, fmt.Errorf("preview URL %q: host %q is neither a DNS name nor an IP address", s, hostname)
	}
	switch strings.TrimSuffix(u.Path, "/") {
	case "":
		if isIP {
			return Base{}, fmt.Errorf("preview URL %q: the host form needs a domain (URLs are <endpoint>--<name>.<domain>); use %s://%s/preview for the path form", s, u.Scheme, u.Host)
		}
		return Base{Scheme: u.Scheme, Host: u.Host}, nil
	case strings.TrimSuffix(PathPrefix, "/"):
		return Base{Scheme: u.Scheme, Host: u.Host, PathForm: true}, nil
	}
	return Base{}, fmt.Errorf("preview URL %q: the only path allowed is /preview (path form)", s)
}

// Domain is the preview domain host form URLs end with ("" for the path form).
func (b Base) Domain() string {
	if b.PathForm {
		return ""
	}
	return b.Host
}

// For returns the base as seen by a client that reached the API at host over
// scheme: the request-relative path form takes them, the others are fixed.
func (b Base) For(scheme, host string) Base {
	if b.PathForm && b.Host == "" {
		b.Scheme, b.Host = scheme, host
	}
	return b
}

// EndpointURL returns the preview URL of endpoint of sandbox or route group
// name in org, without a trailing slash: clients append the request's path.
func (b Base) EndpointURL(org, endpoint, name string) string {
	if b.PathForm {
		return b.Scheme + "://" + b.Host + PathPrefix + url.PathEscape(org) + "/" + url.PathEscape(name) + "/" + url.PathEscape(endpoint)
	}
	return b.Scheme + "://" + endpoint + "--" + name + "." + b.Host
}

// LoginURL returns the login link of an endpoint carrying token.
func (b Base) LoginURL(org, endpoint, name, token string) string {
	return b.EndpointURL(org, endpoint, name) + LoginPath + "?token=" + url.QueryEscape(token)
}
