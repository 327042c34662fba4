package artifacts

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Environment variables holding the S3 credentials of Open.
const (
	EnvAccessKey = "AWS_ACCESS_KEY_ID"
	EnvSecretKey = "AWS_SECRET_ACCESS_KEY"
)

// Open returns the Store a URL names:
//
//	file:///var/lib/sandboxmesh/artifacts
//	s3://bucket/prefix?endpoint=host:port&region=eu-west-1&secure=false
//
// An s3 URL takes its credentials from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, never from the URL; endpoint defaults to
// s3.amazonaws.com and secure to true.
func Open(rawURL string, opts ...Option) (Store, error) {
	fsDir, cfg, err := ParseURL(rawURL, os.Getenv)
	if err != nil {
		return nil, err
	}
	if fsDir != "" {
		return NewFS(fsDir, opts...)
	}
	return NewS3(cfg, opts...)
}

// ParseURL parses an Open URL without touching any store: a file URL gives
// its folder, an s3 URL its Config (credentials read with getenv).
func ParseURL(rawURL string, getenv func(string) string) (dir string, cfg Config, err error) {
	bad := func(format string, a ...any) (string, Config, error) {
		return "", Config{}, fmt.Errorf("artifacts: store URL %q: %s", redact(rawURL), fmt.Sprintf(format, a...))
	}
	// part is a piece of the URL as an error may show it: none of a URL that may hold credentials (an "@"
	// anywhere, the rule redact follows), whose query names, values and path could carry them too.
	secret := strings.Contains(rawURL, "@")
	part := func(s string) string {
		if secret {
			return "<redacted>"
		}
		return s
	}
	if rawURL == "" {
		return bad("empty (want file:///path or s3://bucket/prefix?endpoint=host:port)")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return bad("%s", part(fmt.Sprint(errors.Unwrap(err))))
	}
	if u.User != nil {
		return bad("credentials do not belong in the URL; set %s and %s", EnvAccessKey, EnvSecretKey)
	}
	if u.Opaque != "" {
		return bad("not an absolute path URL (want file:///path or s3://bucket/prefix)")
	}
	if u.Fragment != "" {
		return bad("unexpected fragment")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("a file URL has no host (write file:///path)")
		}
		if u.RawQuery != "" {
			return bad("a file URL takes no query")
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") || strings.IndexByte(u.Path, 0) >= 0 {
			return bad("a file URL needs an absolute path (file:///path)")
		}
		return u.Path, Config{}, nil
	case "s3":
		cfg := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Endpoint: "s3.amazonaws.com", Secure: true}
		if cfg.Bucket == "" {
			return bad("no bucket (s3://bucket/prefix)")
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return bad("query: %s", part(err.Error()))
		}
		for k, v := range q {
			if len(v) != 1 {
				return bad("query parameter %s given %d times", part(k), len(v))
			}
			switch k {
			case "endpoint":
				if v[0] == "" || strings.ContainsAny(v[0], "/@ ") {
					return bad("endpoint %q is not host[:port]", part(v[0]))
				}
				cfg.Endpoint = v[0]
			case "region":
				cfg.Region = v[0]
			case "secure":
				b, err := strconv.ParseBool(v[0])
				if err != nil {
					return bad("secure=%q is not true or false", part(v[0]))
				}
				cfg.Secure = b
			default:
				return bad("unknown query parameter %q (endpoint, region, secure)", part(k))
			}
		}
		if cfg.Prefix != "" {
			if err := checkKey(cfg.Prefix+"/", true); err != nil {
				return bad("prefix %q: %s", part(cfg.Prefix), part(err.Error()))
			}
		}
		cfg.AccessKey, cfg.SecretKey = getenv(EnvAccessKey), getenv(EnvSecretKey)
		if cfg.AccessKey == "" || cfg.SecretKey == "" {
			return bad("set %s and %s for the s3 store", EnvAccessKey, EnvSecretKey)
		}
		return "", cfg, nil
	case "":
		return bad("no scheme (want file:///path or s3://bucket/prefix)")
	default:
		return bad("unknown scheme %q (want file or s3)", part(u.Scheme))
	}
}

// redact hides a URL that may hold credentials (any "@") in error messages,
// keeping only its scheme.
func redact(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	if scheme, _, ok := strings.Cut(raw, "://"); ok && !strings.ContainsAny(scheme, "@/") {
		return scheme + "://<redacted>"
	}
	return "<redacted>"
}
