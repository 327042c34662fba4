package testenv

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// StartWithWebhooks is Start with admission webhooks installed. envtest generates a CA and a serving
// certificate, picks a local host and port and rewrites every webhook's clientConfig to reach it
// (a Service reference becomes https://host:port/<service path>). The test serves the webhooks there,
// e.g. with controller-runtime's webhook.NewServer(webhook.Options{Host, Port, CertDir}) using
// (*Env).WebhookServing. Start's behaviour is unchanged.
func StartWithWebhooks(opts Options, hooks envtest.WebhookInstallOptions) (*Env, error) {
	opts.Webhooks = &hooks
	return Start(opts)
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
	opts.Webhooks = &hooks
	Main(m, opts, run)
}
