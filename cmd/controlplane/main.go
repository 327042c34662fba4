// Command controlplane runs the SandboxMesh control plane: the /api/v2 REST API,
// the agent endpoints and the preview proxy. With no configuration it stores its
// state in SQLite under ./sandboxmesh-data, creates the org "default" and prints
// a bootstrap admin API key once (or uses SANDBOXMESH_BOOTSTRAP_KEY).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs/artifacts"
	"github.com/sandboxmesh/sandboxmesh/controlplane/portal"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/internal/telemetry"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run parses flags (defaults from SANDBOXMESH_* variables) and serves until a signal.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", env("SANDBOXMESH_LISTEN", ":8080"), "address to serve on (env SANDBOXMESH_LISTEN)")
	dataDir := fs.String("data-dir", env("SANDBOXMESH_DATA_DIR", "sandboxmesh-data"), "folder of the SQLite database (env SANDBOXMESH_DATA_DIR)")
	dbURL := fs.String("database-url", env("SANDBOXMESH_DATABASE_URL", ""), "postgres://... to use PostgreSQL instead of SQLite (env SANDBOXMESH_DATABASE_URL)")
	previewURL := fs.String("preview-url", env("SANDBOXMESH_PREVIEW_URL", ""), "base of the preview URLs answers carry: https://preview.example.com (host form), https://sm.example.com/preview or /preview (path form, on the address each client used) (env SANDBOXMESH_PREVIEW_URL; default http://preview.localhost:<port>)")
	org := fs.String("bootstrap-org", env("SANDBOXMESH_BOOTSTRAP_ORG", "default"), "org created at first start (env SANDBOXMESH_BOOTSTRAP_ORG; empty: none)")
	logFormat := fs.String("log-format", env("SANDBOXMESH_LOG_FORMAT", "json"), "json or text (env SANDBOXMESH_LOG_FORMAT)")
	logLevel := fs.String("log-level", env("SANDBOXMESH_LOG_LEVEL", "info"), "debug, info, warn or error (env SANDBOXMESH_LOG_LEVEL)")
	maxBody := fs.Int64("max-body-bytes", 1<<20, "largest accepted request body")
	advertise := fs.String("advertise-url", env("SANDBOXMESH_ADVERTISE_URL", ""), "how the other replicas reach this one, e.g. http://10.0.3.7:8080, so preview requests reach agent tunnels held by another replica (env SANDBOXMESH_ADVERTISE_URL; default with PostgreSQL: http://<first non-loopback address of this host>:<listen port>; with SQLite: none, a single replica; \"none\": never)")
	readTimeout := fs.Duration("read-timeout", 60*time.Second, "longest time to read a whole request, body included (a slow body is cut off); long polls, agent tunnels and preview responses are not bound by it")
	idleTimeout := fs.Duration("idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	writeTimeout := fs.Duration("write-timeout", 60*time.Second, "longest time to write an API answer (long polls, tunnels and preview responses set their own)")
	trusted := fs.String("trusted-proxies", env("SANDBOXMESH_TRUSTED_PROXIES", ""), "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client (env SANDBOXMESH_TRUSTED_PROXIES; default: none, the client is the connection's peer)")
	metricsListen := fs.String("metrics-listen", env("SANDBOXMESH_METRICS_LISTEN", ":9090"), "address serving /metrics, apart from the API (env SANDBOXMESH_METRICS_LISTEN; \"none\": no metrics)")
	artifactsAt := fs.String("artifacts", env("SANDBOXMESH_ARTIFACTS", ""), "where job artifacts (uploaded files, stdout and stderr) are kept: a folder, file:///path or s3://bucket/prefix?endpoint=host:port (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); replicas must share it (env SANDBOXMESH_ARTIFACTS; default <data-dir>/artifacts; \"none\": no artifacts)")
	maxArtifact := fs.Int64("max-artifact-bytes", jobs.DefaultMaxArtifactBytes, "largest accepted job artifact")
	allowSignup := fs.String("allow-signup", env("SANDBOXMESH_ALLOW_SIGNUP", "false"), "let anyone sign up (POST /api/v2/auth/signup), creating a user and an org they own (env SANDBOXMESH_ALLOW_SIGNUP; default false: users join by invitation)")
	oidcIssuer := fs.String("oidc-issuer", env("SANDBOXMESH_OIDC_ISSUER", ""), "single sign-on: the OpenID Connect provider's issuer URL (env SANDBOXMESH_OIDC_ISSUER; empty: off)")
	oidcClientID := fs.String("oidc-client-id", env("SANDBOXMESH_OIDC_CLIENT_ID", ""), "single sign-on: the control plane's client id at the provider (env SANDBOXMESH_OIDC_CLIENT_ID)")
	oidcSecretFile := fs.String("oidc-client-secret-file", env("SANDBOXMESH_OIDC_CLIENT_SECRET_FILE", ""), "single sign-on: file holding the client secret (env SANDBOXMESH_OIDC_CLIENT_SECRET_FILE, or SANDBOXMESH_OIDC_CLIENT_SECRET)")
	oidcRedirect := fs.String("oidc-redirect-url", env("SANDBOXMESH_OIDC_REDIRECT_URL", ""), "single sign-on: <this control plane's URL>/api/v2/auth/oidc/callback as registered at the provider (env SANDBOXMESH_OIDC_REDIRECT_URL)")
	oidcDomains := fs.String("oidc-allowed-domains", env("SANDBOXMESH_OIDC_ALLOWED_DOMAINS", ""), "single sign-on: comma-separated email domains that may sign in (env SANDBOXMESH_OIDC_ALLOWED_DOMAINS; empty: any verified email)")
	oidcOrg := fs.String("oidc-org", env("SANDBOXMESH_OIDC_ORG", ""), "single sign-on: org that users signing in for the first time join (env SANDBOXMESH_OIDC_ORG; empty: none until invited)")
	oidcRole := fs.String("oidc-role", env("SANDBOXMESH_OIDC_ROLE", "viewer"), "single sign-on: their role in --oidc-org: admin, member or viewer (env SANDBOXMESH_OIDC_ROLE)")
	secureCookies := fs.String("secure-cookies", env("SANDBOXMESH_SECURE_COOKIES", "false"), "mark the session cookie Secure on plain HTTP requests too: set it behind a TLS-terminating proxy (env SANDBOXMESH_SECURE_COOKIES; requests over TLS always get Secure cookies)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	signup, err := strconv.ParseBool(*allowSignup)
	if err != nil {
		return fmt.Errorf("--allow-signup %q: want true or false", *allowSignup)
	}
	secure, err := strconv.ParseBool(*secureCookies)
	if err != nil {
		return fmt.Errorf("--secure-cookies %q: want true or false", *secureCookies)
	}
	var oidcCfg identity.OIDCConfig
	if *oidcIssuer != "" {
		secret := os.Getenv("SANDBOXMESH_OIDC_CLIENT_SECRET")
		if *oidcSecretFile != "" {
			b, err := os.ReadFile(*oidcSecretFile)
			if err != nil {
				return fmt.Errorf("--oidc-client-secret-file: %w", err)
			}
			secret = strings.TrimSpace(string(b))
		}
		var domains []string
		for _, d := range strings.Split(*oidcDomains, ",") {
			if d = strings.TrimSpace(d); d != "" {
				domains = append(domains, d)
			}
		}
		oidcCfg = identity.OIDCConfig{Issuer: *oidcIssuer, ClientID: *oidcClientID, ClientSecret: secret, RedirectURL: *oidcRedirect,
			AllowedDomains: domains, Org: *oidcOrg, Role: identity.Role(*oidcRole)}
	}
	if *maxArtifact <= 0 {
		return fmt.Errorf("--max-artifact-bytes %d: want a positive size", *maxArtifact)
	}
	for name, d := range map[string]time.Duration{"--read-timeout": *readTimeout, "--idle-timeout": *idleTimeout, "--write-timeout": *writeTimeout} {
		if d <= 0 {
			return fmt.Errorf("%s %v: want a positive duration, e.g. 60s", name, d)
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	var h slog.Handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl})
	if *logFormat == "text" {
		h = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})
	}
	log := slog.New(h)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	driver, dsn := store.DriverSQLite, ""
	switch {
	case strings.HasPrefix(*dbURL, "postgres://"), strings.HasPrefix(*dbURL, "postgresql://"):
		driver, dsn = store.DriverPostgres, *dbURL
	case strings.HasPrefix(*dbURL, "sqlite:"):
		dsn = strings.TrimPrefix(*dbURL, "sqlite:")
	case *dbURL != "":
		return fmt.Errorf("--database-url %q: want postgres://... or sqlite:<path>", *dbURL)
	default:
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		dsn = filepath.Join(*dataDir, "controlplane.db")
	}
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		return err
	}
	defer st.Close()

	key, created, err := api.Bootstrap(ctx, st, *org, os.Getenv("SANDBOXMESH_BOOTSTRAP_KEY"))
	switch {
	case errors.Is(err, api.ErrBootstrapIgnored):
		log.Warn("SANDBOXMESH_BOOTSTRAP_KEY is not applied: it takes effect at the first start only; manage admin keys with `sandboxmesh admin apikey` (/api/v2/admin/apikeys) and unset the variable", "err", err)
	case err != nil:
		return err
	case created && os.Getenv("SANDBOXMESH_BOOTSTRAP_KEY") != "":
		log.Info("SANDBOXMESH_BOOTSTRAP_KEY applied as the first admin key; later changes of the variable are ignored")
	}
	if created && os.Getenv("SANDBOXMESH_BOOTSTRAP_KEY") == "" {
		fmt.Fprintf(stdout, "Bootstrap admin API key (shown once, store it now):\n\n  %s\n\nUse it in the sandboxmesh-api-key header, e.g.\n  curl -H 'sandboxmesh-api-key: %s' http://localhost%s/api/v2/orgs/%s/sandboxes\n\n", key, key, portOf(*listen), *org)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	pu := *previewURL
	if pu == "" {
		pu = "http://preview.localhost" + portOf(ln.Addr().String())
	}
	tp, shutdownTracing, err := telemetry.Setup(ctx, telemetry.Options{Service: "sandboxmesh-controlplane"})
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())
	replicaURL := *advertise
	switch {
	case replicaURL == "none":
		replicaURL = ""
	case replicaURL == "" && driver == store.DriverPostgres:
		// Several replicas usually share a PostgreSQL database; in a pod the
		// first non-loopback address is the pod IP.
		replicaURL = defaultAdvertiseURL(ln.Addr(), net.InterfaceAddrs)
		if replicaURL == "" {
			log.Warn("no address to advertise to other replicas found; set --advertise-url, else previews via other replicas cannot reach agent tunnels held here")
		}
	}
	if replicaURL != "" {
		log.Info("replica forwarding on: other replicas reach this one's agent tunnels here", "advertiseURL", replicaURL)
	}
	arts, err := openArtifactStore(*artifactsAt, *dataDir, *maxArtifact)
	if err != nil {
		return fmt.Errorf("--artifacts: %w", err)
	}
	if arts == nil {
		log.Warn("no artifact store: job artifact uploads are refused (503); job logs are kept in the database")
	}
	srv, err := api.New(ctx, api.Config{Store: st, Logger: log, TracerProvider: tp, PreviewURL: pu, MaxBodyBytes: *maxBody, ReplicaURL: replicaURL, WriteTimeout: *writeTimeout,
		TrustedProxies: splitList(*trusted), Jobs: jobs.Config{Artifacts: arts, MaxArtifactBytes: *maxArtifact},
		Identity: identity.Config{AllowSignup: signup}, SecureCookies: secure, OIDC: oidcCfg})
	if err != nil {
		return err
	}
	ui, err := portal.New(ctx, portal.Config{API: srv.Handler(), Identity: srv.Identity(), Store: st, Logger: log, SSO: oidcCfg.Issuer != ""})
	if err != nil {
		return err
	}
	srv.SetUI(ui) // the web pages at /, next to the API
	if *metricsListen != "none" && *metricsListen != "" {
		mln, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: *idleTimeout}
		go func() { _ = ms.Serve(mln) }()
		defer ms.Close()
		log.Info("metrics listening", "address", mln.Addr().String())
	}
	go purge(ctx, st, log)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: min(10*time.Second, *readTimeout), ReadTimeout: *readTimeout, IdleTimeout: *idleTimeout}
	log.Info("control plane listening", "address", ln.Addr().String(), "driver", driver, "previewURL", pu)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}
	return nil
}

