#!/usr/bin/env python3
"""Quickstart: fork hotrod's route service in a sandbox, wait until it is ready,
send a request carrying the sandbox's routing key, print the answer, delete the
sandbox.

Configuration (environment):

  SANDBOXMESH_API_URL     control plane base URL, e.g. http://localhost:8080 (required)
  SANDBOXMESH_API_KEY     API key (required)
  SANDBOXMESH_ORG         org (default: default)
  SANDBOXMESH_CLUSTER     registered cluster the sandbox runs in (default: local)
  SANDBOXMESH_TARGET_URL  URL to call with the header "baggage: sm-routing-key=<key>", e.g.
                          http://<frontend service>:8080/dispatch?customer=392 (from where the cluster's
                          Services are reachable). When unset, the sandbox's endpoint "frontend" is
                          called at its url as the API returns it (endpoints[].url: the control plane's
                          preview proxy, which adds the routing key) with the API key
  SANDBOXMESH_TARGET_PATH path appended to the preview URL (default: /dispatch?customer=392)
  SANDBOXMESH_SANDBOX     sandbox name (default: py-quickstart-<random>)
  SANDBOXMESH_IMAGE       image of the fork (default: sandboxmesh.dev/hotrod:v2)
  SANDBOXMESH_WAIT_TIMEOUT seconds to wait for ready (default: 300)
  SANDBOXMESH_ROUTE_TIMEOUT seconds to retry the request until the answer shows the routing key
                          (default: 30; routes can lag readiness by a moment)

The answer comes from the fork when it carries the sandbox's routing key (hotrod's
forks report it as sandboxRoutingKey). The answer's body goes to stdout;
progress goes to stderr. Exit status 0 on success, 1 on any failure (the
sandbox is deleted in both cases).

Run from the repository root: PYTHONPATH=sdk/python python3 sdk/python/examples/quickstart.py
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from typing import Dict

# Runs from a checkout without installing the SDK.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sandboxmesh_sdk import (  # noqa: E402
    ApiClient,
    ApiException,
    ApiTimeoutError,
    Configuration,
    NotFoundException,
    RouteGroupSpecEndpoint,
    Sandbox,
    SandboxCustomizations,
    SandboxDefaultRouteGroup,
    SandboxesApi,
    SandboxEnvVar,
    SandboxFork,
    SandboxForkOf,
    SandboxImage,
    SandboxSpec,
    SandboxTTL,
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def call(url: str, headers: Dict[str, str]) -> str:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"GET {url}: {e.code}: {e.read().decode('utf-8', 'replace')[:500]}") from None


def call_until_routed(url: str, headers: Dict[str, str], key: str, timeout: float) -> str:
    """call_until_routed sends the request until its answer carries the routing key (or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            body = call(url, headers)
            if key and key in body:
                return body
            why = "the answer does not carry the sandbox's routing key (served by the baseline?)"
        except (RuntimeError, OSError) as e:
            body, why = "", str(e)
        if time.monotonic() >= deadline:
            if body:
                print(body, flush=True)
            raise RuntimeError(f"after {timeout:g}s: {why}")
        time.sleep(0.5)


def main() -> int:
    api_url = os.environ.get("SANDBOXMESH_API_URL")
    api_key = os.environ.get("SANDBOXMESH_API_KEY")
    if not api_url or not api_key:
        log("set SANDBOXMESH_API_URL and SANDBOXMESH_API_KEY")
        return 2
    org = os.environ.get("SANDBOXMESH_ORG") or "default"
    cluster = os.environ.get("SANDBOXMESH_CLUSTER") or "local"
    name = os.environ.get("SANDBOXMESH_SANDBOX") or "py-quickstart-" + secrets.token_hex(3)
    image = os.environ.get("SANDBOXMESH_IMAGE") or "sandboxmesh.dev/hotrod:v2"
    timeout = float(os.environ.get("SANDBOXMESH_WAIT_TIMEOUT") or 300)

    configuration = Configuration(host=api_url)
    configuration.api_key["sandboxmesh-api-key"] = api_key
    sandboxes = SandboxesApi(ApiClient(configuration))

    # The route service of hotrod, forked with another image and one env var.
    route_fork = SandboxFork(
        fork_of=SandboxForkOf(kind="Deployment", namespace="hotrod", name="route"),
        customizations=SandboxCustomizations(
            images=[SandboxImage(image=image)],
            env=[SandboxEnvVar(name="VERSION", value="python-sdk")],
        ),
    )
    request = Sandbox(
        spec=SandboxSpec(
            cluster=cluster,
            description="created by the SandboxMesh Python SDK quickstart",
            labels={"created-by": "python-quickstart"},
            ttl=SandboxTTL(duration="1h"),
            forks=[route_fork],
            default_route_group=SandboxDefaultRouteGroup(
                endpoints=[RouteGroupSpecEndpoint(name="frontend", target="http://frontend.hotrod.svc:8080")]
            ),
        )
    )

    sandbox = sandboxes.apply_sandbox(org, name, request)
    log(f"sandbox {name} applied; routing key {sandbox.routing_key}")
    try:
        last = [""]

        def progress(sb: Sandbox) -> None:
            st = sb.status
            msg = "ready" if st and st.ready else f"{st.reason if st else ''}: {st.message if st else ''}"
            if msg != last[0]:
                log(f"sandbox {name}: {msg}")
                last[0] = msg

        sandbox = sandboxes.wait_until_ready(org, name, timeout, interval=1.0, progress=progress)
        key = sandbox.routing_key or ""
        target = os.environ.get("SANDBOXMESH_TARGET_URL")
        if target:
            url, headers = target, {"baggage": f"sm-routing-key={key}"}
        else:
            path = os.environ.get("SANDBOXMESH_TARGET_PATH") or "/dispatch?customer=392"
            eps = [e.url for e in (sandbox.endpoints or []) if e.name == "frontend" and e.url]
            if not eps:
                raise RuntimeError(f"sandbox {name} has no URL for endpoint frontend")
            url = eps[0].rstrip("/") + path
            headers = {"sandboxmesh-api-key": api_key}
        log(f"GET {url} with baggage: sm-routing-key={key}")
        route_timeout = float(os.environ.get("SANDBOXMESH_ROUTE_TIMEOUT") or 30)
        print(call_until_routed(url, headers, key, route_timeout), flush=True)
        return 0
    finally:
        try:
            sandboxes.delete_sandbox(org, name)
            log(f"sandbox {name} deleted")
        except NotFoundException:
            pass


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ApiTimeoutError as e:
        log(f"quickstart: {e}")
        sys.exit(1)
    except ApiException as e:
        log(f"quickstart: {e}")
        for f in e.fields:
            log(f"  {f.path}: {f.message}")
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - an example reports any failure in one line
        log(f"quickstart: {e}")
        sys.exit(1)
