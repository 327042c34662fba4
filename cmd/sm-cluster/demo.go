package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/images"
)

// demoCmd is `sm-cluster demo`: the local cluster (or the cluster of
// KUBECONFIG), SandboxMesh from its Helm chart, the hotrod example and a first
// sandbox; then it waits for Ctrl-C and tears down what it started.
func demoCmd(f *flags) *cobra.Command {
	var values []string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Bring up the local cluster, SandboxMesh, the example app and a sandbox; print what to try; tear down on Ctrl-C",
		Long: `demo brings up the local cluster with our images, installs SandboxMesh with its Helm chart
(control plane, agent, operator with webhook and route server), deploys the hotrod example, creates a
sandbox over the REST API and prints what to try. It keeps running until Ctrl-C, then tears down.

With KUBECONFIG set it installs into that cluster instead and leaves the cluster up; the images
(sandboxmesh.dev/<binary>:dev) must then be available to it: push them and pass
--set image.registry=<your registry>.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			start := time.Now()
			c, log, err := f.config()
			if err != nil {
				return err
			}
			kubeconfig := os.Getenv("KUBECONFIG")
			local := kubeconfig == ""
			if local {
				cl, _, err := f.cluster()
				if err != nil {
					return err
				}
				if err := os.MkdirAll(filepath.Join(c.StateDir, "logs"), 0o755); err != nil {
					return err
				}
				if err := c.EnsurePackages(ctx); err != nil {
					return err
				}
				fmt.Fprintln(os.Stderr, ">> building images (first run: several minutes; later runs reuse the Go build cache)")
				if _, err := images.Build(ctx, images.Options{RepoDir: c.RepoDir, OutDir: c.ImagesDir, Binaries: demo.ImageBinaries, Progress: os.Stderr, Log: log}); err != nil {
					return err
				}
				wasRunning := cl.Running()
				if kubeconfig, err = cl.Up(ctx); err != nil {
					return err
				}
				if wasRunning {
					// Up imports images only when it starts the cluster.
					var tars []string
					for _, b := range demo.ImageBinaries {
						tars = append(tars, filepath.Join(c.ImagesDir, images.TarballName(b)))
					}
					if err := cl.LoadImages(ctx, tars...); err != nil {
						return err
					}
				}
				if !keep {
					defer func() {
						fmt.Fprintln(os.Stderr, ">> tearing down the local cluster")
						if err := cl.Down(context.Background()); err != nil {
							fmt.Fprintln(os.Stderr, "sm-cluster: down:", err)
						}
					}()
				}
			}
			if !local {
				// Images come from a registry there, not from tarballs loaded into containerd.
				values = append([]string{"image.pullPolicy=IfNotPresent"}, values...)
			}
			e, err := demo.Install(ctx, demo.Options{RepoDir: c.RepoDir, Kubeconfig: kubeconfig, Values: values, Progress: os.Stderr, Log: log})
			if err != nil {
				return err
			}
			if err := e.DeployExample(ctx); err != nil {
				return err
			}
			sb, took, err := e.ApplySandbox(ctx, demo.SandboxSpec, 3*time.Minute)
			if err != nil {
				return err
			}
			e.Step("sandbox %s ready %s after PUT; demo ready %s after start", sb.Name, took.Round(10*time.Millisecond), time.Since(start).Round(time.Second))
			svc, err := e.Kube.CoreV1().Services(demo.ExampleNamespace).Get(ctx, "frontend", metav1.GetOptions{})
			if err != nil {
				return err
			}
			e.PrintTryIt(os.Stdout, sb, svc.Spec.ClusterIP)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&values, "set", nil, "extra Helm value for the chart (key=value, repeatable)")
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the local cluster running after Ctrl-C (sm-cluster down stops it)")
	return cmd
}
