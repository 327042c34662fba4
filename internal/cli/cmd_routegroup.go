package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

func (a *App) routeGroupCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "routegroup", Aliases: []string{"routegroups", "rg"}, Short: "Create, inspect and delete route groups"})
	var (
		file    string
		sets    []string
		cluster string
	)
	apply := &cobra.Command{
		Use:   "apply -f FILE [--set var=value ...]",
		Short: "Create or update a route group from a spec file ({name, spec}, templated like sandbox apply)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rg, err := a.loadRouteGroup(file, sets)
			if err != nil {
				return err
			}
			if cluster != "" {
				rg.Spec.Cluster = cluster
			}
			out, err := c.ApplyRouteGroup(cmd.Context(), a.cfg.Org, rg)
			if err != nil {
				return a.explain(err, "apply route group "+rg.Name)
			}
			if ok, err := a.structured(a.Stdout, out); ok {
				return err
			}
			fmt.Fprintf(a.Stdout, "route group %s applied (version %d, routing key %s)\n\n", out.Name, out.Version, out.RoutingKey)
			return a.printRouteGroup(a.Stdout, out)
		},
	}
	apply.Flags().StringVarP(&file, "filename", "f", "", "spec file (YAML or JSON; - reads stdin)")
	apply.Flags().StringArrayVar(&sets, "set", nil, "template variable, var=value (repeatable)")
	apply.Flags().StringVar(&cluster, "cluster", "", "set spec.cluster")

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a route group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rg, err := c.GetRouteGroup(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "route group "+args[0])
			}
			if ok, err := a.structured(a.Stdout, rg); ok {
				return err
			}
			return a.printRouteGroup(a.Stdout, rg)
		},
	}
	var rgPages pageFlags
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List route groups",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rgs, err := listItems(a, cmd, rgPages, func() ([]client.RouteGroup, error) { return c.ListRouteGroups(cmd.Context(), a.cfg.Org) },
				func(p client.PageOptions) (*client.Page[client.RouteGroup], error) {
					return c.ListRouteGroupsPage(cmd.Context(), a.cfg.Org, p)
				})
			if err != nil {
				return a.explain(err, "list route groups")
			}
			if ok, err := a.structured(a.Stdout, rgs); ok {
				return err
			}
			if len(rgs) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No route groups in org %s.\n", a.cfg.Org)
				return err
			}
			return a.printRouteGroups(a.Stdout, rgs)
		},
	}
	del := a.deleteCommand("route group", "Delete route groups", func(ctx context.Context, c *client.Client, name string) error {
		return c.DeleteRouteGroup(ctx, a.cfg.Org, name)
	})
	rgPages.add(list)
	cmd.AddCommand(apply, get, list, del)
	return cmd
}

// deleteCommand is `<kind> delete NAME...`: it deletes each named object
// with del (stopping at the first error) and says so, or answers
// {"deleted": [names]} with -o json|yaml.
func (a *App) deleteCommand(noun, short string, del func(ctx context.Context, c *client.Client, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   short,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := del(cmd.Context(), c, name); err != nil {
					return a.explain(err, "delete "+noun+" "+name)
				}
				if a.flags.output == "" || a.flags.output == outTable {
					fmt.Fprintf(a.Stdout, "%s %s deleted\n", noun, name)
				}
			}
			if ok, err := a.structured(a.Stdout, map[string]any{"deleted": args}); ok {
				return err
			}
			return nil
		},
	}
}

// cancelCommand is "cancel NAME..." for objects the control plane cancels (jobs, smart test executions):
// one line per object in table output, the canceled objects with -o json|yaml. cancel returns the object
// and its phase after the cancel request.
func cancelCommand[T any](a *App, use, noun, short string, cancel func(ctx context.Context, c *client.Client, name string) (*T, string, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			var out []*T
			for _, name := range args {
				obj, phase, err := cancel(cmd.Context(), c, name)
				if err != nil {
					return a.explain(err, "cancel "+noun+" "+name)
				}
				out = append(out, obj)
				if a.flags.output == "" || a.flags.output == outTable {
					fmt.Fprintf(a.Stdout, "%s %s: cancel requested (phase %s)\n", noun, name, phase)
				}
			}
			if ok, err := a.structured(a.Stdout, out); ok {
				return err
			}
			return nil
		},
	}
}
