package testenv

import (
	"fmt"
	"os"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// StartWithWebhooks is Start with admission webhooks installed. envtest generates a CA and a serving
// certificate, picks a local host and port and rewrites every webhook's clientConfig to reach it
// (a Service reference becomes https://host:port/<service path>). The test serves the webhooks there,
// e.g. with controller-runtime's webhook.NewServer(webhook.Options{Host, Port, CertDir}) using
// (*Env).WebhookServing. Start's behaviour is unchanged.
func StartWithWebhooks(opts Options, hooks envtest.WebhookInstallOptions) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	crds, err := CRDs(opts)
	if err != nil {
		return nil, err
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDs:                     crds,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
		Scheme:                   scheme,
		WebhookInstallOptions:    hooks,
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest with webhooks, assets in %s: %w", assets, err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("client for envtest: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: te}, nil
}

// WebhookServing returns where the API server expects the webhooks: LocalServingHost,
// LocalServingPort and LocalServingCertDir (tls.crt, tls.key) are filled in by StartWithWebhooks.
// It is nil for an Env from Start.
func (e *Env) WebhookServing() *envtest.WebhookInstallOptions {
	if e == nil || e.env == nil {
		return nil
	}
	return &e.env.WebhookInstallOptions
}

// MainWithWebhooks is Main for StartWithWebhooks: a start failure fails the whole package with the
// reason (never a skip).
func MainWithWebhooks(m *testing.M, opts Options, hooks envtest.WebhookInstallOptions, run func(*Env) int) {
	env, err := StartWithWebhooks(opts, hooks)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		os.Exit(1)
	}
	code := run(env)
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stop: %v\n", err)
	}
	os.Exit(code)
}
