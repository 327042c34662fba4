package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// adminCommand manages admin API keys (valid for every org); it needs an admin key.
func (a *App) adminCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "admin", Short: "Control-plane administration (needs an admin API key)"})
	keys := group(&cobra.Command{Use: "apikey", Aliases: []string{"apikeys"}, Short: "List, create, revoke and rotate admin API keys (valid for every org)"})
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List admin keys (masked; revoked ones too)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(false)
			if err != nil {
				return err
			}
			ks, err := c.ListAdminKeys(cmd.Context())
			if err != nil {
				return a.explain(err, "list admin keys")
			}
			if ks == nil {
				ks = []client.APIKey{}
			}
			if ok, err := a.structured(a.Stdout, ks); ok {
				return err
			}
			return a.printKeys(a.Stdout, ks)
		},
	}
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an admin key (shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(false)
			if err != nil {
				return err
			}
			k, err := c.CreateAdminKey(cmd.Context(), args[0])
			if err != nil {
				return a.explain(err, "create admin key "+args[0])
			}
			return a.printNewKey(k, "Admin key")
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an admin key (the last one cannot be revoked: create or rotate first)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(false)
			if err != nil {
				return err
			}
			if err := c.RevokeAdminKey(cmd.Context(), args[0]); err != nil {
				return a.explain(err, "revoke admin key "+args[0])
			}
			_, err = fmt.Fprintf(a.Stdout, "admin key %s revoked\n", args[0])
			return err
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate ID",
		Short: "Replace an admin key by a new one with its name and revoke it, in one step (the new key is shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(false)
			if err != nil {
				return err
			}
			k, err := c.RotateAdminKey(cmd.Context(), args[0])
			if err != nil {
				return a.explain(err, "rotate admin key "+args[0])
			}
			return a.printNewKey(k, "Admin key "+args[0]+" revoked; new admin key")
		},
	}
	keys.AddCommand(list, create, revoke, rotate)
	cmd.AddCommand(keys)
	return cmd
}

func (a *App) printNewKey(k *client.APIKey, what string) error {
	if ok, err := a.structured(a.Stdout, k); ok {
		return err
	}
	_, err := fmt.Fprintf(a.Stdout, "%s %s (%s), shown once, store it now:\n\n  %s\n\n", what, k.ID, k.Name, k.Key)
	return err
}

func (a *App) printKeys(w io.Writer, ks []client.APIKey) error {
	tw := newTable(w, "ID", "NAME", "KEY", "AGE", "REVOKED")
	for _, k := range ks {
		revoked := ""
		if k.RevokedAt != "" {
			revoked = a.age(k.RevokedAt) + " ago"
		}
		row(tw, k.ID, k.Name, k.MaskedValue, a.age(k.CreatedAt), revoked)
	}
	return tw.Flush()
}
