// Command sm-cluster runs the project's local single-node Kubernetes cluster
// (package internal/devenv/localcluster) and builds and loads our container images
// (package internal/devenv/images):
//
//	sm-cluster up [--images]      bring the cluster up (no-op when running), print the kubeconfig path
//	                              (progress lines go to stderr, so KUBECONFIG=$(sm-cluster up) works);
//	                              with --images an image that is not built fails up, unless
//	                              --allow-image-failures
//	sm-cluster down               stop everything and restore the host
//	sm-cluster status             components, PIDs, memory, network guard, node
//	sm-cluster images [--load]    build image tarballs of our binaries (and import them when the cluster runs)
//	sm-cluster load-image TAR...  import image tarballs into the cluster
//	sm-cluster kubeconfig         print the kubeconfig path
//	sm-cluster deps               install missing Debian packages (up does this too)
//	sm-cluster check-guard        verify the network-safety set-up
//	sm-cluster demo [--keep]      the cluster, SandboxMesh (Helm chart), the example app and a sandbox; Ctrl-C tears down
//	sm-cluster dns                (internal) the cluster DNS server started by up
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/images"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/localcluster"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/localcluster/dns"
)

func main() {
	os.Exit(execute(newRoot(newDemoRun), os.Args[1:], os.Stderr))
}

// execute runs the command line and returns the exit code. SIGINT, SIGTERM
// and SIGHUP cancel the command's context (once: later ones are swallowed, so
// a second Ctrl-C cannot cut a tear-down short). SIGPIPE is caught for the
// whole run: a write to a closed stdout or stderr (the reader of
// `make demo | tee log` died with the same Ctrl-C) then fails with EPIPE,
// which progress writes ignore, instead of killing sm-cluster in the middle of
// a tear-down. (Caught rather than ignored: the commands sm-cluster starts get
// the default disposition back.)
func execute(root *cobra.Command, args []string, stderr io.Writer) int {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer cancel()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "sm-cluster:", err)
		return 1
	}
	return 0
}

type flags struct {
	stateDir, repoDir, k8sBin, imagesDir, bridge string
	podCIDR, clusterCIDR, serviceCIDR            string
	apiPort                                      int
	skipPackages, verbose                        bool
	binaries                                     string
}

func (f *flags) config() (localcluster.Config, *slog.Logger, error) {
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// controller-runtime's client (used by the demo) logs through its own
	// global logger; unset, it prints a "log.SetLogger(...) was never called"
	// stack trace 30 s into the run.
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	repo := f.repoDir
	if repo == "" {
		repo = findRepo()
	}
	c := localcluster.Config{
		StateDir: f.stateDir, RepoDir: repo, K8sBinDir: f.k8sBin, ImagesDir: f.imagesDir, Bridge: f.bridge,
		APIServerPort: f.apiPort, SkipPackages: f.skipPackages, Progress: os.Stderr, Log: log,
	}
	for _, p := range []struct {
		s   string
		dst *netip.Prefix
	}{{f.podCIDR, &c.PodCIDR}, {f.clusterCIDR, &c.ClusterCIDR}, {f.serviceCIDR, &c.ServiceCIDR}} {
		if p.s == "" {
			continue
		}
		v, err := netip.ParsePrefix(p.s)
		if err != nil {
			return c, log, fmt.Errorf("parse CIDR %q: %w", p.s, err)
		}
		*p.dst = v
	}
	return c, log, nil
}

// findRepo walks up from the working directory to the sandboxmesh module root.
// cluster builds the Cluster from the flags (the start of most commands).
func (f *flags) cluster() (*localcluster.Cluster, *slog.Logger, error) {
	c, log, err := f.config()
	if err != nil {
		return nil, nil, err
	}
	cl, err := localcluster.New(c)
	if err != nil {
		return nil, nil, err
	}
	return cl, log, nil
}

