package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

func (a *App) authCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "auth", Short: "Log in to a control plane and show the login"})
	cmd.AddCommand(a.authLoginCommand(), a.authStatusCommand())
	return cmd
}

func mask(s string) string {
	if len(s) < 12 {
		return "****"
	}
	return s[:8] + "…" + s[len(s)-4:]
}

func (a *App) authLoginCommand() *cobra.Command {
	var noVerify bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Store the org, API key and URLs in the config file (mode 0600)",
		Long: `login checks the API key against the control plane and stores it, with the
org and the URLs given, in ~/.sandboxmesh/config.yaml (file mode 0600). Without
--api-key the key is read from stdin (one line), so it stays out of the shell
history:

  echo "$KEY" | sandboxmesh auth login --api-url https://sm.example.com --org acme`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := a.configPath()
			if err != nil {
				return err
			}
			file, _, err := readConfigFile(path)
			if err != nil {
				return err
			}
			merged, _, _, err := a.loadConfig()
			if err != nil {
				return err
			}
			if a.flags.apiKey == "" && a.getenv(EnvAPIKey) == "" {
				fmt.Fprint(a.Stderr, "API key: ")
				line, err := bufio.NewReader(a.Stdin).ReadString('\n')
				line = strings.TrimSpace(line)
				if line == "" {
					if err != nil && merged.APIKey == "" {
						return usageErrorf("no API key: pass --api-key, set $%s or type it on stdin", EnvAPIKey)
					}
				} else {
					merged.APIKey = line
				}
				fmt.Fprintln(a.Stderr)
			}
			if merged.Org == "" {
				return usageErrorf("no org: pass --org <org> (the org your API key belongs to)")
			}
			a.cfg = merged
			if !noVerify {
				c, err := client.New(merged.APIURL, merged.APIKey, client.WithHTTPClient(a.httpClient()))
				if err != nil {
					return usageErrorf("api_url: %v", err)
				}
				if _, err := c.GetOrg(cmd.Context(), merged.Org); err != nil {
					return a.explain(err, "check API key for org "+merged.Org)
				}
			}
			file.Org, file.APIKey, file.APIURL = merged.Org, merged.APIKey, merged.APIURL
			if merged.PreviewURL != "" {
				file.PreviewURL = merged.PreviewURL
			}
			if err := writeConfigFile(path, file); err != nil {
				return err
			}
			fmt.Fprintf(a.Stdout, "Logged in to org %s at %s (key %s); wrote %s\n", merged.Org, merged.APIURL, mask(merged.APIKey), path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&noVerify, "no-verify", false, "store the settings without checking them against the control plane")
	return cmd
}

type authStatus struct {
	ConfigFile    string `json:"configFile"`
	Org           string `json:"org"`
	OrgFrom       string `json:"orgFrom"`
	APIURL        string `json:"apiUrl"`
	APIURLFrom    string `json:"apiUrlFrom"`
	PreviewURL    string `json:"previewUrl,omitempty"`
	APIKey        string `json:"apiKey"`
	APIKeyFrom    string `json:"apiKeyFrom"`
	Authenticated bool   `json:"authenticated"`
	Sandboxes     int64  `json:"sandboxes"`
	MaxSandboxes  int64  `json:"maxSandboxes"`
	Error         string `json:"error,omitempty"`
}

func (a *App) authStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the configuration in effect and check the API key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, src, path, err := a.loadConfig()
			if err != nil {
				return err
			}
			a.cfg = cfg
			st := authStatus{ConfigFile: path, Org: cfg.Org, OrgFrom: src.Org, APIURL: cfg.APIURL, APIURLFrom: src.APIURL,
				PreviewURL: cfg.PreviewURL, APIKey: mask(cfg.APIKey), APIKeyFrom: src.APIKey}
			if cfg.APIKey == "" {
				st.APIKey = ""
			}
			checkErr := a.checkLogin(cmd.Context(), cfg, &st)
			if checkErr != nil {
				st.Error = checkErr.Error()
			}
			if ok, err := a.structured(a.Stdout, st); ok {
				if err != nil {
					return err
				}
				return checkErr
			}
			tw := newTable(a.Stdout, "SETTING", "VALUE", "FROM")
			row(tw, "config file", path, "")
			row(tw, "api_url", cfg.APIURL, src.APIURL)
			row(tw, "preview_url", cfg.PreviewURL, src.PreviewURL)
			row(tw, "org", cfg.Org, src.Org)
			row(tw, "api_key", st.APIKey, src.APIKey)
			tw.Flush()
			if checkErr != nil {
				return checkErr
			}
			quota := "unlimited"
			if st.MaxSandboxes > 0 {
				quota = fmt.Sprint(st.MaxSandboxes)
			}
			_, err = fmt.Fprintf(a.Stdout, "\nAuthenticated. Sandboxes in org %s: %d (quota %s).\n", cfg.Org, st.Sandboxes, quota)
			return err
		},
	}
}

func (a *App) checkLogin(ctx context.Context, cfg Config, st *authStatus) error {
	if cfg.APIKey == "" {
		return withCode(ExitAuth, errors.New("not logged in: run `sandboxmesh auth login --org <org> --api-key <key>`"))
	}
	if cfg.Org == "" {
		return usageErrorf("no org configured: run `sandboxmesh auth login --org <org>` or set $%s", EnvOrg)
	}
	c, err := client.New(cfg.APIURL, cfg.APIKey, client.WithHTTPClient(a.httpClient()))
	if err != nil {
		return usageErrorf("api_url: %v", err)
	}
	o, err := c.GetOrg(ctx, cfg.Org)
	if err != nil {
		return a.explain(err, "check API key for org "+cfg.Org)
	}
	st.Authenticated, st.Sandboxes, st.MaxSandboxes = true, o.Quota.Sandboxes, o.Quota.MaxSandboxes
	return nil
}
