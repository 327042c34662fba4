"""SandboxesApi, RouteGroupsApi and ClustersApi: the operations of /api/v2.

Method and parameter names are those of Signadot's generated Python SDK
(apply_sandbox(org_name, sandbox_name, data), get_routegroup, ...), so code
written for it runs against SandboxMesh with another import and base URL.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Type, TypeVar, Union

from .api_client import ApiClient
from .configuration import API_PREFIX
from .exceptions import ApiTimeoutError
from .models import Cluster, ClusterToken, Model, RouteGroup, Sandbox

__all__ = ["Page", "PAGE_SIZE", "SandboxesApi", "RouteGroupsApi", "ClustersApi"]

#: PAGE_SIZE is the page size asked for while reading a whole list (the server's maximum).
PAGE_SIZE = 500

#: CONTINUE_HEADER carries the continue token of the next page of a paged list.
CONTINUE_HEADER = "sandboxmesh-continue"
#: CREATED_HEADER is "true" on the answer of a PUT that created the object.
CREATED_HEADER = "sandboxmesh-created"

M = TypeVar("M", bound=Model)


class Page(List[M]):
    """Page is a list of objects; continue_token fetches the next page (None on the last one)."""

    continue_token: Optional[str] = None

    def __init__(self, items: Iterable[M] = (), continue_token: Optional[str] = None) -> None:
        super().__init__(items)
        self.continue_token = continue_token


def _selector(labels: Optional[Mapping[str, str]]) -> Optional[str]:
    if not labels:
        return None
    return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))


def _list(
    client: ApiClient,
    path: str,
    cls: Type[M],
    query: Dict[str, Any],
    limit: Optional[int],
    continue_token: Optional[str],
    timeout: Optional[float],
) -> Page[M]:
    """_list reads one page (limit or continue_token given) or every page of a list."""
    paged = limit is not None or bool(continue_token)
    out: Page[M] = Page()
    tok = continue_token
    while True:
        q = dict(query)
        q["limit"] = limit if limit is not None else PAGE_SIZE
        if tok:
            q["continue"] = tok
        resp = client.call_api("GET", path, q, _request_timeout=timeout)
        items = resp.json() or []
        out.extend(cls.from_dict(x) for x in items)
        tok = resp.headers.get(CONTINUE_HEADER) or None
        if paged:
            out.continue_token = tok
            return out
        if not tok:
            return out


def _body(obj: Union[Model, Mapping[str, Any]]) -> Dict[str, Any]:
    """_body is the request body of an apply: name (when set) and spec; answer-only fields are not sent."""
    if isinstance(obj, Model):
        d = obj.to_dict()
    else:
        d = dict(obj)
    return {k: d[k] for k in ("name", "spec") if k in d}


def _conditional(if_match: Optional[int], if_none_match: bool) -> Dict[str, str]:
    h: Dict[str, str] = {}
    if if_match is not None:
        h["If-Match"] = f'"{int(if_match)}"'
    if if_none_match:
        h["If-None-Match"] = "*"
    return h


class _Api:
    def __init__(self, api_client: Optional[ApiClient] = None) -> None:
        self.api_client = api_client or ApiClient()


class SandboxesApi(_Api):
    """SandboxesApi creates, reads, lists, deletes and waits for sandboxes."""

    def apply_sandbox(
        self,
        org_name: str,
        sandbox_name: str,
        data: Union[Sandbox, Mapping[str, Any]],
        *,
        if_match: Optional[int] = None,
        if_none_match: bool = False,
        _request_timeout: Optional[float] = None,
    ) -> Sandbox:
        """apply_sandbox creates or updates sandbox_name (PUT) and returns it with its routing key.

        if_match makes the update conditional on the sandbox's version;
        if_none_match makes it fail with ConflictException when it exists.
        """
        p = ApiClient.path("orgs", org_name, "sandboxes", sandbox_name)
        resp = self.api_client.call_api("PUT", p, body=_body(data), headers=_conditional(if_match, if_none_match), _request_timeout=_request_timeout)
        return Sandbox.from_dict(resp.json())

    def get_sandbox(self, org_name: str, sandbox_name: str, *, _request_timeout: Optional[float] = None) -> Sandbox:
        """get_sandbox returns a sandbox (NotFoundException when there is none)."""
        p = ApiClient.path("orgs", org_name, "sandboxes", sandbox_name)
        return Sandbox.from_dict(self.api_client.call_api("GET", p, _request_timeout=_request_timeout).json())

    def list_sandboxes(
        self,
        org_name: str,
        labels: Optional[Mapping[str, str]] = None,
        *,
        limit: Optional[int] = None,
        continue_token: Optional[str] = None,
        _request_timeout: Optional[float] = None,
    ) -> Page[Sandbox]:
        """list_sandboxes lists the sandboxes of an org, by name.

        labels keeps those with all the given labels. Without limit and
        continue_token it reads every page; with them it returns one page
        whose continue_token asks for the next.
        """
        q = {"labelSelector": _selector(labels)}
        return _list(self.api_client, ApiClient.path("orgs", org_name, "sandboxes"), Sandbox, q, limit, continue_token, _request_timeout)

    def delete_sandbox(self, org_name: str, sandbox_name: str, *, _request_timeout: Optional[float] = None) -> None:
        """delete_sandbox deletes a sandbox (NotFoundException when there is none)."""
        p = ApiClient.path("orgs", org_name, "sandboxes", sandbox_name)
        self.api_client.call_api("DELETE", p, _request_timeout=_request_timeout)

    def preview_url(self, org_name: str, sandbox_name: str, endpoint: str, path: str = "/") -> str:
        """preview_url is the path-form preview URL of a sandbox endpoint with path (and query) appended:
        <host>/preview/<org>/<sandbox>/<endpoint>/<path>. Send the API key with the request; the control
        plane adds the sandbox's routing key and forwards it to the endpoint through the cluster's agent.
        """
        base = self.api_client.configuration.base_url
        base = base[: -len(API_PREFIX)]
        rest = urllib.parse.urlsplit(path)
        p = ApiClient.path("preview", org_name, sandbox_name, endpoint) + "/" + rest.path.lstrip("/")
        return base + p + (("?" + rest.query) if rest.query else "")

    def wait_until_ready(
        self,
        org_name: str,
        sandbox_name: str,
        timeout: float = 300.0,
        *,
        interval: float = 1.0,
        progress: Optional[Callable[[Sandbox], None]] = None,
    ) -> Sandbox:
        """wait_until_ready polls a sandbox until status.ready and returns it.

        progress, if given, is called with the sandbox each time its version
        or status changes. After timeout seconds it raises ApiTimeoutError
        (its message has the last reason and message; .last is the last
        sandbox read). API errors end the wait at once (NotFoundException
        when the sandbox is deleted meanwhile).
        """
        deadline = time.monotonic() + timeout
        last: Optional[Sandbox] = None
        last_sig: Any = None
        while True:
            left = deadline - time.monotonic()
            req_timeout = max(0.1, min(self.api_client.configuration.timeout, left)) if left > 0 else 0.1
            sb = self.get_sandbox(org_name, sandbox_name, _request_timeout=req_timeout)
            last = sb
            st = sb.status
            if progress is not None:
                sig = (sb.version, st.to_dict() if st else None)
                if sig != last_sig:
                    last_sig = sig
                    progress(sb)
            if st is not None and st.ready:
                return sb
            left = deadline - time.monotonic()
            if left <= 0:
                reason = (st.reason if st else None) or "NotReady"
                msg = (st.message if st else None) or ""
                raise ApiTimeoutError(f"sandbox {org_name}/{sandbox_name} not ready after {timeout:g}s: {reason}: {msg}", last)
            time.sleep(min(interval, left))


class RouteGroupsApi(_Api):
    """RouteGroupsApi creates, reads, lists and deletes route groups."""

    def apply_routegroup(
        self,
        org_name: str,
        routegroup_name: str,
        data: Union[RouteGroup, Mapping[str, Any]],
        *,
        if_match: Optional[int] = None,
        if_none_match: bool = False,
        _request_timeout: Optional[float] = None,
    ) -> RouteGroup:
        """apply_routegroup creates or updates a route group (PUT) and returns it with its routing key."""
        p = ApiClient.path("orgs", org_name, "routegroups", routegroup_name)
        resp = self.api_client.call_api("PUT", p, body=_body(data), headers=_conditional(if_match, if_none_match), _request_timeout=_request_timeout)
        return RouteGroup.from_dict(resp.json())

    def get_routegroup(self, org_name: str, routegroup_name: str, *, _request_timeout: Optional[float] = None) -> RouteGroup:
        """get_routegroup returns a route group."""
        p = ApiClient.path("orgs", org_name, "routegroups", routegroup_name)
        return RouteGroup.from_dict(self.api_client.call_api("GET", p, _request_timeout=_request_timeout).json())

    def list_routegroups(
        self,
        org_name: str,
        *,
        limit: Optional[int] = None,
        continue_token: Optional[str] = None,
        _request_timeout: Optional[float] = None,
    ) -> Page[RouteGroup]:
        """list_routegroups lists the route groups of an org (every page, or one with limit/continue_token)."""
        return _list(self.api_client, ApiClient.path("orgs", org_name, "routegroups"), RouteGroup, {}, limit, continue_token, _request_timeout)

    def delete_routegroup(self, org_name: str, routegroup_name: str, *, _request_timeout: Optional[float] = None) -> None:
        """delete_routegroup deletes a route group."""
        p = ApiClient.path("orgs", org_name, "routegroups", routegroup_name)
        self.api_client.call_api("DELETE", p, _request_timeout=_request_timeout)


class ClustersApi(_Api):
    """ClustersApi registers clusters and manages their agent tokens."""

    def add_cluster(
        self, org_name: str, cluster_name: str, data: Any = None, *, _request_timeout: Optional[float] = None
    ) -> Cluster:
        """add_cluster registers a cluster (idempotent); data is accepted for Signadot compatibility and not sent."""
        p = ApiClient.path("orgs", org_name, "clusters", cluster_name)
        return Cluster.from_dict(self.api_client.call_api("PUT", p, _request_timeout=_request_timeout).json())

    def get_cluster(self, org_name: str, cluster_name: str, *, _request_timeout: Optional[float] = None) -> Cluster:
        """get_cluster returns a cluster; last_seen_at says when its agent last connected."""
        p = ApiClient.path("orgs", org_name, "clusters", cluster_name)
        return Cluster.from_dict(self.api_client.call_api("GET", p, _request_timeout=_request_timeout).json())

    def list_clusters(
        self,
        org_name: str,
        *,
        limit: Optional[int] = None,
        continue_token: Optional[str] = None,
        _request_timeout: Optional[float] = None,
    ) -> Page[Cluster]:
        """list_clusters lists the clusters of an org (every page, or one with limit/continue_token)."""
        return _list(self.api_client, ApiClient.path("orgs", org_name, "clusters"), Cluster, {}, limit, continue_token, _request_timeout)

    def remove_cluster(self, org_name: str, cluster_name: str, *, _request_timeout: Optional[float] = None) -> None:
        """remove_cluster removes a cluster (ConflictException while sandboxes use it)."""
        p = ApiClient.path("orgs", org_name, "clusters", cluster_name)
        self.api_client.call_api("DELETE", p, _request_timeout=_request_timeout)

    delete_cluster = remove_cluster

    def create_cluster_token(self, org_name: str, cluster_name: str, *, _request_timeout: Optional[float] = None) -> ClusterToken:
        """create_cluster_token creates an agent token; its token attribute is shown only in this answer."""
        p = ApiClient.path("orgs", org_name, "clusters", cluster_name, "tokens")
        return ClusterToken.from_dict(self.api_client.call_api("POST", p, _request_timeout=_request_timeout).json())

    def list_cluster_tokens(
        self,
        org_name: str,
        cluster_name: str,
        *,
        limit: Optional[int] = None,
        continue_token: Optional[str] = None,
        _request_timeout: Optional[float] = None,
    ) -> Page[ClusterToken]:
        """list_cluster_tokens lists a cluster's tokens (masked), oldest first."""
        p = ApiClient.path("orgs", org_name, "clusters", cluster_name, "tokens")
        return _list(self.api_client, p, ClusterToken, {}, limit, continue_token, _request_timeout)

    def get_cluster_token(self, org_name: str, cluster_name: str, token_id: str, *, _request_timeout: Optional[float] = None) -> ClusterToken:
        """get_cluster_token returns one token (masked)."""
        p = ApiClient.path("orgs", org_name, "clusters", cluster_name, "tokens", token_id)
        return ClusterToken.from_dict(self.api_client.call_api("GET", p, _request_timeout=_request_timeout).json())

    def delete_cluster_token(self, org_name: str, cluster_name: str, token_id: str, *, _request_timeout: Optional[float] = None) -> None:
        """delete_cluster_token deletes a token; its agent is refused from then on."""
        p = ApiClient.path("orgs", org_name, "clusters", cluster_name, "tokens", token_id)
        self.api_client.call_api("DELETE", p, _request_timeout=_request_timeout)

    def list_workloads(
        self, org_name: str, cluster_name: str, namespace: Optional[str] = None, *, _request_timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        """list_workloads returns the forkable workloads the cluster's agent last reported (a SandboxMesh extension)."""
        p = ApiClient.path("orgs", org_name, "clusters", cluster_name, "workloads")
        ans = self.api_client.call_api("GET", p, {"namespace": namespace}, _request_timeout=_request_timeout).json()
        return ans if isinstance(ans, dict) else {}
