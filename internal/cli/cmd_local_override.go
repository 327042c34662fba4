package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// overrideNamePrefix names the forwards `local override` adds (Signadot's override-N).
const overrideNamePrefix = "override-"

// overrideOptions are the flags of `local override`.
type overrideOptions struct {
	sandbox, workload, with string
	port                    int
	exceptStatus            string
	detach                  bool
	timeout                 time.Duration
}

func (a *App) localOverrideCommand() *cobra.Command {
	var o overrideOptions
	cmd := &cobra.Command{
		Use:   "override --sandbox NAME --workload W --workload-port PORT --with [HOST:]PORT [--except-status 404,503] [--detach]",
		Short: "Send a sandbox's keyed requests for one workload to a process on this machine first",
		Long: `override makes the sandbox's keyed requests for workload W (a fork, by its baseline's
name, or a virtual workload, by its name) on port PORT go to a process on this machine first,
through the local tunnel (` + "`sandboxmesh local connect`" + ` must be running). The request then
falls through to the workload (the fork, or the baseline for a virtual workload) when:
  - the local process is down or does not answer, or
  - without --except-status: its answer lacks the header "sm-override: true" (Signadot's
    "sd-override: true" counts too), so the local process chooses what it overrides;
  - with --except-status: its answer's status is one of the listed codes.
So one endpoint can be changed on your machine without forking the rest.

It adds a forward (spec.routing.forwards, named override-N) and an override middleware
(spec.middleware) to the sandbox, waits until the sandbox is ready with it, and keeps it
until you press Ctrl-C, which removes it again; with --detach it returns at once and the
override stays until ` + "`sandboxmesh local override delete`" + `. HTTP/1.1, h2c and gRPC requests
are overridden (bodies up to 1 MiB); WebSocket and raw TCP go to the workload.`,
		Example: `  sandboxmesh local override --sandbox feat-x --workload route --workload-port 8083 --with 8083
  sandboxmesh local override --sandbox feat-x -w route -p 8083 --with localhost:9000 --except-status 404,503 --detach
  sandboxmesh local override list --sandbox feat-x
  sandboxmesh local override delete override-1 --sandbox feat-x`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			return a.localOverride(cmd.Context(), c, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.sandbox, "sandbox", "", "sandbox whose keyed requests are overridden")
	f.StringVarP(&o.workload, "workload", "w", "", "workload of the sandbox: a fork's baseline name or a virtual workload's name")
	f.IntVarP(&o.port, "workload-port", "p", 0, "the workload's (container) port whose requests are overridden")
	f.StringVar(&o.with, "with", "", "where the local process listens: PORT or HOST:PORT (default host localhost)")
	f.StringVar(&o.exceptStatus, "except-status", "", "comma-separated status codes that make a request fall through, e.g. 404,503 (default: fall through unless the answer carries sm-override: true)")
	f.BoolVar(&o.detach, "detach", false, "return once the override works and leave it in place")
	f.DurationVar(&o.timeout, "wait-timeout", 3*time.Minute, "how long to wait for the sandbox to be ready with the override (exit code 4 after it)")
	_ = cmd.RegisterFlagCompletionFunc("sandbox", a.completeSandboxes)

	var listSandbox, delSandbox string
	list := &cobra.Command{
		Use:   "list [--sandbox NAME]",
		Short: "List the local overrides of one sandbox or of all",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			return a.localOverrideList(cmd.Context(), c, listSandbox)
		},
	}
	list.Flags().StringVar(&listSandbox, "sandbox", "", "only this sandbox")
	_ = list.RegisterFlagCompletionFunc("sandbox", a.completeSandboxes)
	del := &cobra.Command{
		Use:   "delete NAME --sandbox SANDBOX",
		Short: "Remove a local override (its forward and middleware) from a sandbox",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if delSandbox == "" {
				return usageErrorf("--sandbox is required")
			}
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			if err := a.removeOverride(cmd.Context(), c, delSandbox, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.Stdout, "override %s removed from sandbox %s\n", args[0], delSandbox)
			return nil
		},
	}
	del.Flags().StringVar(&delSandbox, "sandbox", "", "the sandbox")
	_ = del.RegisterFlagCompletionFunc("sandbox", a.completeSandboxes)
	cmd.AddCommand(list, del)
	return cmd
}

