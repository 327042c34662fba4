"""Tests of the models, Configuration and ApiException that need no server."""

from __future__ import annotations

import json
import random
import unittest
from typing import Any

from sandboxmesh_sdk import (
    ApiException,
    BadRequestException,
    Configuration,
    FieldError,
    Page,
    RouteGroup,
    Sandbox,
    SandboxCustomizations,
    SandboxEnvVar,
    SandboxFork,
    SandboxForkOf,
    SandboxImage,
    SandboxSpec,
    SandboxTTL,
)
from sandboxmesh_sdk.exceptions import exception_for


class ModelTest(unittest.TestCase):
    def test_to_dict_uses_wire_names_and_leaves_out_none(self) -> None:
        sb = Sandbox(
            spec=SandboxSpec(
                cluster="local",
                ttl=SandboxTTL(duration="1h", offset_from="updatedAt"),
                forks=[
                    SandboxFork(
                        fork_of=SandboxForkOf(kind="Deployment", namespace="hotrod", name="route"),
                        customizations=SandboxCustomizations(
                            images=[SandboxImage(image="img:v2")], env=[SandboxEnvVar(name="A", value="b")]
                        ),
                    )
                ],
            )
        )
        self.assertEqual(
            sb.to_dict(),
            {
                "spec": {
                    "cluster": "local",
                    "ttl": {"duration": "1h", "offsetFrom": "updatedAt"},
                    "forks": [
                        {
                            "forkOf": {"kind": "Deployment", "namespace": "hotrod", "name": "route"},
                            "customizations": {"images": [{"image": "img:v2"}], "env": [{"name": "A", "value": "b"}]},
                        }
                    ],
                }
            },
        )

    def test_from_dict_table(self) -> None:
        cases = [
            ("nulls everywhere", {"name": None, "spec": None, "endpoints": None, "status": None, "routingKey": None}, lambda s: s.spec is None and s.endpoints is None and s.status is None),
            ("absent fields", {}, lambda s: s.name is None and s.spec is None),
            ("null list items of a spec", {"spec": {"forks": None, "labels": None, "defaultRouteGroup": {"endpoints": None}}}, lambda s: s.spec.forks is None and s.spec.default_route_group.endpoints is None),
            ("status with null forks", {"status": {"ready": True, "forks": None, "reason": None}}, lambda s: s.status.ready is True and s.status.forks is None),
            ("endpoints", {"endpoints": [{"name": "fe", "url": "http://x", "baselineUrl": "http://b", "routeType": "host"}]}, lambda s: s.endpoints[0].url == "http://x" and s.endpoints[0].baseline_url == "http://b" and s.endpoints[0].route_type == "host"),
            ("a value of an unexpected shape is kept", {"spec": {"forks": "weird"}}, lambda s: s.spec.forks == "weird"),
        ]
        for name, data, check in cases:
            with self.subTest(name):
                self.assertTrue(check(Sandbox.from_dict(data)), data)

    def test_unknown_fields_are_kept_and_written_back(self) -> None:
        data = {
            "name": "a",
            "newTopLevel": {"x": 1},
            "spec": {"cluster": "c", "futureSpec": [1, 2], "forks": [{"forkOf": {"name": "r", "futureRef": True}}]},
        }
        sb = Sandbox.from_dict(data)
        self.assertEqual(sb.extra, {"newTopLevel": {"x": 1}})
        self.assertEqual(sb.spec.extra, {"futureSpec": [1, 2]})
        self.assertEqual(sb.spec.forks[0].fork_of.extra, {"futureRef": True})
        self.assertEqual(sb.to_dict(), data)
        self.assertEqual(Sandbox.from_dict(json.loads(json.dumps(sb.to_dict()))), sb)

    def test_route_group_match(self) -> None:
        rg = RouteGroup.from_dict({"spec": {"match": {"any": [{"label": {"key": "k", "value": "v*"}}]}}, "status": {"matchedSandboxes": None}})
        self.assertEqual(rg.spec.match.any[0].label.value, "v*")
        self.assertIsNone(rg.status.matched_sandboxes)

    def test_from_dict_refuses_a_non_object(self) -> None:
        with self.assertRaises(TypeError):
            Sandbox.from_dict([1, 2])  # type: ignore[arg-type]


