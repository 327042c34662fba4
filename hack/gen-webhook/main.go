// Command gen-webhook writes the devmesh injector's MutatingWebhookConfiguration
// (built by devmesh/inject, the one definition) for `make manifests`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sandboxmesh/sandboxmesh/devmesh/inject"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen-webhook <output.yaml>")
		os.Exit(2)
	}
	b, err := inject.MutatingWebhookConfigurationYAML(inject.WebhookOptions{ServiceNamespace: "sandboxmesh-system", ServiceName: "sandboxmesh-operator-webhook"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-webhook:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(filepath.Dir(os.Args[1]), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "gen-webhook:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen-webhook:", err)
		os.Exit(1)
	}
}