// parseOverride checks the flags and returns the forward's target and the policy value ("" for none).
func parseOverride(o overrideOptions) (toLocal, policy string, err error) {
	switch {
	case o.sandbox == "" || o.workload == "" || o.with == "":
		return "", "", usageErrorf("--sandbox, --workload and --with are required")
	case o.port < 1 || o.port > 65535:
		return "", "", usageErrorf("--workload-port: want the workload's port, 1-65535 (got %d)", o.port)
	}
	toLocal = o.with
	if _, err := strconv.Atoi(o.with); err == nil {
		toLocal = net.JoinHostPort("localhost", o.with)
	}
	host, port, err := net.SplitHostPort(toLocal)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return "", "", usageErrorf("--with %q: want PORT or HOST:PORT, e.g. 8083 or localhost:8083", o.with)
	}
	if o.exceptStatus != "" {
		var pol smv1.OverridePolicy
		for _, s := range strings.Split(o.exceptStatus, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 100 || n > 599 {
				return "", "", usageErrorf("--except-status %q: want HTTP status codes separated by commas, e.g. 404,503", o.exceptStatus)
			}
			pol.ExceptStatusCodes = append(pol.ExceptStatusCodes, int32(n))
		}
		b, _ := json.Marshal(pol)
		policy = string(b)
	}
	return toLocal, policy, nil
}

// addOverride adds a forward named override-N and its middleware to sb and returns the name.
func addOverride(sb *client.Sandbox, workload string, port int32, toLocal, policy string) string {
	if sb.Spec.Routing == nil {
		sb.Spec.Routing = &smv1.SandboxRouting{}
	}
	name := ""
	for n := 1; ; n++ {
		name = overrideNamePrefix + strconv.Itoa(n)
		if !slices.ContainsFunc(sb.Spec.Routing.Forwards, func(f smv1.Forward) bool { return f.Name == name }) &&
			!slices.ContainsFunc(sb.Spec.Local, func(l smv1.Local) bool { return l.Name == name }) {
			break
		}
	}
	sb.Spec.Routing.Forwards = append(sb.Spec.Routing.Forwards, smv1.Forward{Name: name, Port: port, ToLocal: toLocal})
	m := smv1.Middleware{Name: smv1.MiddlewareOverride,
		Args:  []smv1.MiddlewareArg{{Name: smv1.OverrideArgHost, ValueFrom: &smv1.MiddlewareArgValueFrom{Forward: name}}},
		Match: []smv1.MiddlewareMatch{{Workload: workload}}}
	if policy != "" {
		m.Args = append(m.Args, smv1.MiddlewareArg{Name: smv1.OverrideArgPolicy, Value: policy})
	}
	sb.Spec.Middleware = append(sb.Spec.Middleware, m)
	return name
}

// dropOverride removes forward name and the middleware that uses it from sb; false when there is none.
func dropOverride(sb *client.Sandbox, name string) bool {
	if sb.Spec.Routing == nil {
		return false
	}
	n := len(sb.Spec.Routing.Forwards)
	sb.Spec.Routing.Forwards = slices.DeleteFunc(sb.Spec.Routing.Forwards, func(f smv1.Forward) bool { return f.Name == name })
	if len(sb.Spec.Routing.Forwards) == n {
		return false
	}
	sb.Spec.Middleware = slices.DeleteFunc(sb.Spec.Middleware, func(m smv1.Middleware) bool {
		h := m.Arg(smv1.OverrideArgHost)
		return m.Name == smv1.MiddlewareOverride && h != nil && h.ValueFrom != nil && h.ValueFrom.Forward == name
	})
	if len(sb.Spec.Routing.Forwards) == 0 {
		sb.Spec.Routing = nil
	}
	return true
}

// localOverride adds the override, waits for it and, unless detached, removes it on interrupt.
func (a *App) localOverride(ctx context.Context, c *client.Client, o overrideOptions) error {
	toLocal, policy, err := parseOverride(o)
	if err != nil {
		return err
	}
	var name string
	var applied *client.Sandbox
	err = a.updateSandbox(ctx, c, o.sandbox, func(sb *client.Sandbox) error {
		name = addOverride(sb, o.workload, int32(o.port), toLocal, policy)
		return nil
	}, &applied)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Stderr, "override %s added to sandbox %s: keyed requests for %s port %d go to %s first; waiting up to %s for the sandbox\n",
		name, o.sandbox, o.workload, o.port, toLocal, o.timeout)
	cleanup := func() {
		if o.detach {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := a.removeOverride(cctx, c, o.sandbox, name); err != nil {
			fmt.Fprintf(a.Stderr, "warning: override %s stays in sandbox %s: %v\nhint: remove it with `sandboxmesh local override delete %s --sandbox %s`\n", name, o.sandbox, err, name, o.sandbox)
			return
		}
		fmt.Fprintf(a.Stderr, "override %s removed from sandbox %s\n", name, o.sandbox)
	}
	if _, err := a.waitReady(ctx, c, o.sandbox, o.timeout, a.Stderr); err != nil {
		cleanup()
		return err
	}
	if o.detach {
		fmt.Fprintf(a.Stdout, "override %s of sandbox %s is active (detached); remove it with `sandboxmesh local override delete %s --sandbox %s`\n", name, o.sandbox, name, o.sandbox)
		return nil
	}
	fmt.Fprintf(a.Stdout, "override %s of sandbox %s is active: keyed requests for %s:%d reach %s first; press Ctrl-C to remove it\n", name, o.sandbox, o.workload, o.port, toLocal)
	<-ctx.Done()
	cleanup()
	return nil
}

