//go:build tools

// Package tools pins the command-line tools the project builds with the Go
// toolchain in their own module, so that their dependencies never touch the
// main module's go.mod: helm (hack/helm.sh).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
