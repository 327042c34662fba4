//go:build tools

// Package tools pins the modules the project builds tools from or will import
// soon, so that `go mod tidy` keeps them in go.mod.
package tools

import (
	_ "github.com/coder/websocket"
	_ "github.com/gin-gonic/gin"
	_ "github.com/google/go-containerregistry/pkg/v1"
	_ "github.com/hashicorp/yamux"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "go.opentelemetry.io/otel/sdk/trace"
	_ "google.golang.org/grpc"
	_ "istio.io/client-go/pkg/apis/networking/v1"
	_ "modernc.org/sqlite"
	_ "sigs.k8s.io/controller-runtime/pkg/envtest"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