class RandomInputTest(unittest.TestCase):
    """RandomInputTest feeds random JSON objects (fixed seeds) to every model's from_dict.

    Whatever the server sends, reading never raises and writing back is stable.
    """

    KEYS = ["name", "spec", "forks", "forkOf", "customizations", "images", "env", "endpoints", "status",
            "ready", "routingKey", "defaultRouteGroup", "match", "label", "any", "all", "labels", "ttl", "x"]

    def value(self, rnd: random.Random, depth: int) -> Any:
        kind = rnd.randrange(8 if depth < 4 else 5)
        if kind == 0:
            return None
        if kind == 1:
            return rnd.choice([True, False])
        if kind == 2:
            return rnd.randrange(-5, 100000)
        if kind == 3:
            return rnd.choice(["", "a", "Deployment", "ü€", "0" * 40])
        if kind == 4:
            return 1.5
        if kind in (5, 6):
            return {rnd.choice(self.KEYS): self.value(rnd, depth + 1) for _ in range(rnd.randrange(5))}
        return [self.value(rnd, depth + 1) for _ in range(rnd.randrange(4))]

    def test_from_dict_never_raises_and_round_trips(self) -> None:
        models = [Sandbox, RouteGroup, SandboxSpec, SandboxFork, SandboxCustomizations]
        for seed in range(300):
            rnd = random.Random(seed)
            data = {rnd.choice(self.KEYS): self.value(rnd, 1) for _ in range(rnd.randrange(6))}
            for m in models:
                with self.subTest(seed=seed, model=m.__name__):
                    once = m.from_dict(data).to_dict()
                    json.dumps(once)
                    self.assertEqual(m.from_dict(once).to_dict(), once)


class ConfigurationTest(unittest.TestCase):
    def test_base_url(self) -> None:
        for host, want in [
            ("http://cp:8080", "http://cp:8080/api/v2"),
            ("http://cp:8080/", "http://cp:8080/api/v2"),
            ("https://cp.example.com/api/v2", "https://cp.example.com/api/v2"),
            ("https://cp.example.com/api/v2/", "https://cp.example.com/api/v2"),
        ]:
            with self.subTest(host):
                self.assertEqual(Configuration(host=host).base_url, want)

    def test_auth_headers(self) -> None:
        c = Configuration()
        self.assertEqual(c.auth_headers(), {})
        c.api_key["signadot-api-key"] = "k1"
        self.assertEqual(c.auth_headers(), {"signadot-api-key": "k1"})
        c.api_key["sandboxmesh-api-key"] = "k2"
        self.assertEqual(c.auth_headers(), {"sandboxmesh-api-key": "k2", "signadot-api-key": "k1"})

    def test_from_env(self) -> None:
        c = Configuration.from_env({"SANDBOXMESH_API_URL": "http://x:1", "SANDBOXMESH_API_KEY": "smk_1"})
        self.assertEqual(c.base_url, "http://x:1/api/v2")
        self.assertEqual(c.auth_headers(), {"sandboxmesh-api-key": "smk_1"})


class ExceptionTest(unittest.TestCase):
    def test_error_body(self) -> None:
        body = json.dumps({"code": 400, "error": "invalid sandbox", "requestId": "r1", "reason": "ValidationFailed", "fields": [{"path": "spec.cluster", "message": "required"}]})
        e = exception_for(400)(status=400, reason="Bad Request", body=body, headers={"X-Request-Id": "r0"}, method="PUT", url="http://x/y")
        self.assertIsInstance(e, BadRequestException)
        self.assertEqual((e.status, e.code, e.request_id, e.api_reason), (400, 400, "r1", "ValidationFailed"))
        self.assertEqual(e.fields, [FieldError("spec.cluster", "required")])
        self.assertIn("invalid sandbox", str(e))
        self.assertIn("request r1", str(e))

    def test_non_json_body(self) -> None:
        e = ApiException(status=502, reason="Bad Gateway", body="<html>proxy</html>", headers={"x-request-id": "h1"})
        self.assertEqual((e.code, e.request_id, e.error_message, e.fields), (502, "h1", "<html>proxy</html>", []))


class PageTest(unittest.TestCase):
    def test_page_is_a_list(self) -> None:
        p = Page([1, 2], "tok")
        self.assertEqual(list(p), [1, 2])
        self.assertEqual(p.continue_token, "tok")
        self.assertIsNone(Page().continue_token)


if __name__ == "__main__":
    unittest.main()