// updateSandbox reads sandbox name, lets change edit it, and applies it conditionally on the version it
// read (retrying on a concurrent change), with the local daemon told about the forwards as an apply does.
func (a *App) updateSandbox(ctx context.Context, c *client.Client, name string, change func(*client.Sandbox) error, out **client.Sandbox) error {
	for attempt := 0; ; attempt++ {
		sb, err := c.GetSandbox(ctx, a.cfg.Org, name)
		if err != nil {
			return a.explain(err, "get sandbox "+name)
		}
		if err := change(sb); err != nil {
			return err
		}
		machine, err := a.localMachineForApply(sb)
		if err != nil {
			return err
		}
		if err := a.syncLocal(ctx, sb, machine, true); err != nil {
			return err
		}
		res, err := c.ApplySandbox(ctx, a.cfg.Org, &client.Sandbox{Name: sb.Name, Spec: sb.Spec}, client.IfMatch(sb.Version))
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusPreconditionFailed && attempt < 5 {
			continue // changed since we read it: read it again
		}
		if err != nil {
			return a.explain(err, "apply sandbox "+name)
		}
		if err := a.syncLocal(ctx, sb, machine, false); err != nil {
			return err
		}
		if out != nil {
			*out = res
		}
		return nil
	}
}

// removeOverride removes forward name and its middleware from the sandbox.
func (a *App) removeOverride(ctx context.Context, c *client.Client, sandbox, name string) error {
	return a.updateSandbox(ctx, c, sandbox, func(sb *client.Sandbox) error {
		if !dropOverride(sb, name) {
			return withCode(ExitNotFound, fmt.Errorf("sandbox %s has no override %s\nhint: `sandboxmesh local override list --sandbox %s` lists them", sandbox, name, sandbox))
		}
		return nil
	}, nil)
}

// overrideRow is one line of `local override list`.
type overrideRow struct {
	Name      string  `json:"name"`
	Sandbox   string  `json:"sandbox"`
	Workload  string  `json:"workload"`
	Port      int32   `json:"port"`
	ToLocal   string  `json:"toLocal"`
	Except    []int32 `json:"exceptStatusCodes,omitempty"`
	Connected bool    `json:"connected"`
}

func (a *App) localOverrideList(ctx context.Context, c *client.Client, sandbox string) error {
	var sbs []client.Sandbox
	if sandbox != "" {
		sb, err := c.GetSandbox(ctx, a.cfg.Org, sandbox)
		if err != nil {
			return a.explain(err, "get sandbox "+sandbox)
		}
		sbs = append(sbs, *sb)
	} else {
		all, err := c.ListSandboxes(ctx, a.cfg.Org, nil)
		if err != nil {
			return a.explain(err, "list sandboxes")
		}
		sbs = all
	}
	rows := []overrideRow{}
	for _, sb := range sbs {
		ovs, _ := sb.Spec.ResolveOverrides()
		for _, o := range ovs {
			r := overrideRow{Name: o.Forward.Name, Sandbox: sb.Name, Workload: o.Entry, Port: o.Forward.Port, ToLocal: o.Forward.ToLocal}
			if o.Policy != nil {
				r.Except = o.Policy.ExceptStatusCodes
			}
			for _, l := range sb.Status.Local {
				if l.Name == o.Forward.Name {
					r.Connected = l.Tunnel.Connected
				}
			}
			rows = append(rows, r)
		}
	}
	if ok, err := a.structured(a.Stdout, rows); ok {
		return err
	}
	if len(rows) == 0 {
		fmt.Fprintln(a.Stdout, "No local overrides.")
		return nil
	}
	tw := newTable(a.Stdout, "NAME", "SANDBOX", "WORKLOAD", "PORT", "TO LOCAL", "FALLS THROUGH", "CONNECTED")
	for _, r := range rows {
		var pol *smv1.OverridePolicy
		if len(r.Except) > 0 {
			pol = &smv1.OverridePolicy{ExceptStatusCodes: r.Except}
		}
		row(tw, r.Name, r.Sandbox, r.Workload, strconv.Itoa(int(r.Port)), r.ToLocal, fallsThrough(pol), strconv.FormatBool(r.Connected))
	}
	return tw.Flush()
}

// fallsThrough says when an override's requests fall through to the workload (besides the process being down).
func fallsThrough(p *smv1.OverridePolicy) string {
	if p == nil || len(p.ExceptStatusCodes) == 0 {
		return "without sm-override: true"
	}
	codes := make([]string, len(p.ExceptStatusCodes))
	for i, c := range p.ExceptStatusCodes {
		codes[i] = strconv.Itoa(int(c))
	}
	return "on " + strings.Join(codes, ",")
}
