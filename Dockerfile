# syntax=docker/dockerfile:1
# Dockerfile for users with Docker: builds the same images as `make images`
# (internal/devenv/images, no Docker needed), one binary per image.
#
#   docker build --build-arg BIN=operator -t sandboxmesh.dev/operator:dev .
#   docker build --build-arg BIN=controlplane -t sandboxmesh.dev/controlplane:dev .
#   docker build --build-arg BIN=hotrod -t sandboxmesh.dev/hotrod:dev .      # the example app
#   docker build --target devmesh-init -t sandboxmesh.dev/devmesh-init:dev .  # iptables init container
#
# BIN is a folder of cmd/ (operator, agent, controlplane, devmesh, sandboxmesh, sm-echo) or hotrod.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG BIN=operator
ARG BUILD=dev
# The binary lands at /usr/local/bin/<BIN> as in `make images`; /usr/local/bin/app links to it so that
# the final stage's ENTRYPOINT (which cannot expand build arguments) is the same for every BIN.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    pkg=./cmd/${BIN}; if [ "${BIN}" = hotrod ]; then pkg=./examples/hotrod; fi; \
    mkdir -p /out/usr/local/bin && \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/sandboxmesh/sandboxmesh/examples/hotrod/app.Build=${BUILD}" \
      -o "/out/usr/local/bin/${BIN}" "$pkg" && \
    ln -s "${BIN}" /out/usr/local/bin/app

FROM golang:${GO_VERSION}-bookworm AS build-init
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/devmesh-init ./cmd/devmesh-init

# devmesh-init programs the pod's iptables: it needs iptables-save/iptables-restore.
FROM debian:bookworm-slim AS devmesh-init
RUN apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*
COPY --from=build-init /out/devmesh-init /usr/local/bin/devmesh-init
ENTRYPOINT ["/usr/local/bin/devmesh-init"]

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/app"]
