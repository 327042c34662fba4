// Package cli is the sandboxmesh command line (cmd/sandboxmesh is a thin main
// around it): configuration (~/.sandboxmesh/config.yaml, SANDBOXMESH_* variables,
// flags), auth, sandboxes and route groups from templated spec files, clusters
// and cluster tokens, the local preview proxy, the MCP server, shell completion
// and documented exit codes. It talks to the control plane only through the Go
// SDK (controlplane/client).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// Build information, set with -ldflags "-X github.com/sandboxmesh/sandboxmesh/internal/cli.Version=...".
var (
	// Version of the CLI.
	Version = "dev"
	// Commit the CLI was built from.
	Commit = "unknown"
)

// App holds the CLI's environment; the zero value plus Stdout and Stderr uses
// the process's environment.
type App struct {
	// Stdin, Stdout and Stderr of the command.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads environment variables (default os.Getenv).
	Getenv func(string) string
	// Home is the home directory (default os.UserHomeDir).
	Home string
	// Now is the clock for ages (default time.Now).
	Now func() time.Time
	// HTTPClient is used for every request (default: 60s timeout).
	HTTPClient *http.Client
	// WaitInterval is the poll interval of --wait (default 1s).
	WaitInterval time.Duration
	// OnListen is called with the local address of each `local proxy` mapping once it listens.
	OnListen func(addr string)
	// SpawnDaemon starts the local daemon (`sandboxmesh local daemon ARGS...`,
	// a hidden command) in the background and returns a channel that yields
	// its end if it ends while the caller waits. The default re-executes this
	// binary detached (new session, no stdin/stdout, stderr to daemon.log);
	// tests run it in-process.
	SpawnDaemon func(args []string, logFile string) (<-chan error, error)

	flags globalFlags
	cfg   Config
	// warnedSignadot: the SIGNADOT_* fallback warning was printed (once per App).
	warnedSignadot bool
}

type globalFlags struct {
	config, org, apiKey, apiURL, previewURL, output string
}

func (a *App) getenv(k string) string {
	if a.Getenv != nil {
		return a.Getenv(k)
	}
	return os.Getenv(k)
}

func (a *App) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Execute runs the CLI with args (without the program name), prints errors to
// Stderr and returns the exit code.
func (a *App) Execute(ctx context.Context, args []string) int {
	if a.Stdin == nil {
		a.Stdin = os.Stdin
	}
	root := a.NewRootCommand()
	root.SetArgs(args)
	root.SetIn(a.Stdin)
	root.SetOut(a.Stdout)
	root.SetErr(a.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	if se := (*silentError)(nil); errors.As(err, &se) {
		return code
	}
	if code == ExitError && isCobraUsage(err) {
		code = ExitUsage
	}
	fmt.Fprintf(a.Stderr, "Error: %v\n", err)
	if code == ExitUsage && isCobraUsage(err) {
		fmt.Fprintln(a.Stderr, "Run with --help for usage.")
	}
	return code
}

// isCobraUsage recognises cobra's own argument and flag errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "required flag", "if any flags in the group"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// NewRootCommand returns the sandboxmesh command tree.
func (a *App) NewRootCommand() *cobra.Command {
	a.flags, a.cfg = globalFlags{}, Config{}
	root := &cobra.Command{
		Use:   "sandboxmesh",
		Short: "Request-isolated sandboxes on Kubernetes",
		Long: `sandboxmesh drives a SandboxMesh control plane: sandboxes that fork workloads
and receive only the requests carrying their routing key, route groups,
clusters, a local proxy to reach sandboxes from your machine, and an MCP
server for AI agents.

Get started:
  sandboxmesh auth login --api-url http://localhost:8080 --org <org> --api-key <key>
  sandboxmesh sandbox apply -f sandbox.yaml --set image=<image> --wait
  sandboxmesh sandbox get <name>`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return checkOutput(a.flags.output)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(ExitUsage, err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.flags.config, "config", "", "config file (default ~/.sandboxmesh/config.yaml; env "+EnvConfig+")")
	pf.StringVar(&a.flags.org, "org", "", "org to act on (env "+EnvOrg+")")
	pf.StringVar(&a.flags.apiKey, "api-key", "", "API key (env "+EnvAPIKey+")")
	pf.StringVar(&a.flags.apiURL, "api-url", "", "control plane URL (env "+EnvAPIURL+", default "+DefaultAPIURL+")")
	pf.StringVar(&a.flags.previewURL, "preview-url", "", "base URL of the preview proxy (env "+EnvPreviewURL+", default: the API URL)")
	pf.StringVarP(&a.flags.output, "output", "o", "", "output format: table (default), json or yaml")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(a.authCommand(), a.sandboxCommand(), a.routeGroupCommand(), a.resourcePluginCommand(), a.runnerGroupCommand(), a.jobCommand(), a.smartTestCommand(), a.logsCommand(), a.artifactCommand(), a.clusterCommand(), a.usageCommand(), a.adminCommand(), a.localCommand(), a.mcpCommand(), a.versionCommand())
	return root
}

// setup loads the configuration and returns a client; it fails with ExitAuth
// or ExitUsage when the key or org is missing.
func (a *App) setup(needOrg bool) (*client.Client, error) {
	cfg, _, path, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	a.cfg = cfg
	if cfg.APIKey == "" {
		return nil, withCode(ExitAuth, fmt.Errorf("no API key: run `sandboxmesh auth login --org <org> --api-key <key>` (writes %s), or set $%s", path, EnvAPIKey))
	}
	if needOrg && cfg.Org == "" {
		return nil, usageErrorf("no org: pass --org, set $%s, or run `sandboxmesh auth login --org <org> ...`", EnvOrg)
	}
	opts := []client.Option{client.WithHeader("User-Agent", "sandboxmesh-cli/"+Version)}
	if a.HTTPClient != nil {
		opts = append(opts, client.WithHTTPClient(a.HTTPClient))
	}
	c, err := client.New(cfg.APIURL, cfg.APIKey, opts...)
	if err != nil {
		return nil, usageErrorf("api_url: %v", err)
	}
	return c, nil
}

func (a *App) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the CLI's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{"version": Version, "commit": Commit, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}
			if ok, err := a.structured(a.Stdout, v); ok {
				return err
			}
			_, err := fmt.Fprintf(a.Stdout, "sandboxmesh %s (commit %s, %s, %s)\n", Version, Commit, v["go"], v["platform"])
			return err
		},
	}
}

var errInterrupted = errors.New("interrupted")

func (a *App) httpClient() *http.Client {
	if a.HTTPClient != nil {
		return a.HTTPClient
	}
	return &http.Client{Timeout: 60 * time.Second}
}

// group makes a command that only holds subcommands: it prints its help, and
// fails with a usage error on an unknown subcommand.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf("unknown command %q for %q", args[0], c.CommandPath())
		}
		return c.Help()
	}
	return cmd
}
