package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/forkspec"
)

func (a *App) sandboxForkCommand() *cobra.Command {
	var (
		r       forkspec.Request
		env     []string
		cluster string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "fork NAME --workload NAMESPACE/NAME --image IMAGE [--endpoint TARGET] [--wait]",
		Short: "Create or update a sandbox that forks one workload with a new image (no spec file needed)",
		Long: `fork creates the sandbox NAME, or updates it, so that it forks the workload
(a Deployment: namespace/name) with the given image and environment variables.
An existing sandbox keeps its other forks and endpoints. --endpoint adds an
endpoint with a preview URL for an in-cluster target (e.g. the entry service
of your app), --endpoint-port one that targets the fork itself. spec.cluster
defaults to the sandbox's cluster, else to the org's only cluster.`,
		Example: `  sandboxmesh sandbox fork feat-x --workload shop/cart --image ghcr.io/acme/cart:pr-42 \
      --endpoint http://frontend.shop.svc:8080 --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if r.Workload == "" {
				return usageErrorf("--workload is required: namespace/name of the Deployment to fork")
			}
			if _, err := forkspec.ParseWorkload(r.Workload); err != nil {
				return withCode(ExitUsage, err)
			}
			if r.Image == "" && len(env) == 0 {
				return usageErrorf("give an --image (and/or --env): what should the fork run differently from the baseline?")
			}
			if fe := apitypes.ValidateObjectName("NAME", name); fe != nil {
				return usageErrorf("%v", fe)
			}
			vars, err := parseSets(env)
			if err != nil {
				return err
			}
			r.Env = vars
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			spec, exists, err := forkspec.Base(ctx, c, a.cfg.Org, name, cluster)
			switch {
			case errors.Is(err, forkspec.ErrNoCluster):
				return usageErrorf("org %s has no registered cluster: register one with `sandboxmesh cluster add <name>` and install its agent", a.cfg.Org)
			case errors.Is(err, forkspec.ErrAmbiguousCluster):
				return usageErrorf("%v with --cluster (see `sandboxmesh cluster list`)", err)
			case err != nil:
				return a.explain(err, "sandbox "+name)
			}
			if !exists {
				spec.Description = "fork of " + r.Workload
			}
			if err := forkspec.Apply(&spec, r); err != nil {
				return withCode(ExitUsage, err)
			}
			sb := &client.Sandbox{Name: name, Spec: spec}
			if errs := apitypes.ValidateSandboxSpec(&sb.Spec); len(errs) > 0 {
				return fieldErrors("sandbox "+name, errs)
			}
			return a.applyAndReport(cmd, c, sb, wait, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Workload, "workload", "", "workload to fork: namespace/name of a Deployment")
	f.StringVar(&r.Image, "image", "", "image the fork runs")
	f.StringVar(&r.Container, "container", "", "container whose image and env change (default: the main container)")
	f.StringArrayVar(&env, "env", nil, "environment variable of the fork, NAME=value (repeatable)")
	f.StringVar(&r.EndpointTarget, "endpoint", "", "add an endpoint for this in-cluster target, e.g. http://frontend.shop.svc:8080")
	f.IntVar(&r.EndpointPort, "endpoint-port", 0, "add an endpoint that targets the fork itself on this port")
	f.StringVar(&r.EndpointName, "endpoint-name", "", "name of the added endpoint (default: derived from the target)")
	f.StringVar(&cluster, "cluster", "", "set spec.cluster")
	f.BoolVar(&wait, "wait", false, "wait until the sandbox is ready, showing progress")
	f.DurationVar(&timeout, "wait-timeout", 3*time.Minute, "how long --wait waits (exit code 4 after it)")
	_ = cmd.RegisterFlagCompletionFunc("cluster", a.completeClusters)
	return cmd
}

// applyAndReport applies sb, optionally waits, and prints the result.
func (a *App) applyAndReport(cmd *cobra.Command, c *client.Client, sb *client.Sandbox, wait bool, timeout time.Duration) error {
	ctx := cmd.Context()
	machine, err := a.localMachineForApply(sb)
	if err != nil {
		return err
	}
	if err := a.syncLocal(ctx, sb, machine, true); err != nil {
		return err
	}
	out, err := c.ApplySandbox(ctx, a.cfg.Org, sb)
	if err != nil {
		return a.explain(err, "apply sandbox "+sb.Name)
	}
	if err := a.syncLocal(ctx, sb, machine, false); err != nil {
		return err
	}
	if !wait {
		if ok, err := a.structured(a.Stdout, out); ok {
			return err
		}
		fmt.Fprintf(a.Stdout, "sandbox %s applied (version %d, routing key %s)\n\n", out.Name, out.Version, out.RoutingKey)
		return printEndpoints(a.Stdout, out)
	}
	fmt.Fprintf(a.Stderr, "sandbox %s applied (version %d, routing key %s); waiting up to %s for it to be ready\n", out.Name, out.Version, out.RoutingKey, timeout)
	ready, err := a.waitReady(ctx, c, out.Name, timeout, a.Stderr)
	if err != nil {
		return err
	}
	if ok, err := a.structured(a.Stdout, ready); ok {
		return err
	}
	fmt.Fprintf(a.Stdout, "sandbox %s is ready (routing key %s)\n\n", ready.Name, ready.RoutingKey)
	return printEndpoints(a.Stdout, ready)
}

// completeClusters completes the org's cluster names.
func (a *App) completeClusters(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return complete(a, cmd, func(ctx context.Context, c *client.Client) ([]client.Cluster, error) {
		return c.ListClusters(ctx, a.cfg.Org)
	},
		func(cl client.Cluster) string { return cl.Name })
}
