"""Tests of the SDK against a real control plane (tests/controlplane.py starts it).

The test plays the cluster agent where a sandbox must become ready: it posts
status reports with a cluster token, as the agent does, over the real API.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import unittest
from typing import Any, Dict, List, Optional

from sandboxmesh_sdk import (
    ApiClient,
    ApiConnectionError,
    ApiTimeoutError,
    BadRequestException,
    ClustersApi,
    Configuration,
    ConflictException,
    NotFoundException,
    RouteGroup,
    RouteGroupMatch,
    RouteGroupMatchLabel,
    RouteGroupsApi,
    RouteGroupSpec,
    RouteGroupSpecEndpoint,
    Sandbox,
    SandboxCustomizations,
    SandboxDefaultRouteGroup,
    SandboxesApi,
    SandboxFork,
    SandboxForkOf,
    SandboxImage,
    SandboxSpec,
    UnauthorizedException,
)
from sandboxmesh_sdk.rest import ApiException

from .controlplane import ControlPlane

CP: Optional[ControlPlane] = None
CLUSTER = "local"
ORG = "default"
QUICKSTART = os.path.join(os.path.dirname(__file__), "..", "examples", "quickstart.py")


def setUpModule() -> None:
    global CP
    CP = ControlPlane()
    ClustersApi(client()).add_cluster(ORG, CLUSTER)


def tearDownModule() -> None:
    if CP is not None:
        CP.stop()


def client(key: Optional[str] = None, header: str = "sandboxmesh-api-key", host: Optional[str] = None) -> ApiClient:
    assert CP is not None
    cfg = Configuration(host=host or CP.url)
    cfg.api_key[header] = CP.admin_key if key is None else key
    cfg.timeout = 10
    return ApiClient(cfg)


def sandbox(cluster: str = CLUSTER, labels: Optional[Dict[str, str]] = None, namespace: str = "hotrod") -> Sandbox:
    return Sandbox(
        spec=SandboxSpec(
            cluster=cluster,
            description="python sdk test",
            labels=labels,
            forks=[
                SandboxFork(
                    fork_of=SandboxForkOf(kind="Deployment", namespace=namespace, name="route"),
                    customizations=SandboxCustomizations(images=[SandboxImage(image="sandboxmesh.dev/hotrod:v2")]),
                )
            ],
            default_route_group=SandboxDefaultRouteGroup(endpoints=[RouteGroupSpecEndpoint(name="frontend", target="http://frontend.hotrod.svc:8080")]),
        )
    )


class Agent:
    """Agent reports status for one cluster with a real cluster token."""

    def __init__(self) -> None:
        assert CP is not None
        self.token = ClustersApi(client()).create_cluster_token(ORG, CLUSTER).token or ""

    def sandbox_ready(self, sb: Sandbox) -> None:
        assert CP is not None
        CP.report_status(
            self.token,
            [
                {
                    "kind": "sandbox",
                    "org": ORG,
                    "name": sb.name,
                    "version": sb.version,
                    "status": {
                        "ready": True,
                        "reason": "Available",
                        "message": "every fork is available",
                        "routingKey": sb.routing_key,
                        "forks": [{"name": "route", "baseline": "Deployment/hotrod/route", "ready": True}],
                        "endpoints": [{"name": "frontend", "target": "http://frontend.hotrod.svc:8080", "host": "frontend.hotrod.svc", "port": 8080, "protocol": "http"}],
                    },
                }
            ],
        )


class SandboxesTest(unittest.TestCase):
    def setUp(self) -> None:
        self.api = SandboxesApi(client())

    def tearDown(self) -> None:
        for sb in self.api.list_sandboxes(ORG):
            self.api.delete_sandbox(ORG, sb.name or "")

    def test_apply_get_list_delete(self) -> None:
        got = self.api.apply_sandbox(ORG, "py-crud", sandbox(labels={"team": "a"}))
        self.assertEqual(got.name, "py-crud")
        self.assertTrue(got.routing_key)
        self.assertEqual(got.spec.forks[0].fork_of.name, "route")
        self.assertEqual(got.spec.forks[0].customizations.images[0].image, "sandboxmesh.dev/hotrod:v2")
        self.assertIs(got.status.ready, False)
        self.assertEqual(got.status.reason, "Pending")
        self.assertEqual(len(got.endpoints), 1)
        self.assertEqual(got.endpoints[0].name, "frontend")
        self.assertTrue(got.endpoints[0].url == CP.url + "/preview/default/py-crud/frontend", got.endpoints[0].url)
        self.assertEqual(got.version, 1)

        same = self.api.get_sandbox(ORG, "py-crud")
        self.assertEqual(same.routing_key, got.routing_key)
        self.assertEqual(same.spec, got.spec)

        # An update keeps the routing key and bumps the version.
        upd = sandbox(labels={"team": "b"})
        upd.spec.description = "updated"
        again = self.api.apply_sandbox(ORG, "py-crud", upd)
        self.assertEqual((again.routing_key, again.version, again.spec.description), (got.routing_key, 2, "updated"))

        self.api.apply_sandbox(ORG, "py-other", sandbox(labels={"team": "a"}))
        self.assertEqual(sorted(s.name for s in self.api.list_sandboxes(ORG)), ["py-crud", "py-other"])
        self.assertEqual([s.name for s in self.api.list_sandboxes(ORG, {"team": "a"})], ["py-other"])

        self.api.delete_sandbox(ORG, "py-crud")
        with self.assertRaises(NotFoundException) as cm:
            self.api.get_sandbox(ORG, "py-crud")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, 404))
        self.assertTrue(cm.exception.request_id)
        with self.assertRaises(NotFoundException):
            self.api.delete_sandbox(ORG, "py-crud")

    def test_pagination(self) -> None:
        names = [f"py-page-{i}" for i in range(5)]
        for n in names:
            self.api.apply_sandbox(ORG, n, sandbox())
        seen: List[str] = []
        tok: Optional[str] = None
        pages = 0
        while True:
            page = self.api.list_sandboxes(ORG, limit=2, continue_token=tok)
            pages += 1
            self.assertLessEqual(len(page), 2)
            seen += [s.name or "" for s in page]
            tok = page.continue_token
            if not tok:
                break
        self.assertEqual((seen, pages), (names, 3))
        whole = self.api.list_sandboxes(ORG)
        self.assertEqual(([s.name for s in whole], whole.continue_token), (names, None))
        with self.assertRaises(BadRequestException) as cm:
            self.api.list_sandboxes(ORG, limit=0)
        self.assertEqual([f.path for f in cm.exception.fields], ["limit"])
        with self.assertRaises(BadRequestException) as cm:
            self.api.list_sandboxes(ORG, continue_token="not-a-token")
        self.assertEqual([f.path for f in cm.exception.fields], ["continue"])

    def test_errors(self) -> None:
        bad_ns = sandbox(namespace="Not_A_Namespace")
        cases = [
            ("no cluster", "py-err", Sandbox(spec=SandboxSpec(forks=sandbox().spec.forks)), "spec.cluster"),
            ("unregistered cluster", "py-err", sandbox(cluster="nosuchcluster"), "spec.cluster"),
            ("invalid namespace", "py-err", bad_ns, "spec.forks[0].forkOf.namespace"),
            ("name differs from the path", "py-err", Sandbox(name="other", spec=sandbox().spec), "name"),
            ("invalid name in the path", "Bad_Name", sandbox(), "name"),
        ]
        for what, name, body, path in cases:
            with self.subTest(what):
                with self.assertRaises(BadRequestException) as cm:
                    self.api.apply_sandbox(ORG, name, body)
                e = cm.exception
                self.assertEqual((e.status, e.code), (400, 400))
                self.assertIn(path, [f.path for f in e.fields], e)
                self.assertTrue(e.request_id)
                self.assertTrue(e.error_message)
        # A plain dict body works as well as a model.
        self.assertTrue(self.api.apply_sandbox(ORG, "py-dict", sandbox().to_dict()).routing_key)
        with self.assertRaises(NotFoundException):
            self.api.get_sandbox(ORG, "nosuch")

    def test_unauthorized(self) -> None:
        for what, key, header in [
            ("wrong key", "smk_wrong", "sandboxmesh-api-key"),
            ("wrong key in Signadot's header", "smk_wrong", "signadot-api-key"),
            ("no key", "", "sandboxmesh-api-key"),
        ]:
            with self.subTest(what):
                with self.assertRaises(UnauthorizedException) as cm:
                    SandboxesApi(client(key, header)).list_sandboxes(ORG)
                e = cm.exception
                self.assertEqual((e.status, e.code, e.api_reason), (401, 401, "Unauthorized"))
                self.assertTrue(e.request_id)
                self.assertIsInstance(e, ApiException)  # from sandboxmesh_sdk.rest, as Signadot code imports it

    def test_signadot_header_and_host_forms(self) -> None:
        assert CP is not None
        for what, c in [
            ("api_key['signadot-api-key']", client(header="signadot-api-key")),
            ("host with /api/v2", client(host=CP.url + "/api/v2")),
        ]:
            with self.subTest(what):
                got = SandboxesApi(c).apply_sandbox(ORG, "py-compat", sandbox())
                self.assertTrue(got.routing_key)
                SandboxesApi(c).delete_sandbox(ORG, "py-compat")

    def test_an_org_the_key_cannot_see_is_not_found(self) -> None:
        with self.assertRaises(NotFoundException) as cm:
            self.api.list_sandboxes("nosuchorg")
        self.assertIn("nosuchorg", cm.exception.error_message)

    def test_conditional_apply(self) -> None:
        first = self.api.apply_sandbox(ORG, "py-cond", sandbox(), if_none_match=True)
        with self.assertRaises(ConflictException) as cm:
            self.api.apply_sandbox(ORG, "py-cond", sandbox(), if_none_match=True)
        self.assertEqual(cm.exception.status, 409)
        changed = sandbox(labels={"v": "2"})
        second = self.api.apply_sandbox(ORG, "py-cond", changed, if_match=first.version)
        self.assertEqual(second.version, (first.version or 0) + 1)
        changed.spec.labels = {"v": "3"}
        with self.assertRaises(ConflictException):
            self.api.apply_sandbox(ORG, "py-cond", changed, if_match=first.version)

    def test_wait_until_ready_times_out(self) -> None:
        self.api.apply_sandbox(ORG, "py-wait", sandbox())
        seen: List[Sandbox] = []
        start = time.monotonic()
        with self.assertRaises(ApiTimeoutError) as cm:
            self.api.wait_until_ready(ORG, "py-wait", 0.6, interval=0.1, progress=seen.append)
        took = time.monotonic() - start
        self.assertLess(took, 5)
        self.assertIn("Pending", str(cm.exception))
        self.assertIsInstance(cm.exception, TimeoutError)
        self.assertEqual(cm.exception.last.name, "py-wait")
        self.assertEqual(len(seen), 1, "progress is called on changes only")

    def test_wait_until_ready_when_the_agent_reports(self) -> None:
        agent = Agent()
        sb = self.api.apply_sandbox(ORG, "py-ready", sandbox())
        seen: List[Sandbox] = []
        t = threading.Timer(0.5, agent.sandbox_ready, args=(sb,))
        t.start()
        try:
            got = self.api.wait_until_ready(ORG, "py-ready", 20, interval=0.1, progress=seen.append)
        finally:
            t.cancel()
        self.assertIs(got.status.ready, True)
        self.assertEqual(got.status.forks[0].name, "route")
        self.assertIs(got.status.forks[0].ready, True)
        self.assertEqual(got.endpoints[0].host, "frontend.hotrod.svc")
        self.assertEqual(got.endpoints[0].port, 8080)
        self.assertEqual([s.status.ready for s in seen], [False, True])

    def test_wait_until_ready_sandbox_deleted(self) -> None:
        self.api.apply_sandbox(ORG, "py-gone", sandbox())
        threading.Timer(0.3, self.api.delete_sandbox, args=(ORG, "py-gone")).start()
        with self.assertRaises(NotFoundException):
            self.api.wait_until_ready(ORG, "py-gone", 20, interval=0.1)

    def test_preview_url(self) -> None:
        assert CP is not None
        for host in (CP.url, CP.url + "/", CP.url + "/api/v2"):
            with self.subTest(host):
                api = SandboxesApi(client(host=host))
                self.assertEqual(api.preview_url(ORG, "sb", "frontend", "/dispatch?customer=392"), CP.url + "/preview/default/sb/frontend/dispatch?customer=392")
                self.assertEqual(api.preview_url(ORG, "sb", "frontend"), CP.url + "/preview/default/sb/frontend/")

    def test_answer_size_is_bounded(self) -> None:
        from sandboxmesh_sdk import api_client as ac

        self.api.apply_sandbox(ORG, "py-big", sandbox())
        saved = ac.MAX_ANSWER_BYTES
        ac.MAX_ANSWER_BYTES = 100
        try:
            with self.assertRaises(ApiConnectionError) as cm:
                self.api.get_sandbox(ORG, "py-big")
            self.assertIn("answer larger than 100 bytes", str(cm.exception))
        finally:
            ac.MAX_ANSWER_BYTES = saved
        self.assertEqual(self.api.get_sandbox(ORG, "py-big").name, "py-big")

    def test_connection_error(self) -> None:
        cfg = Configuration(host="http://127.0.0.1:1")
        with self.assertRaises(ApiConnectionError):
            SandboxesApi(ApiClient(cfg)).list_sandboxes(ORG)


class RouteGroupsTest(unittest.TestCase):
    def test_apply_get_list_delete_and_nulls(self) -> None:
        api = RouteGroupsApi(client())
        sbs = SandboxesApi(client())
        rg = RouteGroup(
            spec=RouteGroupSpec(
                cluster=CLUSTER,
                description="py",
                match=RouteGroupMatch(label=RouteGroupMatchLabel(key="feature", value="py-*")),
                endpoints=[RouteGroupSpecEndpoint(name="frontend", target="http://frontend.hotrod.svc:8080")],
            )
        )
        got = api.apply_routegroup(ORG, "py-rg", rg)
        self.assertTrue(got.routing_key)
        self.assertEqual(got.spec.match.label.value, "py-*")
        self.assertTrue(got.endpoints[0].url == CP.url + "/preview/default/py-rg/frontend")
        self.assertIs(got.status.ready, False)
        self.assertEqual(got.status.matched_sandboxes, [])  # [] while none match, as Signadot answers
        self.assertEqual(api.get_routegroup(ORG, "py-rg").routing_key, got.routing_key)

        # A route group without endpoints: the answer has none (absent, read as None).
        bare = api.apply_routegroup(ORG, "py-rg-bare", RouteGroup(spec=RouteGroupSpec(cluster=CLUSTER, match=RouteGroupMatch(label=RouteGroupMatchLabel(key="k", value="v")))))
        self.assertIsNone(bare.endpoints)
        self.assertIsNone(bare.spec.endpoints)
        self.assertEqual([r.name for r in api.list_routegroups(ORG)], ["py-rg", "py-rg-bare"])
        page = api.list_routegroups(ORG, limit=1)
        self.assertEqual(([r.name for r in page], bool(page.continue_token)), (["py-rg"], True))

        with self.assertRaises(BadRequestException) as cm:
            api.apply_routegroup(ORG, "py-rg-bad", RouteGroup(spec=RouteGroupSpec(cluster=CLUSTER, match=RouteGroupMatch())))
        self.assertTrue(any(f.path.startswith("spec.match") for f in cm.exception.fields), cm.exception.fields)

        api.delete_routegroup(ORG, "py-rg")
        api.delete_routegroup(ORG, "py-rg-bare")
        with self.assertRaises(NotFoundException):
            api.get_routegroup(ORG, "py-rg")
        self.assertEqual(list(api.list_routegroups(ORG)), [])
        self.assertEqual(list(sbs.list_sandboxes(ORG)), [])


class ClustersTest(unittest.TestCase):
    def test_clusters_and_tokens(self) -> None:
        api = ClustersApi(client())
        c = api.add_cluster(ORG, "py-cluster")
        self.assertEqual(c.name, "py-cluster")
        self.assertIsNone(c.last_seen_at)
        self.assertIn("py-cluster", [x.name for x in api.list_clusters(ORG)])
        tok = api.create_cluster_token(ORG, "py-cluster")
        self.assertTrue(tok.token and tok.token.startswith("smc_"))
        self.assertEqual([t.id for t in api.list_cluster_tokens(ORG, "py-cluster")], [tok.id])
        self.assertIsNone(api.get_cluster_token(ORG, "py-cluster", tok.id or "").token)
        api.delete_cluster_token(ORG, "py-cluster", tok.id or "")
        api.remove_cluster(ORG, "py-cluster")
        with self.assertRaises(NotFoundException):
            api.get_cluster(ORG, "py-cluster")


class _Echo(http.server.BaseHTTPRequestHandler):
    """_Echo answers with the baggage header it got, as a routed service would show the key it saw."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        # /baseline/... plays a service the key does not reach: it shows no key.
        seen = "" if self.path.startswith("/baseline") else self.headers.get("baggage", "")
        body = json.dumps({"path": self.path, "baggage": seen}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class QuickstartTest(unittest.TestCase):
    """QuickstartTest runs examples/quickstart.py against the control plane; the test plays the agent."""

    def run_quickstart(self, extra_env: Dict[str, str], agent: Optional[Agent]) -> subprocess.CompletedProcess:
        assert CP is not None
        env = dict(os.environ)
        env.update({"SANDBOXMESH_API_URL": CP.url, "SANDBOXMESH_API_KEY": CP.admin_key, "SANDBOXMESH_ORG": ORG, "SANDBOXMESH_CLUSTER": CLUSTER})
        env.update(extra_env)
        proc = subprocess.Popen([sys.executable, QUICKSTART], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if agent is not None:
            api = SandboxesApi(client())
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    agent.sandbox_ready(api.get_sandbox(ORG, env["SANDBOXMESH_SANDBOX"]))
                    break
                except NotFoundException:
                    time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def setUp(self) -> None:
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.echo = f"http://127.0.0.1:{self.srv.server_address[1]}"

    def tearDown(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()

    def test_quickstart_flow(self) -> None:
        target = self.echo + "/dispatch?customer=392"
        res = self.run_quickstart({"SANDBOXMESH_SANDBOX": "py-quickstart", "SANDBOXMESH_TARGET_URL": target}, Agent())
        self.assertEqual(res.returncode, 0, res.stderr)
        ans = json.loads(res.stdout)
        self.assertEqual(ans["path"], "/dispatch?customer=392")
        self.assertRegex(ans["baggage"], r"^sm-routing-key=[a-z0-9]+$")
        self.assertIn("sandbox py-quickstart deleted", res.stderr)
        with self.assertRaises(NotFoundException):
            SandboxesApi(client()).get_sandbox(ORG, "py-quickstart")

    def test_quickstart_fails_when_the_answer_is_not_routed(self) -> None:
        target = self.echo + "/baseline/dispatch"
        res = self.run_quickstart({"SANDBOXMESH_SANDBOX": "py-quickstart-bl", "SANDBOXMESH_TARGET_URL": target, "SANDBOXMESH_ROUTE_TIMEOUT": "1"}, Agent())
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("does not carry the sandbox's routing key", res.stderr)
        self.assertIn("sandbox py-quickstart-bl deleted", res.stderr)

    def test_quickstart_through_the_preview_proxy(self) -> None:
        # No agent tunnel runs here: the preview proxy authenticates the key and
        # resolves the endpoint, then cannot reach the cluster. The path and the
        # proxy's answer show the request took the preview route.
        res = self.run_quickstart({"SANDBOXMESH_SANDBOX": "py-quickstart-pv", "SANDBOXMESH_ROUTE_TIMEOUT": "1"}, Agent())
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("/preview/default/py-quickstart-pv/frontend/dispatch?customer=392", res.stderr)
        self.assertIn("dispatch?customer=392: 502: ", res.stderr)
        self.assertIn("no agent connected for the cluster", res.stderr)
        self.assertIn("sandbox py-quickstart-pv deleted", res.stderr)

    def test_quickstart_timeout_deletes_the_sandbox(self) -> None:
        res = self.run_quickstart({"SANDBOXMESH_SANDBOX": "py-quickstart-to", "SANDBOXMESH_WAIT_TIMEOUT": "0.5"}, None)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("not ready after 0.5s: Pending", res.stderr)
        self.assertIn("sandbox py-quickstart-to deleted", res.stderr)
        with self.assertRaises(NotFoundException):
            SandboxesApi(client()).get_sandbox(ORG, "py-quickstart-to")

    def test_quickstart_reports_field_errors(self) -> None:
        res = self.run_quickstart({"SANDBOXMESH_SANDBOX": "py-quickstart-bad", "SANDBOXMESH_CLUSTER": "nosuchcluster"}, None)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("spec.cluster: not registered", res.stderr)


if __name__ == "__main__":
    unittest.main()
