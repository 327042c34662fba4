package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

func (a *App) sandboxCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "sandbox", Aliases: []string{"sandboxes", "sb"}, Short: "Create, inspect and delete sandboxes"})
	cmd.AddCommand(a.sandboxApplyCommand(), a.sandboxForkCommand(), a.sandboxGetCommand(), a.sandboxListCommand(), a.sandboxDeleteCommand(), a.sandboxGetEnvCommand())
	return cmd
}

// completeSandboxes completes sandbox names (with their descriptions) from
// the control plane.
func (a *App) completeSandboxes(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return complete(a, cmd, func(ctx context.Context, c *client.Client) ([]client.Sandbox, error) {
		return c.ListSandboxes(ctx, a.cfg.Org, nil)
	},
		func(sb client.Sandbox) string { return sb.Name + "\t" + sb.Spec.Description })
}

// completeTeams completes the org's team names.
func (a *App) completeTeams(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return complete(a, cmd, func(ctx context.Context, c *client.Client) ([]client.Team, error) { return c.ListTeams(ctx, a.cfg.Org) },
		func(t client.Team) string { return t.Name })
}

// complete lists objects from the control plane (at most 5 s) and completes
// with name(object) of each; nothing when the control plane cannot answer.
func complete[T any](a *App, cmd *cobra.Command, list func(context.Context, *client.Client) ([]T, error), name func(T) string) ([]string, cobra.ShellCompDirective) {
	c, err := a.setup(true)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	items, err := list(ctx, c)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, name(it))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (a *App) sandboxApplyCommand() *cobra.Command {
	var (
		file, cluster, team string
		sets                []string
		wait                bool
		timeout             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--set var=value ...] [--wait]",
		Short: "Create or update a sandbox from a spec file",
		Long: `apply creates or updates the sandbox described by a YAML (or JSON) file
{name, spec} — the body of PUT /api/v2/orgs/{org}/sandboxes/{name}. The file is
a template: @{var} is replaced by the value of --set var=value and
@{embed: path} by the contents of a file (relative to the spec file).

With --wait, apply shows the progress (which forks are ready, what is
blocking) until the sandbox is ready or --wait-timeout passes (exit code 4),
then prints the endpoints with their preview URLs.

--team puts the sandbox in one of the org's teams (its concurrent-sandbox
quota counts it), as the file's top-level team field does; without either,
an update keeps the sandbox's team.`,
		Example: `  sandboxmesh sandbox apply -f sandbox.yaml --set image=ghcr.io/acme/cart:pr-42 --wait
  sandboxmesh sandbox apply -f - < sandbox.yaml
  sandboxmesh sandbox apply -f sandbox.yaml --team web`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			sb, err := a.loadSandbox(file, sets, cluster)
			if err != nil {
				return err
			}
			if team != "" {
				sb.Team = team
			}
			return a.applyAndReport(cmd, c, sb, wait, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "filename", "f", "", "spec file (YAML or JSON; - reads stdin)")
	f.StringArrayVar(&sets, "set", nil, "template variable, var=value (repeatable)")
	f.StringVar(&cluster, "cluster", "", "set spec.cluster")
	_ = cmd.RegisterFlagCompletionFunc("cluster", a.completeClusters)
	f.StringVar(&team, "team", "", "put the sandbox in this team of the org (sets the top-level team)")
	_ = cmd.RegisterFlagCompletionFunc("team", a.completeTeams)
	f.BoolVar(&wait, "wait", false, "wait until the sandbox is ready, showing progress")
	f.DurationVar(&timeout, "wait-timeout", 3*time.Minute, "how long --wait waits (exit code 4 after it)")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	return cmd
}

// waitReady waits with progress lines on w; on timeout it says what is blocking.
func (a *App) waitReady(ctx context.Context, c *client.Client, name string, timeout time.Duration, w io.Writer) (*client.Sandbox, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := a.WaitInterval
	if interval <= 0 {
		interval = time.Second
	}
	start := a.now()
	var prev map[string]string
	sb, err := c.WaitForReady(wctx, a.cfg.Org, name, &client.WaitOptions{Interval: interval, Progress: func(sb *client.Sandbox) {
		prev = printProgress(w, sb, prev, humanDuration(a.now().Sub(start)))
	}})
	if errors.Is(err, client.ErrWaitTimeout) {
		if ctx.Err() != nil {
			return sb, withCode(ExitError, fmt.Errorf("wait for sandbox %s: %w", name, errInterrupted))
		}
		return sb, withCode(ExitTimeout, fmt.Errorf("sandbox %s is not ready after %s: %s\nhint: it keeps converging; check it with `sandboxmesh sandbox get %s`, or wait longer with --wait-timeout",
			name, timeout, blocking(sb), name))
	}
	if err != nil {
		return sb, a.explain(err, "wait for sandbox "+name)
	}
	return sb, nil
}

