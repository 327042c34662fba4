# SandboxMesh — `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
CONTROLLER_GEN := $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen
FUZZTIME ?= 10s
export GOFLAGS ?= -mod=mod

##@ General
.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Code generation
.PHONY: generate
generate: ## Generate deepcopy code for the API types (controller-gen).
	$(CONTROLLER_GEN) object paths=./crds/...

.PHONY: manifests
manifests: ## Generate CRD, RBAC (controller-gen) and devmesh webhook manifests; copy CRDs and RBAC into the Helm chart.
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./crds/... output:crd:dir=./crds/manifests
	$(CONTROLLER_GEN) rbac:roleName=sandboxmesh-operator paths=./operator/... output:rbac:dir=./deploy/manifests/rbac
	$(GO) run ./hack/gen-webhook deploy/manifests/webhook/devmesh-injector.yaml
	cp crds/manifests/*.yaml deploy/helm/sandboxmesh/crds/
	cp deploy/manifests/rbac/role.yaml deploy/helm/sandboxmesh/files/operator-role.yaml

.PHONY: verify
verify: ## Fail when generated files are stale or code is not gofmt'ed.
	hack/verify.sh

##@ Test
.PHONY: testbed
testbed: ## Install etcd and build kube-apiserver for envtest (cached); prints KUBEBUILDER_ASSETS.
	hack/testbed.sh

.PHONY: helm-lint
helm-lint: ## helm lint and template the chart (deploy/helm/sandboxmesh) with the real helm (hack/helm.sh).
	hack/helm.sh lint deploy/helm/sandboxmesh --set agent.token=x --set agent.controlPlaneURL=http://cp
	hack/helm.sh template sandboxmesh deploy/helm/sandboxmesh --namespace sandboxmesh-system --set agent.enabled=false >/dev/null

.PHONY: lint
lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt'ed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: test
test: ## Run every test: test bed, vet, generated-files check, go test -race (with fuzz seed corpora), the Python SDK tests (test-python), a 2 s fuzz pass of the light parsers.
	hack/test.sh

.PHONY: test-python
test-python: ## Python SDK tests (sdk/python, python3 -m unittest) against a real control plane on SQLite; part of make test.
	hack/python-test.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 10s), one instrumented binary per package.
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: bench
bench: ## Run Go micro-benchmarks (routing key, route table, store...).
	$(GO) test -run='^$$' -bench=. -benchmem ./...

.PHONY: bench-devmesh
bench-devmesh: ## devmesh vs nginx vs HAProxy on loopback with wrk (installs them from Debian).
	bench/devmesh/run.sh

.PHONY: bench-mq
bench-mq: ## Selective message-queue consumers vs the plain clients (NATS, kfake, RabbitMQ), interleaved; per-pair ratios.
	bench/mq/run.sh

.PHONY: bench-controlplane
bench-controlplane: ## Control plane load: PUT/GET/page of 100 in an org of 10,000 sandboxes (50 clients, then open loop at 100/s), SQLite and PostgreSQL side by side.
	bench/controlplane/run.sh

.PHONY: bench-operator
bench-operator: ## Operator scale benchmark: 1,000 sandboxes converge against a real API server.
	bench/operator/run.sh

.PHONY: test-e2e
test-e2e: ## End-to-end tests on a real local cluster: the cluster itself, then the product (root; builds Kubernetes components and images on first use).
	CGO_ENABLED=0 $(GO) test -trimpath -tags e2e -count=1 -p 1 -v -timeout 80m ./test/cluster/ ./test/e2e/

##@ Local cluster
.PHONY: cluster-up
cluster-up: ## Start a single-node Kubernetes from upstream parts with our images loaded; prints the kubeconfig path.
	hack/cluster/sm-cluster.sh up --images

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and restore the host exactly.
	hack/cluster/sm-cluster.sh down

.PHONY: images
images: ## Build our binaries as image tarballs (no Docker needed) and load them into the local cluster if it runs.
	hack/cluster/sm-cluster.sh images

##@ Run
.PHONY: run
run: ## Start the control plane alone on embedded defaults (SQLite, :8080; prints a bootstrap API key).
	hack/run.sh

.PHONY: demo
demo: ## Local cluster + SandboxMesh (Helm chart) + example app + a sandbox; prints what to try; Ctrl-C tears down (root).
	hack/cluster/sm-cluster.sh demo
