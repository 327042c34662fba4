// Command agent runs in a cluster: it connects out to the SandboxMesh control
// plane with a cluster token, applies the desired Sandbox and RouteGroup CRs of
// its cluster, reports their status and holds the preview tunnel.
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
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sandboxmesh/sandboxmesh/controlplane/agent"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/telemetry"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cpURL := fs.String("control-plane-url", env("SANDBOXMESH_CONTROL_PLANE_URL", ""), "control plane base URL (env SANDBOXMESH_CONTROL_PLANE_URL)")
	tokenFile := fs.String("token-file", env("SANDBOXMESH_CLUSTER_TOKEN_FILE", ""), "file holding the cluster token (env SANDBOXMESH_CLUSTER_TOKEN_FILE; or set SANDBOXMESH_CLUSTER_TOKEN)")
	namespace := fs.String("namespace", env("SANDBOXMESH_NAMESPACE", "sandboxmesh-system"), "namespace of the CRs (env SANDBOXMESH_NAMESPACE)")
	noTunnel := fs.Bool("disable-tunnel", false, "do not hold the preview tunnel")
	version := fs.String("operator-version", env("SANDBOXMESH_OPERATOR_VERSION", ""), "version reported for the cluster")
	logLevel := fs.String("log-level", env("SANDBOXMESH_LOG_LEVEL", "info"), "debug, info, warn or error")
	cidrs := fs.String("allowed-cidrs", env("SANDBOXMESH_ALLOWED_CIDRS", ""), "comma-separated CIDRs (the cluster's pod and Service CIDRs) preview targets must resolve to (env SANDBOXMESH_ALLOWED_CIDRS; default: any address but loopback, link-local, unspecified and metadata ones)")
	captureAddr := fs.String("capture-address", env("SANDBOXMESH_CAPTURE_ADDRESS", ""), "address of the capture relay the cluster's devmesh sidecars post smart-test captures to, e.g. :15012 (env SANDBOXMESH_CAPTURE_ADDRESS; empty: off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	allowed, err := parseCIDRs(*cidrs)
	if err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	// controller-runtime's client logs through its own global logger; without
	// this it prints a "log.SetLogger(...) was never called" stack trace.
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	token := os.Getenv("SANDBOXMESH_CLUSTER_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		token = string(trimSpace(b))
	}
	if token == "" {
		return errors.New("no cluster token: set SANDBOXMESH_CLUSTER_TOKEN or --token-file")
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	kc, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tp, shutdownTracing, err := telemetry.Setup(ctx, telemetry.Options{Service: "sandboxmesh-agent", Version: *version})
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())
	// Each call to the control plane is a client span whose traceparent the
	// control plane continues (no-op unless an exporter is configured).
	hc := &http.Client{Transport: telemetry.Transport(nil, tp)}
	var captureLn net.Listener
	if *captureAddr != "" {
		if captureLn, err = net.Listen("tcp", *captureAddr); err != nil {
			return fmt.Errorf("--capture-address: %w", err)
		}
		defer captureLn.Close()
	}
	a, err := agent.New(agent.Config{ControlPlaneURL: *cpURL, Token: token, Namespace: *namespace, Client: kc, Logger: log,
		DisableTunnel: *noTunnel, OperatorVersion: *version, HTTPClient: hc, AllowedCIDRs: allowed, CaptureListener: captureLn})
	if err != nil {
		return err
	}
	log.Info("agent starting", "controlPlane", *cpURL, "namespace", *namespace)
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// parseCIDRs parses the --allowed-cidrs list.
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("--allowed-cidrs[%d] %q: want a CIDR such as 10.96.0.0/12: %w", i, part, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