func findRepo() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/sandboxmesh/sandboxmesh\n") {
			return d
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// newRoot builds the command tree; newDemo builds `demo`'s run (newDemoRun).
func newRoot(newDemo func(f *flags, values []string, keep bool) (demoRun, error)) *cobra.Command {
	f := &flags{}
	root := &cobra.Command{
		Use:           "sm-cluster",
		Short:         "Local single-node Kubernetes for SandboxMesh, built from upstream parts",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&f.stateDir, "state-dir", envOr("SM_CLUSTER_DIR", localcluster.DefaultStateDir), "folder holding all cluster state (env SM_CLUSTER_DIR)")
	pf.StringVar(&f.repoDir, "repo", "", "sandboxmesh checkout (default: found from the working directory)")
	pf.StringVar(&f.k8sBin, "k8s-bin", os.Getenv("SM_K8S_BIN"), "folder with prebuilt Kubernetes binaries (default: hack/k8s-build.sh cache; env SM_K8S_BIN)")
	pf.StringVar(&f.imagesDir, "images-dir", envOr("SM_IMAGES_DIR", localcluster.DefaultImagesDir()), "folder of image tarballs (env SM_IMAGES_DIR)")
	pf.StringVar(&f.bridge, "bridge", "", "bridge name (default smbr0)")
	pf.StringVar(&f.podCIDR, "pod-cidr", "", "node pod range; its first address is the node address (default 10.244.0.0/24)")
	pf.StringVar(&f.clusterCIDR, "cluster-cidr", "", "cluster pod range (default 10.244.0.0/16)")
	pf.StringVar(&f.serviceCIDR, "service-cidr", "", "Service range (default 10.96.0.0/16)")
	pf.IntVar(&f.apiPort, "apiserver-port", 0, "apiserver port on the node address (default 6443)")
	pf.BoolVar(&f.skipPackages, "skip-packages", false, "do not check or install Debian packages")
	pf.BoolVarP(&f.verbose, "verbose", "v", false, "debug logs")

	var withImages, allowImageFailures bool
	up := &cobra.Command{
		Use:   "up",
		Short: "Bring the cluster up (no-op when it runs) and print the kubeconfig path",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, log, err := f.cluster()
			if err != nil {
				return err
			}
			if withImages {
				o := images.Options{RepoDir: cl.Config().RepoDir, OutDir: cl.Config().ImagesDir, Binaries: binaries(f.binaries), Progress: os.Stderr, Log: log}
				if err := buildUpImages(cmd.Context(), o, allowImageFailures); err != nil {
					return err
				}
			}
			kc, err := cl.Up(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Println(kc)
			return nil
		},
	}
	up.Flags().BoolVar(&withImages, "images", false, "build our image tarballs first (they are imported by up); an image that is not built fails up")
	up.Flags().BoolVar(&allowImageFailures, "allow-image-failures", envBool("SM_ALLOW_IMAGE_FAILURES"), "with --images: bring the cluster up even when images fail to build or their package is missing (logged as warnings; env SM_ALLOW_IMAGE_FAILURES)")
	up.Flags().StringVar(&f.binaries, "binaries", envOr("SM_IMAGES", ""), "comma-separated cmd/ packages to build with --images (env SM_IMAGES; default "+strings.Join(images.DefaultBinaries, ",")+")")

	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the cluster and restore the host",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, _, err := f.cluster()
			if err != nil {
				return err
			}
			if err := cl.Down(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, ">> cluster down; host restored")
			return nil
		},
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show components, PIDs, memory, the network guard and the node",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, _, err := f.cluster()
			if err != nil {
				return err
			}
			comps, st, err := cl.Status(cmd.Context())
			if errors.Is(err, fs.ErrNotExist) {
				fmt.Println("not running")
				return nil
			}
			if err != nil {
				return err
			}
			var total int64
			for _, s := range comps {
				state := "running"
				if !s.Alive {
					state = "DEAD"
				}
				total += s.RSS
				fmt.Printf("%-24s pid %-7d %-8s rss %6.1f MiB  %s\n", s.Name, s.PID, state, float64(s.RSS)/(1<<20), s.Log)
			}
			fmt.Printf("%-24s %29.1f MiB\n", "total", float64(total)/(1<<20))
			if err := cl.Config().CheckGuard(cmd.Context()); err != nil {
				fmt.Println("network guard: MISSING:", err)
			} else {
				fmt.Println("network guard: in place")
			}
			fmt.Printf("ready: %v (up in %s)\nkubeconfig: %s\n", st.Ready, st.ReadyAfter, cl.Config().KubeconfigPath())
			return nil
		},
	}

	var load bool
	imgs := &cobra.Command{
		Use:   "images",
		Short: "Build image tarballs of our binaries into the images folder; import them when the cluster runs",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, log, err := f.config()
			if err != nil {
				return err
			}
			o := images.Options{RepoDir: c.RepoDir, OutDir: c.ImagesDir, Binaries: binaries(f.binaries), Progress: os.Stderr, Log: log}
			res, buildErr := images.Build(cmd.Context(), o)
			if buildErr != nil && cmd.Context().Err() != nil {
				return buildErr
			}
			pause, err := images.BuildPause(cmd.Context(), o)
			if err != nil {
				return err
			}
			res = append(res, pause)
			cl, err := localcluster.New(c)
			if err != nil {
				return err
			}
			if !load && !cl.Running() {
				fmt.Fprintf(os.Stderr, ">> tarballs in %s (cluster not running: not imported)\n", c.ImagesDir)
				return buildErr
			}
			if !cl.Running() {
				return errors.Join(buildErr, fmt.Errorf("images --load: cluster in %s is not running", c.StateDir))
			}
			var tars []string
			for _, r := range res {
				tars = append(tars, r.Tarball)
			}
			return errors.Join(buildErr, cl.LoadImages(cmd.Context(), tars...))
		},
	}
	imgs.Flags().BoolVar(&load, "load", false, "require a running cluster and import the images into it")
	imgs.Flags().StringVar(&f.binaries, "binaries", envOr("SM_IMAGES", ""), "comma-separated cmd/ packages (env SM_IMAGES; default "+strings.Join(images.DefaultBinaries, ",")+")")

	loadImage := &cobra.Command{
		Use:   "load-image TARBALL...",
		Short: "Import image tarballs into the running cluster",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, _, err := f.cluster()
			if err != nil {
				return err
			}
			if !cl.Running() {
				return fmt.Errorf("load-image: cluster in %s is not running", cl.Config().StateDir)
			}
			return cl.LoadImages(cmd.Context(), args...)
		},
	}

	kubeconfig := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the admin kubeconfig path",
		RunE: func(*cobra.Command, []string) error {
			cl, _, err := f.cluster()
			if err != nil {
				return err
			}
			fmt.Println(cl.Config().KubeconfigPath())
			return nil
		},
	}

	checkGuard := &cobra.Command{
		Use:   "check-guard",
		Short: "Verify the network-safety set-up (exit 1 when missing)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, _, err := f.cluster()
			if err != nil {
				return err
			}
			if err := cl.Config().CheckGuard(cmd.Context()); err != nil {
				return err
			}
			fmt.Println("network guard: in place")
			return nil
		},
	}

	var kc, listen, domain string
	dnsCmd := &cobra.Command{
		Use:    "dns",
		Short:  "Serve the cluster's DNS names (started by up)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, log, err := f.config()
			if err != nil {
				return err
			}
			rc, err := clientcmd.BuildConfigFromFlags("", kc)
			if err != nil {
				return fmt.Errorf("dns: kubeconfig %s: %w", kc, err)
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return fmt.Errorf("dns: client: %w", err)
			}
			return dns.New(domain, log).Run(cmd.Context(), cs, listen)
		},
	}
	dnsCmd.Flags().StringVar(&kc, "kubeconfig", "", "kubeconfig")
	dnsCmd.Flags().StringVar(&listen, "listen", "10.244.0.1:53", "UDP and TCP address")
	dnsCmd.Flags().StringVar(&domain, "domain", "cluster.local", "cluster domain")

	deps := &cobra.Command{
		Use:   "deps",
		Short: "Install the Debian packages the node needs when missing (up does this too)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, _, err := f.cluster()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(cl.Config().StateDir, "logs"), 0o755); err != nil {
				return err
			}
			return cl.Config().EnsurePackages(cmd.Context())
		},
	}

	root.AddCommand(deps, up, down, status, imgs, loadImage, kubeconfig, checkGuard, dnsCmd, demoCmd(f, newDemo))
	return root
}

// buildUpImages builds the image tarballs `up --images` imports. An image that
// is not built (it does not compile, or its Go package is missing) is an error
// naming it and why, so up stops before starting anything, unless
// allowFailures: then missing packages are skipped and failures are logged as
// warnings (o.Log, o.Progress), and up goes on without those images.
func buildUpImages(ctx context.Context, o images.Options, allowFailures bool) error {
	o.SkipMissing = allowFailures
	_, err := images.Build(ctx, o)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("up --images: %w", err)
	case !allowFailures:
		return fmt.Errorf("up --images: cluster not started: %w\n(--allow-image-failures or SM_ALLOW_IMAGE_FAILURES=true brings it up without these images)", err)
	}
	if o.Log != nil {
		o.Log.Warn("up --images: bringing the cluster up without the images that were not built (--allow-image-failures)", "err", err)
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, ">> WARNING: %s; bringing the cluster up without them (--allow-image-failures)\n", firstLine(err))
	}
	return nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func envBool(k string) bool {
	v, _ := strconv.ParseBool(os.Getenv(k))
	return v
}

func binaries(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