// blocking says what keeps a sandbox from being ready.
func blocking(sb *client.Sandbox) string {
	if sb == nil {
		return "no status yet"
	}
	var parts []string
	if sb.Status.Reason != "" || sb.Status.Message != "" {
		parts = append(parts, strings.TrimPrefix(sb.Status.Reason+": "+sb.Status.Message, ": "))
	}
	for _, f := range sb.Status.Forks {
		if !f.Ready {
			msg := f.Message
			if msg == "" {
				msg = "not ready"
			}
			parts = append(parts, fmt.Sprintf("fork %s: %s", f.Name, msg))
		}
	}
	if len(parts) == 0 {
		return "not ready"
	}
	return strings.Join(parts, "; ")
}

// printProgress prints the sandbox's status and the forks whose state changed.
func printProgress(w io.Writer, sb *client.Sandbox, prev map[string]string, elapsed string) map[string]string {
	state := "not ready"
	if sb.Status.Ready {
		state = "ready"
	}
	line := fmt.Sprintf("[%s] %s: %s", elapsed, sb.Name, state)
	if sb.Status.Reason != "" {
		line += " (" + sb.Status.Reason + ")"
	}
	if sb.Status.Message != "" {
		line += ": " + sb.Status.Message
	}
	fmt.Fprintln(w, line)
	cur := map[string]string{}
	for _, f := range sb.Status.Forks {
		s := "not ready"
		if f.Ready {
			s = "ready"
		}
		if f.Message != "" && !f.Ready {
			s += ": " + f.Message
		}
		cur[f.Name] = s
		if prev[f.Name] != s {
			fmt.Fprintf(w, "  fork %s (%s): %s\n", f.Name, f.Baseline, s)
		}
	}
	return cur
}

func (a *App) sandboxGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "get NAME",
		Short:             "Show a sandbox: status, forks, endpoints and preview URLs",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			sb, err := c.GetSandbox(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "sandbox "+args[0])
			}
			if ok, err := a.structured(a.Stdout, sb); ok {
				return err
			}
			return a.printSandbox(a.Stdout, sb)
		},
	}
}

func (a *App) sandboxListCommand() *cobra.Command {
	var (
		selector []string
		team     string
		pf       pageFlags
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List sandboxes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			labels := map[string]string{}
			for _, s := range selector {
				for _, part := range strings.Split(s, ",") {
					k, v, ok := strings.Cut(part, "=")
					if !ok || k == "" {
						return usageErrorf("-l %q: want key=value[,key=value]", s)
					}
					labels[k] = v
				}
			}
			sbs, err := listItems(a, cmd, pf, func() ([]client.Sandbox, error) { return c.ListTeamSandboxes(cmd.Context(), a.cfg.Org, team, labels) },
				func(p client.PageOptions) (*client.Page[client.Sandbox], error) {
					return c.ListTeamSandboxesPage(cmd.Context(), a.cfg.Org, team, labels, p)
				})
			if err != nil {
				return a.explain(err, "list sandboxes")
			}
			if ok, err := a.structured(a.Stdout, sbs); ok {
				return err
			}
			if len(sbs) == 0 && (len(labels) > 0 || team != "") {
				var which []string
				if team != "" {
					which = append(which, "are in team "+team)
				}
				if len(labels) > 0 {
					which = append(which, "have the labels "+strings.Join(selector, ","))
				}
				_, err := fmt.Fprintf(a.Stdout, "No sandboxes in org %s %s.\n", a.cfg.Org, strings.Join(which, " and "))
				return err
			}
			if len(sbs) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No sandboxes in org %s. Create one with `sandboxmesh sandbox apply -f sandbox.yaml`.\n", a.cfg.Org)
				return err
			}
			return a.printSandboxes(a.Stdout, sbs)
		},
	}
	cmd.Flags().StringArrayVarP(&selector, "selector", "l", nil, "only sandboxes with these labels (key=value[,key=value])")
	cmd.Flags().StringVar(&team, "team", "", "only the sandboxes of this team")
	_ = cmd.RegisterFlagCompletionFunc("team", a.completeTeams)
	pf.add(cmd)
	return cmd
}

func (a *App) sandboxDeleteCommand() *cobra.Command {
	var file string
	var sets []string
	cmd := &cobra.Command{
		Use:               "delete NAME... | -f FILE",
		Aliases:           []string{"rm"},
		Short:             "Delete sandboxes",
		ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (file == "") == (len(args) == 0) {
				return usageErrorf("give sandbox names or -f FILE (not both)")
			}
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			if file != "" {
				sb, err := a.loadSandbox(file, sets, "")
				if err != nil {
					return err
				}
				args = []string{sb.Name}
			}
			for _, name := range args {
				if err := c.DeleteSandbox(cmd.Context(), a.cfg.Org, name); err != nil {
					return a.explain(err, "delete sandbox "+name)
				}
				if err := a.localRevoke(cmd.Context(), name); err != nil {
					return err
				}
				if a.flags.output == "" || a.flags.output == outTable {
					fmt.Fprintf(a.Stdout, "sandbox %s deleted\n", name)
				}
			}
			if ok, err := a.structured(a.Stdout, map[string]any{"deleted": args}); ok {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "delete the sandbox named in this spec file")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "template variable for -f, var=value")
	return cmd
}
