package cli

import (
	"fmt"
	"strings"

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
	var clusterPages pageFlags
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
			cls, err := listItems(a, cmd, clusterPages, func() ([]client.Cluster, error) { return c.ListClusters(cmd.Context(), a.cfg.Org) },
				func(p client.PageOptions) (*client.Page[client.Cluster], error) {
					return c.ListClustersPage(cmd.Context(), a.cfg.Org, p)
				})
			if err != nil {
				return a.explain(err, "list clusters")
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
	var namespace string
	workloads := &cobra.Command{
		Use:   "workloads [CLUSTER]",
		Short: "List the workloads a sandbox can fork, as the cluster's agent last reported them",
		Long: "List the Deployments of a cluster that a sandbox can fork (sandbox fork --workload NAMESPACE/NAME), with their\n" +
			"images, readiness, whether they carry the devmesh sidecar and the Services in front of them. The agent reports\n" +
			"them every 30 s when they change. CLUSTER may be omitted when the org has one cluster.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			} else {
				cls, err := c.ListClusters(cmd.Context(), a.cfg.Org)
				if err != nil {
					return a.explain(err, "list clusters")
				}
				switch len(cls) {
				case 0:
					return usageErrorf("org %s has no cluster; register one with `sandboxmesh cluster add <name>`", a.cfg.Org)
				case 1:
					name = cls[0].Name
				default:
					var names []string
					for _, cl := range cls {
						names = append(names, cl.Name)
					}
					return usageErrorf("org %s has %d clusters (%v): pass one, e.g. `sandboxmesh cluster workloads %s`", a.cfg.Org, len(cls), names, names[0])
				}
			}
			wl, err := c.ListWorkloads(cmd.Context(), a.cfg.Org, name, namespace)
			if err != nil {
				return a.explain(err, "workloads of cluster "+name)
			}
			if ok, err := a.structured(a.Stdout, wl); ok {
				return err
			}
			if wl.Truncated {
				fmt.Fprintf(a.Stderr, "note: the agent reported only the first %d workloads\n", len(wl.Workloads))
			}
			if len(wl.Workloads) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No workloads reported by cluster %s%s.\n", name, map[bool]string{true: " in namespace " + namespace}[namespace != ""])
				return err
			}
			return a.printWorkloads(a.Stdout, wl.Workloads)
		},
	}
	workloads.Flags().StringVarP(&namespace, "namespace", "n", "", "only this namespace")
	clusterPages.add(list)
	cmd.AddCommand(add, list, token, workloads, a.previewPolicyCommand())
	return cmd
}

// previewPolicyCommand reads and sets which namespaces a cluster's preview
// endpoints may target (GET/PUT …/clusters/{cluster}/preview-policy).
func (a *App) previewPolicyCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "preview-policy", Short: "Show or set the namespaces a cluster's preview endpoints may target"})
	show := func(cluster string, p *client.PreviewPolicy) error {
		if ok, err := a.structured(a.Stdout, p); ok {
			return err
		}
		if len(p.AllowedNamespaces) == 0 {
			_, err := fmt.Fprintf(a.Stdout, "cluster %s: preview endpoints may target every namespace except kube-system, kube-public and kube-node-lease\n", cluster)
			return err
		}
		_, err := fmt.Fprintf(a.Stdout, "cluster %s: preview endpoints may target namespaces %s\n", cluster, strings.Join(p.AllowedNamespaces, ", "))
		return err
	}
	get := &cobra.Command{
		Use:   "get CLUSTER",
		Short: "Show a cluster's preview policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			p, err := c.GetPreviewPolicy(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "preview policy of cluster "+args[0])
			}
			return show(args[0], p)
		},
	}
	var namespaces []string
	set := &cobra.Command{
		Use:   "set CLUSTER --namespaces NS[,NS...]",
		Short: "Replace a cluster's preview policy (--namespaces= with nothing: every namespace but the system ones)",
		Long: "Replace the namespaces a cluster's preview endpoints may target. Sandboxes and route groups whose endpoint\n" +
			"targets the new policy refuses stay, but their previews answer 403 until the policy allows them again.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("namespaces") {
				return usageErrorf("--namespaces is required (--namespaces= clears the list)")
			}
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			p, err := c.SetPreviewPolicy(cmd.Context(), a.cfg.Org, args[0], client.PreviewPolicy{AllowedNamespaces: namespaces})
			if err != nil {
				return a.explain(err, "preview policy of cluster "+args[0])
			}
			return show(args[0], p)
		},
	}
	set.Flags().StringSliceVar(&namespaces, "namespaces", nil, "namespaces preview endpoints may target (comma-separated)")
	cmd.AddCommand(get, set)
	return cmd
}
