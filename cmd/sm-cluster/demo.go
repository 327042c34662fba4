package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/images"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/localcluster"
)

// cleanupCommand is what a user runs to finish a tear-down the demo could not complete.
const cleanupCommand = "make cluster-down"

// demoDownTimeout bounds the demo's tear-down (Down stops each component with a 10 s grace).
const demoDownTimeout = 5 * time.Minute

// demoCluster is the part of the local cluster the demo brings up and tears down.
type demoCluster interface {
	// Up prepares (packages, images) and starts the cluster, returning its kubeconfig path.
	Up(ctx context.Context) (string, error)
	// Down stops the cluster and restores the host.
	Down(ctx context.Context) error
}

// demoRun is one `sm-cluster demo`: an optional local cluster, the install
// step and where tear-down progress goes.
type demoRun struct {
	// cluster is the local cluster to bring up and tear down; nil installs into
	// kubeconfig's cluster and leaves it running.
	cluster    demoCluster
	kubeconfig string
	// keep leaves the local cluster running at the end.
	keep bool
	// install installs SandboxMesh, the example and a sandbox into the cluster
	// of kubeconfig and prints what to try; run then waits for Ctrl-C.
	install func(ctx context.Context, kubeconfig string) error
	// progress receives progress lines (stderr); write errors are ignored.
	progress io.Writer
	// teardownLog is the file the tear-down's lines are appended to (in the
	// state folder's logs: it stays when Down fails and goes with the folder
	// when Down succeeds).
	teardownLog string
}

