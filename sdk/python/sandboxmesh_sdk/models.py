"""Models of the SandboxMesh /api/v2 wire format.

Each model is a dataclass whose snake_case attributes map to the camelCase
JSON names of the API (the names of controlplane/apitypes and crds/v1alpha1,
which are those of Signadot's v2 API). ``to_dict()`` gives the JSON object
(``None`` attributes are left out), ``from_dict()`` reads one: ``null`` and
absent fields become ``None``, and fields this version does not know are kept
in ``extra`` and written back by ``to_dict()``, so a newer server never breaks
an older client.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Dict, List, Mapping, Optional, Type, TypeVar

__all__ = [
    "Model",
    "SandboxForkOf",
    "SandboxImage",
    "SandboxEnvVar",
    "SandboxCustomPatch",
    "SandboxCustomizations",
    "SandboxForkEndpoint",
    "SandboxFork",
    "SandboxTTL",
    "RouteGroupSpecEndpoint",
    "SandboxDefaultRouteGroup",
    "SandboxSpec",
    "SandboxEndpoint",
    "SandboxForkStatus",
    "SandboxStatus",
    "Sandbox",
    "RouteGroupMatchLabel",
    "RouteGroupMatcher",
    "RouteGroupMatch",
    "RouteGroupSpec",
    "RouteGroupEndpoint",
    "RouteGroupStatus",
    "RouteGroup",
    "ClusterOperator",
    "Cluster",
    "ClusterTokenStatus",
    "ClusterToken",
]

M = TypeVar("M", bound="Model")


def _wire(name: str) -> Any:
    """_wire declares an optional attribute serialised as the JSON field name."""
    return dataclasses.field(default=None, metadata={"wire": name})


_hints_cache: Dict[type, Dict[str, Any]] = {}


def _hints(cls: type) -> Dict[str, Any]:
    h = _hints_cache.get(cls)
    if h is None:
        h = typing.get_type_hints(cls)
        _hints_cache[cls] = h
    return h


def _unoptional(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _decode(tp: Any, value: Any) -> Any:
    """_decode converts JSON value to type tp; a value of another shape is kept as it is."""
    if value is None:
        return None
    tp = _unoptional(tp)
    origin = typing.get_origin(tp)
    if origin in (list, List) and isinstance(value, list):
        (item,) = typing.get_args(tp) or (Any,)
        return [_decode(item, v) for v in value]
    if origin in (dict, Dict) and isinstance(value, dict):
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {k: _decode(item, v) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Model) and isinstance(value, dict):
        return tp.from_dict(value)
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


class Model:
    """Model is the base of every wire model: to_dict, from_dict and extra."""

    @property
    def extra(self) -> Dict[str, Any]:
        """extra holds the JSON fields this SDK version does not know (kept, not fatal)."""
        e = self.__dict__.get("_extra")
        if e is None:
            e = {}
            object.__setattr__(self, "_extra", e)
        return e

    def to_dict(self) -> Dict[str, Any]:
        """to_dict returns the JSON object: camelCase names, None attributes left out."""
        out: Dict[str, Any] = dict(self.__dict__.get("_extra") or {})
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v is None:
                continue
            out[f.metadata.get("wire", f.name)] = _encode(v)
        return out

    @classmethod
    def from_dict(cls: Type[M], data: Optional[Mapping[str, Any]]) -> M:
        """from_dict reads a JSON object; null and absent fields become None, unknown ones go to extra."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise TypeError(f"{cls.__name__}.from_dict: want a JSON object, got {type(data).__name__}")
        hints = _hints(cls)
        kwargs: Dict[str, Any] = {}
        known = set()
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = f.metadata.get("wire", f.name)
            known.add(key)
            if key in data:
                kwargs[f.name] = _decode(hints[f.name], data[key])
        obj = cls(**kwargs)
        extra = {k: v for k, v in data.items() if k not in known}
        if extra:
            object.__setattr__(obj, "_extra", extra)
        return obj


# ---- sandbox spec ----


@dataclasses.dataclass
class SandboxForkOf(Model):
    """SandboxForkOf names the baseline workload of a fork (kind Deployment)."""

    kind: Optional[str] = _wire("kind")
    namespace: Optional[str] = _wire("namespace")
    name: Optional[str] = _wire("name")


@dataclasses.dataclass
class SandboxImage(Model):
    """SandboxImage replaces the image of a container (empty container: the main one)."""

    image: Optional[str] = _wire("image")
    container: Optional[str] = _wire("container")


