package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// runnerGroupCommand is `sandboxmesh jobrunnergroup` (Signadot's
// `signadot jobrunnergroup`): runner groups as {name, spec} files.
func (a *App) runnerGroupCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "jobrunnergroup", Aliases: []string{"jobrunnergroups", "jrg", "runnergroup"},
		Short: "Create, inspect and delete job runner groups (the pods that run jobs in a cluster)"})
	var (
		file    string
		sets    []string
		cluster string
	)
	apply := &cobra.Command{
		Use:   "apply -f FILE [--set var=value ...] [--cluster NAME]",
		Short: "Create or update a job runner group from a spec file ({name, spec}, templated like sandbox apply)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rg, err := a.loadRunnerGroup(file, sets)
			if err != nil {
				return err
			}
			if cluster != "" {
				rg.Spec.Cluster = cluster
			}
			out, err := c.ApplyRunnerGroup(cmd.Context(), a.cfg.Org, rg)
			if err != nil {
				return a.explain(err, "apply job runner group "+rg.Name)
			}
			if ok, err := a.structured(a.Stdout, out); ok {
				return err
			}
			fmt.Fprintf(a.Stdout, "job runner group %s applied (version %d)\n\n", out.Name, out.Version)
			return a.printRunnerGroups(a.Stdout, []client.RunnerGroup{*out})
		},
	}
	apply.Flags().StringVarP(&file, "filename", "f", "", "spec file (YAML or JSON; - reads stdin)")
	apply.Flags().StringArrayVar(&sets, "set", nil, "template variable, var=value (repeatable)")
	apply.Flags().StringVar(&cluster, "cluster", "", "set spec.cluster")
	_ = apply.MarkFlagFilename("filename", "yaml", "yml", "json")

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a job runner group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rg, err := c.GetRunnerGroup(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "job runner group "+args[0])
			}
			if ok, err := a.structured(a.Stdout, rg); ok {
				return err
			}
			return a.printRunnerGroups(a.Stdout, []client.RunnerGroup{*rg})
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List job runner groups",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			rgs, err := c.ListRunnerGroups(cmd.Context(), a.cfg.Org)
			if err != nil {
				return a.explain(err, "list job runner groups")
			}
			if ok, err := a.structured(a.Stdout, rgs); ok {
				return err
			}
			if len(rgs) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No job runner groups in org %s.\n", a.cfg.Org)
				return err
			}
			return a.printRunnerGroups(a.Stdout, rgs)
		},
	}
	del := a.deleteCommand("job runner group", "Delete job runner groups (their queued jobs are canceled)", func(ctx context.Context, c *client.Client, name string) error {
		return c.DeleteRunnerGroup(ctx, a.cfg.Org, name)
	})
	cmd.AddCommand(apply, get, list, del)
	return cmd
}

func (a *App) printRunnerGroups(w io.Writer, rgs []client.RunnerGroup) error {
	tw := newTable(w, "NAME", "CLUSTER", "NAMESPACE", "PODS READY", "IDLE", "RUNNING", "QUEUED", "AGE")
	for _, rg := range rgs {
		desired := int32(1)
		if rg.Spec.Scaling != nil && rg.Spec.Scaling.Manual != nil {
			desired = rg.Spec.Scaling.Manual.DesiredPods
		}
		ns := rg.Spec.Namespace
		if ns == "" {
			ns = apitypes.DefaultRunnerNamespace
		}
		st := rg.Status
		row(tw, rg.Name, rg.Spec.Cluster, ns, fmt.Sprintf("%d/%d", st.Pods.Ready, desired), fmt.Sprint(st.Pods.Idle),
			fmt.Sprint(st.Executions.Running), fmt.Sprint(st.Executions.Queued), a.age(rg.CreatedAt))
	}
	return tw.Flush()
}

