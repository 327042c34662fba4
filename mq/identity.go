package mq

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/crds/podenv"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Environment variables the operator sets on forks and the injection webhook sets on baseline pods. They are
// part of the cross-language contract (docs/message-queues.md), declared once in crds/podenv.
const (
	// EnvBaselineKind is the kind of the baseline workload (Deployment or Rollout).
	EnvBaselineKind = podenv.BaselineKind
	// EnvBaselineNamespace is the namespace of the baseline workload.
	EnvBaselineNamespace = podenv.BaselineNamespace
	// EnvBaselineName is the name of the baseline workload.
	EnvBaselineName = podenv.BaselineName
	// EnvSandboxName is the sandbox a fork belongs to (unset on baseline pods).
	EnvSandboxName = podenv.SandboxName
	// EnvRoutingKey is the routing key of the sandbox a fork belongs to (unset on baseline pods).
	EnvRoutingKey = podenv.RoutingKey
	// EnvRoutesURL is the base URL of the operator's route lookup API (docs/routes-api.md).
	EnvRoutesURL = podenv.RoutesURL
)

// ErrNoIdentity is returned (wrapped) by IdentityFromEnv when the baseline workload is not in the environment.
var ErrNoIdentity = errors.New("no consumer identity in the environment")

// Identity says who a consumer is: the baseline workload it belongs to, and for a fork the sandbox and its
// routing key.
type Identity struct {
	// Baseline is the baseline workload (for a fork: the one it replaces in its sandbox).
	Baseline routeapi.WorkloadRef
	// Sandbox is the sandbox of a fork; empty for the baseline.
	Sandbox string
	// RoutingKey is the sandbox's routing key; empty for the baseline.
	RoutingKey string
}

// IsSandbox reports whether the consumer belongs to a sandbox rather than the baseline.
func (id Identity) IsSandbox() bool { return id.Sandbox != "" }

// String renders the identity for logs: the baseline workload, and the sandbox when there is one.
func (id Identity) String() string {
	if id.IsSandbox() {
		return id.Baseline.String() + " (sandbox " + id.Sandbox + ")"
	}
	return id.Baseline.String()
}

// Validate checks the identity and names the first bad field.
func (id Identity) Validate() error {
	switch {
	case id.Baseline.Namespace == "":
		return fmt.Errorf("identity: baseline.namespace: required")
	case id.Baseline.Name == "":
		return fmt.Errorf("identity: baseline.name: required")
	case id.Baseline.Kind != "" && id.Baseline.Kind != routeapi.KindDeployment && id.Baseline.Kind != routeapi.KindRollout:
		return fmt.Errorf("identity: baseline.kind: %q is not Deployment or Rollout", id.Baseline.Kind)
	case id.Sandbox != "" && !validName(id.Sandbox):
		return fmt.Errorf("identity: sandbox: %q is not a Kubernetes object name (DNS subdomain)", id.Sandbox)
	case id.Sandbox != "" && id.RoutingKey == "":
		return fmt.Errorf("identity: routingKey: required for sandbox %q", id.Sandbox)
	case id.Sandbox == "" && id.RoutingKey != "":
		return fmt.Errorf("identity: sandbox: required with routingKey %q", id.RoutingKey)
	}
	if id.RoutingKey != "" {
		if err := routingkey.Validate(id.RoutingKey); err != nil {
			return fmt.Errorf("identity: routingKey: %w", err)
		}
	}
	return nil
}

// ScopedName names a broker object (Kafka consumer group, RabbitMQ queue, NATS durable consumer) for this
// consumer: base itself for the baseline, base + "-sandbox-" + sandbox for a sandbox, dots of the sandbox
// name turned into dashes. The result only adds lower-case letters, digits and dashes to base, so it is
// valid wherever base is (NATS consumer names refuse dots).
func (id Identity) ScopedName(base string) string {
	if !id.IsSandbox() {
		return base
	}
	return base + "-sandbox-" + strings.ReplaceAll(id.Sandbox, ".", "-")
}

// IdentityFromEnv reads the identity from the environment variables the operator and the injection webhook
// set (EnvBaseline*, EnvSandboxName, EnvRoutingKey). It returns an error wrapping ErrNoIdentity when the
// baseline workload is not set, and a validation error for values that do not fit.
func IdentityFromEnv() (Identity, error) { return identityFrom(os.Getenv) }

func identityFrom(getenv func(string) string) (Identity, error) {
	id := Identity{
		Baseline: routeapi.WorkloadRef{
			Kind:      strings.TrimSpace(getenv(EnvBaselineKind)),
			Namespace: strings.TrimSpace(getenv(EnvBaselineNamespace)),
			Name:      strings.TrimSpace(getenv(EnvBaselineName)),
		},
		Sandbox:    strings.TrimSpace(getenv(EnvSandboxName)),
		RoutingKey: strings.TrimSpace(getenv(EnvRoutingKey)),
	}
	if id.Baseline.Namespace == "" || id.Baseline.Name == "" {
		return Identity{}, fmt.Errorf("%s and %s must be set: %w", EnvBaselineNamespace, EnvBaselineName, ErrNoIdentity)
	}
	if id.Baseline.Kind == "" {
		id.Baseline.Kind = routeapi.KindDeployment
	}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 253 || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