@dataclasses.dataclass
class SandboxEnvVar(Model):
    """SandboxEnvVar sets (operation upsert, the default) or deletes an environment variable.

    value_from is the JSON object of valueFrom (secret, configMap, fieldRef or fork).
    """

    name: Optional[str] = _wire("name")
    value: Optional[str] = _wire("value")
    value_from: Optional[Dict[str, Any]] = _wire("valueFrom")
    container: Optional[str] = _wire("container")
    operation: Optional[str] = _wire("operation")


@dataclasses.dataclass
class SandboxCustomPatch(Model):
    """SandboxCustomPatch is applied last to the fork (type strategic, merge or json)."""

    type: Optional[str] = _wire("type")
    value: Optional[str] = _wire("value")


@dataclasses.dataclass
class SandboxCustomizations(Model):
    """SandboxCustomizations say how a fork differs from its baseline."""

    images: Optional[List[SandboxImage]] = _wire("images")
    env: Optional[List[SandboxEnvVar]] = _wire("env")
    command: Optional[List[str]] = _wire("command")
    args: Optional[List[str]] = _wire("args")
    patch: Optional[SandboxCustomPatch] = _wire("patch")


@dataclasses.dataclass
class SandboxForkEndpoint(Model):
    """SandboxForkEndpoint is Signadot's per-fork endpoint (name, port, protocol).

    The control plane accepts it only once it implements forks[].endpoints
    (issue 19 part 1); spec.defaultRouteGroup.endpoints works everywhere.
    """

    name: Optional[str] = _wire("name")
    port: Optional[int] = _wire("port")
    protocol: Optional[str] = _wire("protocol")


@dataclasses.dataclass
class SandboxFork(Model):
    """SandboxFork is a copy of a baseline workload with customizations."""

    fork_of: Optional[SandboxForkOf] = _wire("forkOf")
    customizations: Optional[SandboxCustomizations] = _wire("customizations")
    endpoints: Optional[List[SandboxForkEndpoint]] = _wire("endpoints")


@dataclasses.dataclass
class SandboxTTL(Model):
    """SandboxTTL deletes the object after duration (e.g. "90m", "2d") from offset_from."""

    duration: Optional[str] = _wire("duration")
    offset_from: Optional[str] = _wire("offsetFrom")


@dataclasses.dataclass
class RouteGroupSpecEndpoint(Model):
    """RouteGroupSpecEndpoint names an in-cluster target (scheme://host:port) that gets a URL."""

    name: Optional[str] = _wire("name")
    target: Optional[str] = _wire("target")


@dataclasses.dataclass
class SandboxDefaultRouteGroup(Model):
    """SandboxDefaultRouteGroup holds the endpoints of a sandbox."""

    endpoints: Optional[List[RouteGroupSpecEndpoint]] = _wire("endpoints")


@dataclasses.dataclass
class SandboxSpec(Model):
    """SandboxSpec is the desired state of a sandbox.

    virtual, local and resources are kept as JSON objects (lists of dicts).
    """

    cluster: Optional[str] = _wire("cluster")
    description: Optional[str] = _wire("description")
    labels: Optional[Dict[str, str]] = _wire("labels")
    ttl: Optional[SandboxTTL] = _wire("ttl")
    forks: Optional[List[SandboxFork]] = _wire("forks")
    virtual: Optional[List[Dict[str, Any]]] = _wire("virtual")
    local: Optional[List[Dict[str, Any]]] = _wire("local")
    resources: Optional[List[Dict[str, Any]]] = _wire("resources")
    default_route_group: Optional[SandboxDefaultRouteGroup] = _wire("defaultRouteGroup")


# ---- sandbox answers ----


@dataclasses.dataclass
class SandboxEndpoint(Model):
    """SandboxEndpoint is an endpoint of a sandbox with its URL."""

    name: Optional[str] = _wire("name")
    host: Optional[str] = _wire("host")
    port: Optional[int] = _wire("port")
    protocol: Optional[str] = _wire("protocol")
    route_type: Optional[str] = _wire("routeType")
    target: Optional[str] = _wire("target")
    url: Optional[str] = _wire("url")
    baseline_url: Optional[str] = _wire("baselineUrl")


@dataclasses.dataclass
class SandboxForkStatus(Model):
    """SandboxForkStatus reports one fork (a SandboxMesh extension: progress while waiting)."""

    name: Optional[str] = _wire("name")
    baseline: Optional[str] = _wire("baseline")
    deployment: Optional[str] = _wire("deployment")
    service: Optional[str] = _wire("service")
    ready: Optional[bool] = _wire("ready")
    message: Optional[str] = _wire("message")


@dataclasses.dataclass
class SandboxStatus(Model):
    """SandboxStatus says whether a sandbox is ready, and if not, why."""

    ready: Optional[bool] = _wire("ready")
    reason: Optional[str] = _wire("reason")
    message: Optional[str] = _wire("message")
    scheduled_delete_time: Optional[str] = _wire("scheduledDeleteTime")
    forks: Optional[List[SandboxForkStatus]] = _wire("forks")


