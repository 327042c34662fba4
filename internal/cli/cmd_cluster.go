package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

func (a *App) clusterCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "cluster", Aliases: []string{"clusters"}, Short: "Register clusters and create their agents' tokens"})
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Register a cluster with the control plane (idempotent)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			cl, err := c.RegisterCluster(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "add cluster "+args[0])
			}
			if ok, err := a.structured(a.Stdout, cl); ok {
				return err
			}
			_, err = fmt.Fprintf(a.Stdout, "cluster %s registered\nNext: create a token for its agent with `sandboxmesh cluster token create --cluster %s`\n", cl.Name, cl.Name)
			return err
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List registered clusters",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			cls, err := c.ListClusters(cmd.Context(), a.cfg.Org)
			if err != nil {
				return a.explain(err, "list clusters")
			}
			if cls == nil {
				cls = []client.Cluster{}
			}
			if ok, err := a.structured(a.Stdout, cls); ok {
				return err
			}
			if len(cls) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No clusters in org %s. Register one with `sandboxmesh cluster add <name>`.\n", a.cfg.Org)
				return err
			}
			return a.printClusters(a.Stdout, cls)
		},
	}
	token := group(&cobra.Command{Use: "token", Short: "Manage cluster tokens"})
	var cluster string
	create := &cobra.Command{
		Use:   "create --cluster NAME",
		Short: "Create a token for a cluster's agent (shown once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cluster == "" {
				return usageErrorf("--cluster is required")
			}
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			t, err := c.CreateClusterToken(cmd.Context(), a.cfg.Org, cluster)
			if err != nil {
				return a.explain(err, "cluster "+cluster)
			}
			if ok, err := a.structured(a.Stdout, t); ok {
				return err
			}
			_, err = fmt.Fprintf(a.Stdout, "Token %s for cluster %s (shown once, store it now):\n\n  %s\n\nGive it to the cluster's agent: SANDBOXMESH_CLUSTER_TOKEN=<token> or --token-file.\n", t.ID, cluster, t.Token)
			return err
		},
	}
	create.Flags().StringVar(&cluster, "cluster", "", "the registered cluster the token is for")
	token.AddCommand(create)
	cmd.AddCommand(add, list, token)
	return cmd
}