// defaultAdvertiseURL is http://<host>:<port> of the listener: its own IP
// when it listens on a specific one, else the first global unicast address of
// this host (IPv4 preferred), or "" when there is none.
func defaultAdvertiseURL(addr net.Addr, interfaceAddrs func() ([]net.Addr, error)) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return ""
	}
	port := strconv.Itoa(tcp.Port)
	if !tcp.IP.IsUnspecified() {
		return "http://" + net.JoinHostPort(tcp.IP.String(), port)
	}
	addrs, err := interfaceAddrs()
	if err != nil {
		return ""
	}
	var v6 net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return "http://" + net.JoinHostPort(n.IP.String(), port)
		}
		if v6 == nil {
			v6 = n.IP
		}
	}
	if v6 != nil {
		return "http://" + net.JoinHostPort(v6.String(), port)
	}
	return ""
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func portOf(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil && p != "" && p != "80" {
		return ":" + p
	}
	return ""
}

// purge removes week-old tombstones and expired preview links and sessions every hour.
func purge(ctx context.Context, st *store.Store, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := st.PurgeTombstones(ctx, time.Now().Add(-7*24*time.Hour)); err != nil {
				log.Warn("purging tombstones", "err", err)
			} else if n > 0 {
				log.Info("purged tombstones", "count", n)
			}
			if n, err := st.PurgePreviewSessions(ctx, time.Now()); err != nil {
				log.Warn("purging expired preview links and sessions", "err", err)
			} else if n > 0 {
				log.Info("purged expired preview links and sessions", "count", n)
			}
		}
	}
}

// openArtifactStore opens the job artifact store at: a folder, a file:// or
// s3:// URL (artifacts.Open), "" for <dataDir>/artifacts, or "none" (nil:
// uploads are refused with 503).
func openArtifactStore(at, dataDir string, maxBytes int64) (artifacts.Store, error) {
	switch {
	case at == "none":
		return nil, nil
	case at == "":
		at = filepath.Join(dataDir, "artifacts")
	}
	if !strings.Contains(at, "://") {
		return artifacts.NewFS(at, artifacts.MaxBytes(maxBytes))
	}
	return artifacts.Open(at, artifacts.MaxBytes(maxBytes))
}
