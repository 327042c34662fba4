package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// Exit codes a script can rely on.
const (
	// ExitOK means success.
	ExitOK = 0
	// ExitError is any other error (server errors, conflicts, quota...).
	ExitError = 1
	// ExitUsage means bad flags or arguments, a bad spec file or a spec the
	// control plane rejected as invalid: fix the input.
	ExitUsage = 2
	// ExitNotFound means the named object (sandbox, route group, cluster, org) does not exist.
	ExitNotFound = 3
	// ExitTimeout means --wait gave up before the sandbox was ready.
	ExitTimeout = 4
	// ExitAuth means no API key, or the control plane rejected it.
	ExitAuth = 5
	// ExitUnavailable means the control plane could not be reached.
	ExitUnavailable = 6
)

// exitError carries an exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usageErrorf(format string, args ...any) error {
	return withCode(ExitUsage, fmt.Errorf(format, args...))
}

// ExitCode maps an error to the documented exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	switch {
	case errors.Is(err, client.ErrWaitTimeout):
		return ExitTimeout
	case errors.Is(err, client.ErrNotFound):
		return ExitNotFound
	case errors.Is(err, client.ErrUnauthorized):
		return ExitAuth
	case errors.Is(err, client.ErrInvalid):
		return ExitUsage
	case isUnreachable(err):
		return ExitUnavailable
	}
	return ExitError
}

func isUnreachable(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Status == 502 || ae.Status == 503 || ae.Status == 504
	}
	var ue *url.Error
	var ne *net.OpError
	var de *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &ne) || errors.As(err, &de) ||
		(errors.As(err, &ue) && (ue.Timeout() || errors.Is(err, context.DeadlineExceeded)))
}

// explain adds what to do to an API error.
func (a *App) explain(err error, what string) error {
	if err == nil {
		return nil
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		msg := ae.Message
		if len(ae.Fields) > 0 {
			var b strings.Builder
			b.WriteString(msg)
			for _, f := range ae.Fields {
				fmt.Fprintf(&b, "\n  %s: %s", f.Path, f.Message)
			}
			msg = b.String()
		}
		if ae.RequestID != "" {
			msg += " (request " + ae.RequestID + ")"
		}
		switch {
		case errors.Is(err, client.ErrUnauthorized):
			return withCode(ExitAuth, fmt.Errorf("%s: %s\nhint: check the key with `sandboxmesh auth status`, or log in with `sandboxmesh auth login --org <org> --api-key <key>`", what, msg))
		case errors.Is(err, client.ErrNotFound):
			hint := a.notFoundHint(what)
			if strings.HasPrefix(ae.Message, "org ") {
				hint = "an API key belongs to one org: check the org (--org, $" + EnvOrg + " or org in the config) with `sandboxmesh auth status`"
			}
			return withCode(ExitNotFound, fmt.Errorf("%s: %s\nhint: %s", what, msg, hint))
		case errors.Is(err, client.ErrQuotaExceeded):
			return fmt.Errorf("%s: %s\nhint: delete a sandbox you no longer need (`sandboxmesh sandbox list`)", what, msg)
		case errors.Is(err, client.ErrConflict):
			return fmt.Errorf("%s: %s", what, msg)
		case errors.Is(err, client.ErrInvalid):
			return withCode(ExitUsage, fmt.Errorf("%s: %s", what, msg))
		case errors.Is(err, client.ErrForbidden):
			return withCode(ExitAuth, fmt.Errorf("%s: %s\nhint: this needs an admin key", what, msg))
		case ae.Status >= 502 && ae.Status <= 504:
			return withCode(ExitUnavailable, fmt.Errorf("%s: the control plane at %s answered %d: %s\nhint: a proxy in front of it may be unable to reach it; retry, or check that it runs", what, a.cfg.APIURL, ae.Status, msg))
		}
		return fmt.Errorf("%s: %s", what, msg)
	}
	if isUnreachable(err) {
		return withCode(ExitUnavailable, fmt.Errorf("%s: cannot reach the control plane at %s: %w\nhint: is it running? Set its URL with --api-url, $%s or api_url in %s",
			what, a.cfg.APIURL, err, EnvAPIURL, a.cfgPathOrDefault()))
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (a *App) notFoundHint(what string) string {
	switch {
	case strings.HasPrefix(what, "sandbox"):
		return "list the sandboxes of org " + a.cfg.Org + " with `sandboxmesh sandbox list`"
	case strings.HasPrefix(what, "route group"):
		return "list the route groups of org " + a.cfg.Org + " with `sandboxmesh routegroup list`"
	case strings.HasPrefix(what, "cluster"):
		return "list clusters with `sandboxmesh cluster list`, register one with `sandboxmesh cluster add <name>`"
	}
	return "check the org (" + a.cfg.Org + ") with `sandboxmesh auth status`"
}

func (a *App) cfgPathOrDefault() string {
	if p, err := a.configPath(); err == nil {
		return p
	}
	return "~/.sandboxmesh/config.yaml"
}

// silentError ends the CLI with a code and no message (the child of
// `local run` already said what went wrong).
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func silentExit(code int) error { return withCode(code, &silentError{code: code}) }