@dataclasses.dataclass
class Sandbox(Model):
    """Sandbox is a sandbox: send name (or let the path give it) and spec; the rest is answered."""

    name: Optional[str] = _wire("name")
    spec: Optional[SandboxSpec] = _wire("spec")
    routing_key: Optional[str] = _wire("routingKey")
    endpoints: Optional[List[SandboxEndpoint]] = _wire("endpoints")
    status: Optional[SandboxStatus] = _wire("status")
    created_at: Optional[str] = _wire("createdAt")
    updated_at: Optional[str] = _wire("updatedAt")
    version: Optional[int] = _wire("version")


# ---- route groups ----


@dataclasses.dataclass
class RouteGroupMatchLabel(Model):
    """RouteGroupMatchLabel matches sandboxes whose label key has a value matching the glob value."""

    key: Optional[str] = _wire("key")
    value: Optional[str] = _wire("value")


@dataclasses.dataclass
class RouteGroupMatcher(Model):
    """RouteGroupMatcher is one criterion of a match's any or all list."""

    label: Optional[RouteGroupMatchLabel] = _wire("label")


@dataclasses.dataclass
class RouteGroupMatch(Model):
    """RouteGroupMatch selects sandboxes: exactly one of label, any or all."""

    label: Optional[RouteGroupMatchLabel] = _wire("label")
    any: Optional[List[RouteGroupMatcher]] = _wire("any")
    all: Optional[List[RouteGroupMatcher]] = _wire("all")


@dataclasses.dataclass
class RouteGroupSpec(Model):
    """RouteGroupSpec is the desired state of a route group."""

    cluster: Optional[str] = _wire("cluster")
    description: Optional[str] = _wire("description")
    match: Optional[RouteGroupMatch] = _wire("match")
    endpoints: Optional[List[RouteGroupSpecEndpoint]] = _wire("endpoints")
    ttl: Optional[SandboxTTL] = _wire("ttl")


@dataclasses.dataclass
class RouteGroupEndpoint(Model):
    """RouteGroupEndpoint is an endpoint of a route group with its URL."""

    name: Optional[str] = _wire("name")
    target: Optional[str] = _wire("target")
    url: Optional[str] = _wire("url")


@dataclasses.dataclass
class RouteGroupStatus(Model):
    """RouteGroupStatus says whether a route group is ready and which sandboxes it matched."""

    ready: Optional[bool] = _wire("ready")
    reason: Optional[str] = _wire("reason")
    message: Optional[str] = _wire("message")
    matched_sandboxes: Optional[List[str]] = _wire("matchedSandboxes")
    scheduled_delete_time: Optional[str] = _wire("scheduledDeleteTime")


@dataclasses.dataclass
class RouteGroup(Model):
    """RouteGroup routes one routing key to the forks of the sandboxes it matches."""

    name: Optional[str] = _wire("name")
    spec: Optional[RouteGroupSpec] = _wire("spec")
    routing_key: Optional[str] = _wire("routingKey")
    endpoints: Optional[List[RouteGroupEndpoint]] = _wire("endpoints")
    status: Optional[RouteGroupStatus] = _wire("status")
    created_at: Optional[str] = _wire("createdAt")
    updated_at: Optional[str] = _wire("updatedAt")
    version: Optional[int] = _wire("version")


# ---- clusters ----


@dataclasses.dataclass
class ClusterOperator(Model):
    """ClusterOperator describes the operator of a cluster."""

    version: Optional[str] = _wire("version")


@dataclasses.dataclass
class Cluster(Model):
    """Cluster is a registered cluster; last_seen_at is when its agent last talked to the control plane."""

    name: Optional[str] = _wire("name")
    created_at: Optional[str] = _wire("createdAt")
    operator: Optional[ClusterOperator] = _wire("operator")
    last_seen_at: Optional[str] = _wire("lastSeenAt")


@dataclasses.dataclass
class ClusterTokenStatus(Model):
    """ClusterTokenStatus says when and from where a token was last used."""

    last_connected_at: Optional[str] = _wire("lastConnectedAt")
    last_connected_ip: Optional[str] = _wire("lastConnectedIp")


@dataclasses.dataclass
class ClusterToken(Model):
    """ClusterToken is a cluster token; token (the secret) is set only in the answer of its creation."""

    id: Optional[str] = _wire("id")
    created_at: Optional[str] = _wire("createdAt")
    masked_value: Optional[str] = _wire("maskedValue")
    token: Optional[str] = _wire("token")
    status: Optional[ClusterTokenStatus] = _wire("status")
