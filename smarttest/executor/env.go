package executor

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Environment of `sandboxmesh-runner smarttest` (the control plane sets them on a smart-test job; the job
// runner adds SANDBOXMESH_ROUTING_KEY from the job's routing context). docs: issue 15.
const (
	// EnvScript holds the script's source (at most MaxScriptBytes).
	EnvScript = "SANDBOXMESH_SMARTTEST_SCRIPT"
	// EnvExecution holds the execution's id, the prefix of every capture id.
	EnvExecution = "SANDBOXMESH_SMARTTEST_EXECUTION"
	// EnvFilename optionally names the script in positions (default "test.star").
	EnvFilename = "SANDBOXMESH_SMARTTEST_FILENAME"
	// EnvTimeout optionally bounds each run's wall time (a Go duration, e.g. "2m"; default
	// script.DefaultTimeout).
	EnvTimeout = "SANDBOXMESH_SMARTTEST_TIMEOUT"
	// EnvRoutingKey is the routing key of the sandbox (or route group) the target run carries.
	EnvRoutingKey = "SANDBOXMESH_ROUTING_KEY"
	// EnvJobName and EnvNamespace name the capture point of the runner's own captures (kind Job): the job's
	// name and the runner pod's namespace. Optional ("smarttest" and "default").
	EnvJobName   = "SANDBOXMESH_JOB_NAME"
	EnvNamespace = "POD_NAMESPACE"
)

// ConfigFromEnv reads the Config of `sandboxmesh-runner smarttest` from the environment (EnvScript,
// EnvExecution, EnvRoutingKey required; EnvFilename, EnvTimeout, EnvJobName, EnvNamespace optional). Errors
// wrap ErrConfig and name the variable; the script's value is never in them.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	bad := func(env, msg string) error { return fmt.Errorf("%w: %s: %s", ErrConfig, env, msg) }
	cfg := Config{
		Execution:  getenv(EnvExecution),
		Filename:   getenv(EnvFilename),
		Source:     getenv(EnvScript),
		RoutingKey: getenv(EnvRoutingKey),
		Namespace:  getenv(EnvNamespace),
		Name:       getenv(EnvJobName),
	}
	var missing []string
	for _, e := range [][2]string{{EnvScript, cfg.Source}, {EnvExecution, cfg.Execution}, {EnvRoutingKey, cfg.RoutingKey}} {
		if e[1] == "" {
			missing = append(missing, e[0])
		}
	}
	if len(missing) > 0 {
		return cfg, fmt.Errorf("%w: missing environment variable(s) %s", ErrConfig, strings.Join(missing, ", "))
	}
	if len(cfg.Source) > MaxScriptBytes {
		return cfg, bad(EnvScript, fmt.Sprintf("the script is %d bytes, more than %d", len(cfg.Source), MaxScriptBytes))
	}
	if err := routingkey.Validate(cfg.RoutingKey); err != nil {
		return cfg, fmt.Errorf("%w: %s: %w", ErrConfig, EnvRoutingKey, err)
	}
	if strings.ContainsAny(cfg.Filename, "/\\\n") {
		return cfg, bad(EnvFilename, fmt.Sprintf("%q is not a file name", cfg.Filename))
	}
	if v := getenv(EnvTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return cfg, bad(EnvTimeout, fmt.Sprintf("%q is not a positive duration (e.g. 2m)", v))
		}
		cfg.Limits.Timeout = d
	}
	envName := map[string]string{"execution": EnvExecution, "source": EnvScript, "routingKey": EnvRoutingKey}
	if err := cfg.validate(func(f string) string { return cmp.Or(envName[f], f) }); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// WriteReport writes rep as JSON to dir/ReportFile, mode 0600, replacing the file atomically; it returns the
// file's path.
func WriteReport(dir string, rep *Report) (string, error) {
	b, err := json.Marshal(rep)
	if err != nil {
		return "", fmt.Errorf("encoding the report: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+ReportFile+".*")
	if err != nil {
		return "", fmt.Errorf("writing the report: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // after the rename it is gone already
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("writing the report %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("writing the report %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing the report %s: %w", f.Name(), err)
	}
	dst := filepath.Join(dir, ReportFile)
	if err := os.Rename(f.Name(), dst); err != nil {
		return "", fmt.Errorf("writing the report: %w", err)
	}
	return dst, nil
}

// HasErrors reports whether a run of rep did not run to its end (Run.Error set).
func (r *Report) HasErrors() bool {
	for _, run := range r.Runs {
		if run.Error != "" {
			return true
		}
	}
	return false
}

// WriteSummary prints rep as a table (one row per run: checks, passed, failed, captures, status), then every
// failed check and every run error with its script position.
func WriteSummary(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "RUN\tCHECKS\tPASSED\tFAILED\tCAPTURES\tSTATUS")
	var details []string
	for _, run := range rep.Runs {
		checks, failed := 0, 0
		if run.Result != nil {
			checks = len(run.Result.Checks)
			for _, c := range run.Result.Checks {
				if len(c.Errors) == 0 {
					continue
				}
				failed++
				for _, e := range c.Errors {
					details = append(details, fmt.Sprintf("%s: check %q failed at %s: %s", run.Name, c.Name, e.SourcePosition, e.Message))
				}
			}
			if run.Result.DroppedCheckErrors > 0 {
				details = append(details, fmt.Sprintf("%s: %d more check errors were dropped", run.Name, run.Result.DroppedCheckErrors))
			}
		}
		status := "Completed"
		if run.Error != "" {
			status = "Error"
			details = append(details, fmt.Sprintf("%s: error: %s", run.Name, firstLine(run.Error)))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", run.Name, checks, checks-failed, failed, len(run.Captures), status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range details {
		if _, err := fmt.Fprintln(w, d); err != nil {
			return err
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