// jobCommand is `sandboxmesh job` (Signadot's `signadot job`).
func (a *App) jobCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "job", Aliases: []string{"jobs"}, Short: "Submit, follow, inspect, cancel and delete jobs (test suites run in the cluster)"})
	var (
		file    string
		sets    []string
		attach  bool
		timeout time.Duration
	)
	submit := &cobra.Command{
		Use:   "submit -f FILE [--set var=value ...] [--attach [--timeout D]]",
		Short: "Submit a job from a spec file ({spec}, templated like sandbox apply)",
		Long: `Submit a job from a spec file ({spec: {runnerGroup, script or command,
routingContext, env, uploadArtifact...}}), templated like sandbox apply
(@{var} from --set, @{embed: file} for the script).

With --attach, the job's stdout and stderr stream to this terminal's
stdout and stderr until it ends, and the command exits with the job's exit
code (1 when it was canceled or its runner failed; 4 after --timeout, the
job still runs). Without it, submit prints the job's name and returns.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			spec, err := a.loadJob(file, sets)
			if err != nil {
				return err
			}
			job, err := c.SubmitJob(cmd.Context(), a.cfg.Org, *spec)
			if err != nil {
				return a.explain(err, "submit job")
			}
			if !attach {
				if ok, err := a.structured(a.Stdout, job); ok {
					return err
				}
				fmt.Fprintf(a.Stdout, "job %s submitted (runner group %s%s)\n", job.Name, job.Spec.RunnerGroup, routingNote(job))
				fmt.Fprintf(a.Stdout, "follow it with `sandboxmesh logs --job %s`, check it with `sandboxmesh job get %s`\n", job.Name, job.Name)
				return nil
			}
			fmt.Fprintf(a.Stderr, "job %s submitted (runner group %s%s)\n", job.Name, job.Spec.RunnerGroup, routingNote(job))
			return a.attachJob(cmd.Context(), c, job, timeout)
		},
	}
	submit.Flags().StringVarP(&file, "filename", "f", "", "spec file (YAML or JSON; - reads stdin)")
	submit.Flags().StringArrayVar(&sets, "set", nil, "template variable, var=value (repeatable)")
	submit.Flags().BoolVar(&attach, "attach", false, "stream the job's output and exit with its exit code")
	submit.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long --attach waits for the job to end (exit code 4 after it)")
	_ = submit.MarkFlagFilename("filename", "yaml", "yml", "json")

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a job: phase, exit code, pod, artifacts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			job, err := c.GetJob(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "job "+args[0])
			}
			if ok, err := a.structured(a.Stdout, job); ok {
				return err
			}
			arts, err := c.ListArtifacts(cmd.Context(), a.cfg.Org, job.Name, lastAttempt(job), "")
			if err != nil {
				return a.explain(err, "artifacts of job "+job.Name)
			}
			return a.printJob(a.Stdout, job, arts)
		},
	}
	var (
		pages  pageFlags
		filter client.JobFilter
	)
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List jobs, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			jobs, err := listItems(a, cmd, pages, func() ([]client.Job, error) { return c.ListJobs(cmd.Context(), a.cfg.Org, filter) },
				func(p client.PageOptions) (*client.Page[client.Job], error) {
					return c.ListJobsPage(cmd.Context(), a.cfg.Org, filter, p)
				})
			if err != nil {
				return a.explain(err, "list jobs")
			}
			if ok, err := a.structured(a.Stdout, jobs); ok {
				return err
			}
			if len(jobs) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No jobs in org %s.\n", a.cfg.Org)
				return err
			}
			return a.printJobs(a.Stdout, jobs)
		},
	}
	list.Flags().StringVar(&filter.RunnerGroup, "runner-group", "", "only jobs of this runner group")
	list.Flags().StringVar(&filter.TargetSandbox, "sandbox", "", "only jobs routed to this sandbox")
	list.Flags().StringVar(&filter.Phase, "phase", "", "only jobs in this phase: queued, running, succeeded, failed or canceled")
	pages.add(list)

	cancel := cancelCommand(a, "cancel NAME...", "job", "Cancel jobs (a running job's processes are stopped: SIGTERM, then SIGKILL)",
		func(ctx context.Context, c *client.Client, name string) (*client.Job, string, error) {
			j, err := c.CancelJob(ctx, a.cfg.Org, name)
			if err != nil {
				return nil, "", err
			}
			return j, j.Status.Phase, nil
		})
	del := a.deleteCommand("job", "Delete jobs with their logs and artifacts (a running job is stopped)", func(ctx context.Context, c *client.Client, name string) error {
		return c.DeleteJob(ctx, a.cfg.Org, name)
	})
	cmd.AddCommand(submit, get, list, cancel, del)
	return cmd
}

// logsCommand is `sandboxmesh logs --job NAME` (Signadot's `signadot logs`).
func (a *App) logsCommand() *cobra.Command {
	var (
		job     string
		stream  string
		attempt int64
		tail    int
	)
	cmd := &cobra.Command{
		Use:   "logs --job NAME [--stream stdout|stderr] [--attempt N] [--tail N]",
		Short: "Show a job's output; while the job runs, follow it until it ends",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if job == "" {
				return usageErrorf("--job is required: the job whose output to show")
			}
			if stream != "stdout" && stream != "stderr" {
				return usageErrorf("--stream %q: want stdout or stderr", stream)
			}
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			w := a.Stdout
			if stream == "stderr" {
				w = a.Stderr
			}
			err = c.StreamJobLogs(cmd.Context(), a.cfg.Org, job, client.LogStreamOptions{Attempt: attempt, Type: stream, TailLines: tail}, func(m client.JobLogMessage) error {
				_, err := io.WriteString(w, m.Message)
				return err
			})
			return a.explain(err, "logs of job "+job)
		},
	}
	cmd.Flags().StringVar(&job, "job", "", "the job")
	cmd.Flags().StringVarP(&stream, "stream", "s", "stdout", "stdout or stderr")
	cmd.Flags().Int64Var(&attempt, "attempt", 0, "attempt of the job")
	cmd.Flags().IntVar(&tail, "tail", 0, "start with the last N lines (0: all)")
	return cmd
}

// artifactCommand is `sandboxmesh artifact` (Signadot's `signadot artifact`).
func (a *App) artifactCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "artifact", Aliases: []string{"artifacts"}, Short: "List and download the files jobs uploaded"})
	var (
		job     string
		attempt int64
		space   string
		out     string
	)
	list := &cobra.Command{
		Use:     "list --job NAME",
		Aliases: []string{"ls"},
		Short:   "List a job's artifacts (--space system: its stdout and stderr)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if job == "" {
				return usageErrorf("--job is required")
			}
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			arts, err := c.ListArtifacts(cmd.Context(), a.cfg.Org, job, attempt, space)
			if err != nil {
				return a.explain(err, "artifacts of job "+job)
			}
			if ok, err := a.structured(a.Stdout, arts); ok {
				return err
			}
			if len(arts) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No artifacts of job %s (attempt %d).\n", job, attempt)
				return err
			}
			return a.printArtifacts(a.Stdout, arts)
		},
	}
	download := &cobra.Command{
		Use:   "download --job NAME [--attempt N] PATH [-o FILE]",
		Short: "Download one artifact (the path the job named in uploadArtifact)",
		Long: `Download one artifact: PATH is the path the job named in uploadArtifact
(--space system: stdout or stderr). -o (or --output-file) names the file to
write, - for stdout; by default the path's base name in the current folder.
The file appears only once the whole artifact was received.`,
		Args: cobra.ExactArgs(1),
		// -o is the destination here (as curl -o), not an output format.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.flags.output != "" {
				if out != "" && out != a.flags.output {
					return usageErrorf("-o %s and --output-file %s: give one", a.flags.output, out)
				}
				out = a.flags.output
			}
			if job == "" {
				return usageErrorf("--job is required")
			}
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			dest := out
			if dest == "" {
				dest = filepath.Base(args[0])
			}
			if dest == "-" {
				_, err := c.DownloadArtifact(cmd.Context(), a.cfg.Org, job, attempt, space, args[0], a.Stdout)
				return a.explain(err, "download artifact "+args[0]+" of job "+job)
			}
			n, err := downloadTo(cmd.Context(), c, a.cfg.Org, job, attempt, space, args[0], dest)
			if err != nil {
				return a.explain(err, "download artifact "+args[0]+" of job "+job)
			}
			fmt.Fprintf(a.Stderr, "%s: %d bytes written to %s\n", args[0], n, dest)
			return nil
		},
	}
	for _, c := range []*cobra.Command{list, download} {
		c.Flags().StringVar(&job, "job", "", "the job")
		c.Flags().Int64Var(&attempt, "attempt", 0, "attempt of the job")
		c.Flags().StringVar(&space, "space", "user", "user (the files of uploadArtifact) or system (stdout, stderr)")
	}
	download.Flags().StringVar(&out, "output-file", "", "where to write it, as -o (default: the path's base name in the current folder; - for stdout)")
	cmd.AddCommand(list, download)
	return cmd
}

// downloadTo writes an artifact to dest through a temporary file, so a
// failed download leaves nothing (and never half of a file) behind.
func downloadTo(ctx context.Context, c *client.Client, org, job string, attempt int64, space, path, dest string) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*")
	if err != nil {
		return 0, withCode(ExitUsage, err)
	}
	n, err := c.DownloadArtifact(ctx, org, job, attempt, space, path, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dest)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, err
	}
	return n, nil
}

// attachJob streams a job's stdout and stderr until it ends and returns its
// exit code as the command's.
func (a *App) attachJob(ctx context.Context, c *client.Client, job *client.Job, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []struct {
		typ string
		w   io.Writer
	}{{"stdout", a.Stdout}, {"stderr", a.Stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.StreamJobLogs(ctx, a.cfg.Org, job.Name, client.LogStreamOptions{Type: s.typ}, func(m client.JobLogMessage) error {
				_, err := io.WriteString(s.w, m.Message)
				return err
			})
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	// Progress while no runner pod has taken the job.
	start := a.now()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			j, err := c.GetJob(ctx, a.cfg.Org, job.Name)
			if err == nil && j.Status.Phase == apitypes.JobPhaseQueued {
				msg := ""
				if st := j.Status.Attempts; len(st) > 0 && st[len(st)-1].State.Queued != nil {
					msg = ": " + st[len(st)-1].State.Queued.Message
				}
				fmt.Fprintf(a.Stderr, "job %s queued for %s%s\n", job.Name, humanDuration(a.now().Sub(start)), msg)
			}
		}
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return withCode(ExitTimeout, fmt.Errorf("job %s did not end within %s; it keeps running: follow it with `sandboxmesh logs --job %s`, stop it with `sandboxmesh job cancel %s`", job.Name, timeout, job.Name, job.Name))
		}
		return withCode(ExitError, fmt.Errorf("attach to job %s: %w (the job keeps running)", job.Name, errInterrupted))
	}
	for _, err := range errs {
		if err != nil {
			return a.explain(err, "logs of job "+job.Name)
		}
	}
	final, err := c.GetJob(ctx, a.cfg.Org, job.Name)
	if err != nil {
		return a.explain(err, "job "+job.Name)
	}
	code, summary := jobOutcome(final)
	fmt.Fprintf(a.Stderr, "job %s %s\n", final.Name, summary)
	if code == 0 {
		return nil
	}
	return withCode(code, fmt.Errorf("job %s %s", final.Name, summary))
}

// jobOutcome is a finished job's exit code for the CLI and its summary.
func jobOutcome(j *client.Job) (int, string) {
	if len(j.Status.Attempts) == 0 {
		return ExitError, "has no attempt"
	}
	st := j.Status.Attempts[len(j.Status.Attempts)-1].State
	switch {
	case st.Succeeded != nil:
		return 0, "succeeded"
	case st.Failed != nil:
		code := int(st.Failed.ExitCode)
		if code <= 0 || code > 255 {
			code = ExitError
		}
		s := fmt.Sprintf("failed (exit code %d)", st.Failed.ExitCode)
		if st.Failed.Message != "" {
			s += ": " + st.Failed.Message
		}
		return code, s
	case st.Canceled != nil:
		s := "was canceled by " + st.Canceled.CanceledBy
		if st.Canceled.Message != "" {
			s += ": " + st.Canceled.Message
		}
		return ExitError, s
	}
	return ExitError, "is " + j.Status.Phase
}

func lastAttempt(j *client.Job) int64 {
	if n := len(j.Status.Attempts); n > 0 {
		return j.Status.Attempts[n-1].ID
	}
	return 0
}

func routingNote(j *client.Job) string {
	rc := j.Spec.RoutingContext
	switch {
	case rc == nil:
		return ""
	case rc.Sandbox != "":
		return ", sandbox " + rc.Sandbox + ", routing key " + j.Status.RoutingKey
	case rc.RouteGroup != "":
		return ", route group " + rc.RouteGroup + ", routing key " + j.Status.RoutingKey
	}
	return ""
}

func jobTarget(j *client.Job) string {
	if rc := j.Spec.RoutingContext; rc != nil {
		if rc.Sandbox != "" {
			return "sandbox/" + rc.Sandbox
		}
		if rc.RouteGroup != "" {
			return "routegroup/" + rc.RouteGroup
		}
	}
	return ""
}

func jobExit(j *client.Job) string {
	if len(j.Status.Attempts) == 0 {
		return ""
	}
	st := j.Status.Attempts[len(j.Status.Attempts)-1].State
	switch {
	case st.Succeeded != nil:
		return "0"
	case st.Failed != nil:
		return fmt.Sprint(st.Failed.ExitCode)
	}
	return ""
}

func (a *App) jobDuration(j *client.Job) string {
	start, err := time.Parse(time.RFC3339, j.Status.StartedAt)
	if err != nil {
		return ""
	}
	end := a.now()
	if t, err := time.Parse(time.RFC3339, j.Status.FinishedAt); err == nil {
		end = t
	}
	return humanDuration(end.Sub(start))
}

func (a *App) printJobs(w io.Writer, jobs []client.Job) error {
	tw := newTable(w, "NAME", "RUNNER GROUP", "TARGET", "PHASE", "EXIT", "DURATION", "AGE")
	for i := range jobs {
		j := &jobs[i]
		row(tw, j.Name, j.Spec.RunnerGroup, jobTarget(j), j.Status.Phase, jobExit(j), a.jobDuration(j), a.age(j.CreatedAt))
	}
	return tw.Flush()
}

func (a *App) printJob(w io.Writer, j *client.Job, arts []client.Artifact) error {
	if err := a.printJobs(w, []client.Job{*j}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if j.Status.RoutingKey != "" {
		fmt.Fprintf(w, "Routing key: %s\n", j.Status.RoutingKey)
	}
	for _, at := range j.Status.Attempts {
		st := at.State
		var detail []string
		switch {
		case st.Queued != nil && st.Queued.Message != "":
			detail = append(detail, st.Queued.Message)
		case st.Running != nil:
			detail = append(detail, "pod "+st.Running.PodNamespace+"/"+st.Running.PodName)
		case st.Failed != nil && st.Failed.Message != "":
			detail = append(detail, st.Failed.Message)
		case st.Canceled != nil:
			detail = append(detail, "by "+st.Canceled.CanceledBy)
			if st.Canceled.Message != "" {
				detail = append(detail, st.Canceled.Message)
			}
		}
		fmt.Fprintf(w, "Attempt %d: %s", at.ID, at.Phase)
		if len(detail) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(detail, "; "))
		}
		fmt.Fprintln(w)
	}
	if len(arts) > 0 {
		fmt.Fprintln(w)
		return a.printArtifacts(w, arts)
	}
	return nil
}

func (a *App) printArtifacts(w io.Writer, arts []client.Artifact) error {
	tw := newTable(w, "PATH", "SPACE", "SIZE", "TYPE", "SHA256")
	for _, at := range arts {
		row(tw, at.Path, at.Space, fmt.Sprint(at.ContentLength), at.ContentType, at.ChecksumSHA256)
	}
	return tw.Flush()
}
