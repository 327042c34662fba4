package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// resourcePluginCommand is `sandboxmesh resourceplugin` (Signadot's
// `signadot resourceplugin`).
func (a *App) resourcePluginCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "resourceplugin", Aliases: []string{"resourceplugins", "rp"},
		Short: "Create, inspect and delete resource plugins (steps that make a sandbox's resources, e.g. a database)"})
	var (
		file string
		sets []string
	)
	apply := &cobra.Command{
		Use:   "apply -f FILE [--set var=value ...]",
		Short: "Create a resource plugin from a file ({name, spec}, templated like sandbox apply); a plugin cannot be changed, only applied under a new name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rp, err := a.loadResourcePlugin(file, sets)
			if err != nil {
				return err
			}
			out, err := c.ApplyResourcePlugin(cmd.Context(), a.cfg.Org, rp)
			if err != nil {
				return a.explain(err, "apply resource plugin "+rp.Name)
			}
			if ok, err := a.structured(a.Stdout, out); ok {
				return err
			}
			fmt.Fprintf(a.Stdout, "resource plugin %s applied\n\n", out.Name)
			return a.printResourcePlugin(a.Stdout, out)
		},
	}
	apply.Flags().StringVarP(&file, "filename", "f", "", "plugin file (YAML or JSON; - reads stdin)")
	apply.Flags().StringArrayVar(&sets, "set", nil, "template variable, var=value (repeatable)")

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a resource plugin: its steps, their outputs and the sandboxes using it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rp, err := c.GetResourcePlugin(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "resource plugin "+args[0])
			}
			if ok, err := a.structured(a.Stdout, rp); ok {
				return err
			}
			return a.printResourcePlugin(a.Stdout, rp)
		},
	}
	var pages pageFlags
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List resource plugins",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rps, err := listItems(a, cmd, pages, func() ([]client.ResourcePlugin, error) { return c.ListResourcePlugins(cmd.Context(), a.cfg.Org) },
				func(p client.PageOptions) (*client.Page[client.ResourcePlugin], error) {
					return c.ListResourcePluginsPage(cmd.Context(), a.cfg.Org, p)
				})
			if err != nil {
				return a.explain(err, "list resource plugins")
			}
			if ok, err := a.structured(a.Stdout, rps); ok {
				return err
			}
			if len(rps) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No resource plugins in org %s.\n", a.cfg.Org)
				return err
			}
			return a.printResourcePlugins(a.Stdout, rps)
		},
	}
	del := a.deleteCommand("resource plugin", "Delete resource plugins (refused while sandboxes use them)", func(ctx context.Context, c *client.Client, name string) error {
		return c.DeleteResourcePlugin(ctx, a.cfg.Org, name)
	})
	pages.add(list)
	cmd.AddCommand(apply, get, list, del)
	return cmd
}

// loadResourcePlugin reads, renders, decodes and validates a resource plugin
// file ({name, spec}, as the API's PUT body). The control plane checks the
// podTemplateOverlay too.
func (a *App) loadResourcePlugin(path string, sets []string) (*client.ResourcePlugin, error) {
	data, name, err := a.readSpec(path, sets)
	if err != nil {
		return nil, err
	}
	var f apitypes.ResourcePlugin
	if _, err := decodeSpec(data, name, &f, apitypes.ResourcePluginWireRules); err != nil {
		return nil, err
	}
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidatePluginName("name", f.Name); fe != nil {
		errs = append(errs, *fe)
	}
	f.Default()
	for _, p := range v1alpha1.ValidateResourcePlugin(&f.Spec) {
		errs = append(errs, apitypes.FieldError{Path: p.Path, Message: p.Message})
	}
	if len(errs) > 0 {
		return nil, fieldErrors(name, errs)
	}
	return &client.ResourcePlugin{Name: f.Name, Spec: f.Spec}, nil
}

func stepNames(steps []v1alpha1.PluginStep) string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.Name
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

func (a *App) printResourcePlugins(w io.Writer, rps []client.ResourcePlugin) error {
	tw := newTable(w, "NAME", "DESCRIPTION", "IMAGE", "CREATE", "DELETE", "USED BY", "AGE")
	for _, rp := range rps {
		used := strings.Join(rp.Status.Sandboxes, ",")
		if used == "" {
			used = "-"
		}
		row(tw, rp.Name, rp.Spec.Description, rp.Spec.Runner.Image, stepNames(rp.Spec.Create), stepNames(rp.Spec.Delete), used, a.age(rp.CreatedAt))
	}
	return tw.Flush()
}

// printResourcePlugin prints a plugin's row and the output keys a sandbox
// can wire with valueFrom.resource.outputKey.
func (a *App) printResourcePlugin(w io.Writer, rp *client.ResourcePlugin) error {
	if err := a.printResourcePlugins(w, []client.ResourcePlugin{*rp}); err != nil {
		return err
	}
	var keys []string
	for _, s := range rp.Spec.Create {
		for _, o := range s.Outputs {
			keys = append(keys, s.Name+"."+o.Name)
		}
	}
	if len(keys) > 0 {
		_, err := fmt.Fprintf(w, "\nOutput keys (valueFrom.resource.outputKey): %s\n", strings.Join(keys, ", "))
		return err
	}
	return nil
}
