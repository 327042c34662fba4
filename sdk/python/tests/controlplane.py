"""A real SandboxMesh control plane for the tests: the binary of cmd/controlplane
on SQLite in a temporary folder, on a free loopback port, with a bootstrap
admin key given through SANDBOXMESH_BOOTSTRAP_KEY.

The binary is $SANDBOXMESH_CONTROLPLANE_BIN (hack/python-test.sh builds it),
else it is built here with `go build` from the repository root.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_built: Optional[str] = None


def controlplane_binary() -> str:
    """controlplane_binary returns the control plane binary, building it once per test run."""
    global _built
    b = os.environ.get("SANDBOXMESH_CONTROLPLANE_BIN")
    if b:
        return b
    if _built:
        return _built
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("neither SANDBOXMESH_CONTROLPLANE_BIN nor go is available to get the control plane binary")
    out = os.path.join(tempfile.mkdtemp(prefix="sm-py-bin-"), "controlplane")
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    subprocess.run([go, "build", "-o", out, "./cmd/controlplane"], cwd=REPO_ROOT, env=env, check=True, timeout=900)
    _built = out
    return out


class ControlPlane:
    """ControlPlane runs one control plane process; stop() ends it and removes its data."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sm-py-cp-")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = "smk_" + secrets.token_hex(24)
        self.org = "default"
        self.log_path = os.path.join(self.dir, "controlplane.log")
        env = dict(os.environ)
        env.update(
            {
                "SANDBOXMESH_BOOTSTRAP_KEY": self.admin_key,
                "SANDBOXMESH_BOOTSTRAP_ORG": self.org,
                "SANDBOXMESH_LOG_FORMAT": "text",
                "SANDBOXMESH_LOG_LEVEL": "warn",
            }
        )
        for k in ("SANDBOXMESH_DATABASE_URL", "SANDBOXMESH_LISTEN", "SANDBOXMESH_PREVIEW_URL", "SANDBOXMESH_ADVERTISE_URL"):
            env.pop(k, None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            # --preview-url /preview: endpoints[].url is the path form on this address, as the Helm chart serves it.
            [controlplane_binary(), "--listen", f"127.0.0.1:{self.port}", "--data-dir", os.path.join(self.dir, "data"), "--metrics-listen", "none", "--preview-url", "/preview"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_healthy(30.0)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"control plane exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"control plane not healthy after {timeout}s ({last}):\n{self.log()}")

    def log(self) -> str:
        """log returns the control plane's output so far."""
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-8000:]

    def stop(self) -> None:
        """stop ends the process (SIGTERM, then SIGKILL after 10 s) and removes its folder."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- the agent's side of the protocol, to make sandboxes ready without a cluster ----

    def raw(self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None) -> Any:
        """raw sends one request with the admin key unless headers say otherwise; returns (status, JSON)."""
        h = {"sandboxmesh-api-key": self.admin_key, "Content-Type": "application/json"}
        h.update(headers or {})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={k: v for k, v in h.items() if v})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def report_status(self, token: str, items: List[Dict[str, Any]]) -> Any:
        """report_status posts an agent status report with a cluster token, as the agent does."""
        st, ans = self.raw("POST", "/api/v2/agent/status", {"items": items}, {"sandboxmesh-api-key": "", "sandboxmesh-cluster-token": token})
        if st != 200:
            raise RuntimeError(f"agent status report: {st} {ans}")
        return ans