// run brings the demo up, waits until ctx is done (Ctrl-C, SIGTERM, SIGHUP)
// and tears the local cluster down whatever happened before, also after a
// failed or interrupted start and with stdout and stderr closed pipes (the
// reader of `make demo | tee` died with the same Ctrl-C). An error after a
// tear-down that could not complete names the clean-up command.
func (r demoRun) run(ctx context.Context) (err error) {
	kubeconfig := r.kubeconfig
	if r.cluster != nil && !r.keep {
		defer func() {
			if ctx.Err() != nil && err != nil {
				// Interrupted while starting: the step's error is only the cancellation.
				fmt.Fprintf(r.progress, ">> interrupted: %v\n", err)
				err = nil
			}
			err = errors.Join(err, r.teardown())
		}()
	}
	if r.cluster != nil {
		if kubeconfig, err = r.cluster.Up(ctx); err != nil {
			return err
		}
	}
	if err := r.install(ctx, kubeconfig); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// teardown runs Down to the end, whatever happens to the terminal: progress
// goes to r.progress and to r.teardownLog, ignoring write errors (the process
// catches SIGPIPE, see execute, so a write to a closed pipe is only an error).
// When Down fails, the error (also written to the log) says to run
// cleanupCommand.
func (r demoRun) teardown() error {
	w := tolerantWriter{r.progress}
	if r.teardownLog != "" {
		if err := os.MkdirAll(filepath.Dir(r.teardownLog), 0o755); err == nil {
			if f, err := os.OpenFile(r.teardownLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
				defer f.Close()
				w = append(w, f)
			}
		}
	}
	fmt.Fprintf(w, "%s >> tearing down the local cluster (a second Ctrl-C does not stop it)\n", time.Now().Format(time.RFC3339))
	ctx, cancel := context.WithTimeout(context.Background(), demoDownTimeout)
	defer cancel()
	if err := r.cluster.Down(ctx); err != nil {
		err = fmt.Errorf("demo: tear-down incomplete: %w\nrun `%s` (hack/cluster/sm-cluster.sh down) to finish it", err, cleanupCommand)
		fmt.Fprintf(w, "%s sm-cluster: %v\n", time.Now().Format(time.RFC3339), err)
		if r.teardownLog != "" {
			err = fmt.Errorf("%w\n(tear-down log: %s)", err, r.teardownLog)
		}
		return err
	}
	fmt.Fprintln(w, ">> cluster down; host restored")
	return nil
}

// tolerantWriter writes to every writer and never fails: a progress line that
// cannot be shown must not stop a tear-down.
type tolerantWriter []io.Writer

func (t tolerantWriter) Write(p []byte) (int, error) {
	for _, w := range t {
		if w != nil {
			_, _ = w.Write(p)
		}
	}
	return len(p), nil
}

// localDemoCluster is the demo's local cluster: Debian packages, our images,
// localcluster Up (and a fresh import of the images when it already ran).
type localDemoCluster struct {
	cl  *localcluster.Cluster
	log *slog.Logger
	// started is set when Up goes on to start the cluster (from then on the
	// host may have changed); before that, Down has nothing to undo.
	started bool
}

func (l *localDemoCluster) Up(ctx context.Context) (string, error) {
	c := l.cl.Config()
	if err := os.MkdirAll(filepath.Join(c.StateDir, "logs"), 0o755); err != nil {
		return "", err
	}
	if err := c.EnsurePackages(ctx); err != nil {
		return "", err
	}
	fmt.Fprintln(c.Progress, ">> building images (first run: several minutes; later runs reuse the Go build cache)")
	if _, err := images.Build(ctx, images.Options{RepoDir: c.RepoDir, OutDir: c.ImagesDir, Binaries: demo.ImageBinaries, Progress: c.Progress, Log: l.log}); err != nil {
		return "", err
	}
	wasRunning := l.cl.Running()
	l.started = true
	kubeconfig, err := l.cl.Up(ctx)
	if err != nil {
		return "", err
	}
	if wasRunning {
		// Up imports images only when it starts the cluster.
		var tars []string
		for _, b := range demo.ImageBinaries {
			tars = append(tars, filepath.Join(c.ImagesDir, images.TarballName(b)))
		}
		if err := l.cl.LoadImages(ctx, tars...); err != nil {
			return "", err
		}
	}
	return kubeconfig, nil
}

func (l *localDemoCluster) Down(ctx context.Context) error {
	if !l.started {
		return nil
	}
	return l.cl.Down(ctx)
}

// newDemoRun builds the real demo from the flags.
func newDemoRun(f *flags, values []string, keep bool) (demoRun, error) {
	c, log, err := f.config()
	if err != nil {
		return demoRun{}, err
	}
	r := demoRun{kubeconfig: os.Getenv("KUBECONFIG"), keep: keep, progress: c.Progress,
		teardownLog: filepath.Join(c.StateDir, "logs", "demo-teardown.log")}
	if r.kubeconfig == "" {
		cl, err := localcluster.New(c)
		if err != nil {
			return demoRun{}, err
		}
		r.cluster = &localDemoCluster{cl: cl, log: log}
	} else {
		// Images come from a registry there, not from tarballs loaded into containerd.
		values = append([]string{"image.pullPolicy=IfNotPresent"}, values...)
	}
	start := time.Now()
	r.install = func(ctx context.Context, kubeconfig string) error {
		e, err := demo.Install(ctx, demo.Options{RepoDir: c.RepoDir, Kubeconfig: kubeconfig, Values: values, Progress: c.Progress, Log: log})
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
		link, err := e.PortalInvitation(ctx, "you@example.com", "owner")
		if err != nil {
			e.Step("no portal invitation: %v", err)
		}
		e.PrintTryIt(os.Stdout, sb, svc.Spec.ClusterIP, link)
		return nil
	}
	return r, nil
}

// demoCmd is `sm-cluster demo`: the local cluster (or the cluster of
// KUBECONFIG), SandboxMesh from its Helm chart, the hotrod example and a first
// sandbox; then it waits for Ctrl-C and tears down what it started. newRun
// builds the run from the flags (newDemoRun; tests pass a fake cluster).
func demoCmd(f *flags, newRun func(f *flags, values []string, keep bool) (demoRun, error)) *cobra.Command {
	var values []string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Bring up the local cluster, SandboxMesh, the example app and a sandbox; print what to try; tear down on Ctrl-C",
		Long: `demo brings up the local cluster with our images, installs SandboxMesh with its Helm chart
(control plane, agent, operator with webhook and route server), deploys the hotrod example, creates a
sandbox over the REST API and prints what to try. It keeps running until Ctrl-C, then tears down
(also when the start fails or is interrupted, and when its output pipe is gone). When the tear-down
cannot complete, it exits non-zero naming the clean-up command (` + cleanupCommand + `), also written to
<state-dir>/logs/demo-teardown.log.

With KUBECONFIG set it installs into that cluster instead and leaves the cluster up; the images
(sandboxmesh.dev/<binary>:dev) must then be available to it: push them and pass
--set image.registry=<your registry>.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := newRun(f, values, keep)
			if err != nil {
				return err
			}
			return r.run(cmd.Context())
		},
	}
	cmd.Flags().StringArrayVar(&values, "set", nil, "extra Helm value for the chart (key=value, repeatable)")
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the local cluster running after Ctrl-C (sm-cluster down stops it)")
	return cmd
}
