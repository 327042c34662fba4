package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// Config is the CLI's configuration: ~/.sandboxmesh/config.yaml, overridden by
// SANDBOXMESH_* environment variables, overridden by flags.
type Config struct {
	// Org is the org every command acts on.
	Org string `json:"org,omitempty"`
	// APIKey authenticates with the control plane.
	APIKey string `json:"api_key,omitempty"`
	// APIURL is the control plane's base URL.
	APIURL string `json:"api_url,omitempty"`
	// PreviewURL is where the control plane's preview proxy is reachable (the
	// path form /preview/...); empty means APIURL.
	PreviewURL string `json:"preview_url,omitempty"`
	// Local is the local-workload connections section (`local:`), parsed
	// strictly by localtunnel with field paths.
	Local *localtunnel.LocalConfig `json:"local,omitempty"`
}

// DefaultAPIURL is used when no api_url is configured.
const DefaultAPIURL = "http://localhost:8080"

// Environment variables.
const (
	EnvConfig     = "SANDBOXMESH_CONFIG"
	EnvOrg        = "SANDBOXMESH_ORG"
	EnvAPIKey     = "SANDBOXMESH_API_KEY"
	EnvAPIURL     = "SANDBOXMESH_API_URL"
	EnvPreviewURL = "SANDBOXMESH_PREVIEW_URL"
	// EnvSignadotOrg and EnvSignadotAPIKey are Signadot's variables, read
	// (with a warning) when neither flag, SandboxMesh variable nor config file
	// sets the org or API key: scripts written for Signadot run unchanged.
	EnvSignadotOrg    = "SIGNADOT_ORG"
	EnvSignadotAPIKey = "SIGNADOT_API_KEY"
)

// configPath returns the config file path: --config, $SANDBOXMESH_CONFIG or ~/.sandboxmesh/config.yaml.
func (a *App) configPath() (string, error) {
	if a.flags.config != "" {
		return a.flags.config, nil
	}
	if p := a.getenv(EnvConfig); p != "" {
		return p, nil
	}
	home := a.Home
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find home directory: %w (set %s or --config)", err, EnvConfig)
		}
		home = h
	}
	return filepath.Join(home, ".sandboxmesh", "config.yaml"), nil
}

// readConfigFile reads the config file; a missing file is an empty config.
func readConfigFile(path string) (Config, bool, error) {
	var c Config
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, true, usageErrorf("config %s: %v (keys: org, api_key, api_url, preview_url, local)", path, err)
	}
	return c, true, nil
}

// writeConfigFile writes c with file mode 0600 (the folder gets 0700).
func writeConfigFile(path string, c Config) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	return nil
}

// source says where each setting came from (for auth status).
type source struct{ Org, APIKey, APIURL, PreviewURL string }

// loadConfig merges file, environment and flags.
func (a *App) loadConfig() (Config, source, string, error) {
	path, err := a.configPath()
	if err != nil {
		return Config{}, source{}, "", err
	}
	c, found, err := readConfigFile(path)
	if err != nil {
		return c, source{}, path, err
	}
	var src source
	from := "none"
	if found {
		from = path
	}
	set := func(dst *string, srcDst *string, file, env, flag string) {
		*dst, *srcDst = file, from
		if file == "" {
			*srcDst = "none"
		}
		if v := a.getenv(env); v != "" {
			*dst, *srcDst = v, "$"+env
		}
		if flag != "" {
			*dst, *srcDst = flag, "flag"
		}
	}
	set(&c.Org, &src.Org, c.Org, EnvOrg, a.flags.org)
	set(&c.APIKey, &src.APIKey, c.APIKey, EnvAPIKey, a.flags.apiKey)
	set(&c.APIURL, &src.APIURL, c.APIURL, EnvAPIURL, a.flags.apiURL)
	set(&c.PreviewURL, &src.PreviewURL, c.PreviewURL, EnvPreviewURL, a.flags.previewURL)
	var signadot []string
	for _, f := range []struct {
		dst, src *string
		env      string
	}{{&c.Org, &src.Org, EnvSignadotOrg}, {&c.APIKey, &src.APIKey, EnvSignadotAPIKey}} {
		if v := a.getenv(f.env); *f.dst == "" && v != "" {
			*f.dst, *f.src = v, "$"+f.env
			signadot = append(signadot, "$"+f.env)
		}
	}
	if len(signadot) > 0 && !a.warnedSignadot && a.Stderr != nil {
		a.warnedSignadot = true
		fmt.Fprintf(a.Stderr, "warning: using %s (Signadot's variables) because %s and %s are unset; set those instead\n",
			strings.Join(signadot, " and "), EnvOrg, EnvAPIKey)
	}
	if c.APIURL == "" {
		c.APIURL, src.APIURL = DefaultAPIURL, "default"
	}
	return c, src, path, nil
}

// previewBase is the base URL of the preview path form.
func (c Config) previewBase() string {
	if c.PreviewURL != "" {
		return c.PreviewURL
	}
	return c.APIURL
}
