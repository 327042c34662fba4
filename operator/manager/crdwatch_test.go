package manager_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/manager"
)

// TestRestartWhenRolloutCRDAppears: an operator started on a cluster without
// Argo Rollouts ends with ErrRestartForCRDs once their CRD is installed (its
// pod then restarts and watches Rollouts), and not before.
func TestRestartWhenRolloutCRDAppears(t *testing.T) {
	e, err := testenv.Start(testenv.Options{WithoutMeshCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	o, err := manager.New(e.Config, manager.Options{Backends: []string{meshadapters.BackendDevmesh}, MetricsAddr: "0", ProbeAddr: "0",
		RunnerImage: testRunnerImage, Logger: slog.New(slog.DiscardHandler), CRDPoll: 100 * time.Millisecond, SkipControllerNameValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- o.Manager.Start(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("the operator stopped without a Rollout CRD: %v", err)
	case <-time.After(time.Second):
	}
	crd, err := testenv.RolloutCRD()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, manager.ErrRestartForCRDs) {
			t.Fatalf("Start = %v; want ErrRestartForCRDs", err)
		}
	case <-ctx.Done():
		t.Fatal("the operator did not notice the Rollout CRD")
	}
}
