"""Configuration of an ApiClient: where the control plane is and which API key to send."""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

__all__ = ["Configuration", "API_KEY_HEADER", "SIGNADOT_API_KEY_HEADER", "API_PREFIX"]

#: API_KEY_HEADER is SandboxMesh's API key header.
API_KEY_HEADER = "sandboxmesh-api-key"
#: SIGNADOT_API_KEY_HEADER is accepted as well, so Signadot clients work unchanged.
SIGNADOT_API_KEY_HEADER = "signadot-api-key"
#: API_PREFIX is the path of the API under the control plane's base URL.
API_PREFIX = "/api/v2"

DEFAULT_HOST = "http://localhost:8080"


class Configuration:
    """Configuration says where the control plane is and how to authenticate.

    host is the control plane's base URL, e.g. ``http://localhost:8080``; a
    host ending in ``/api/v2`` (the form of Signadot's generated clients) is
    accepted too. api_key maps a header name to the key:
    ``api_key['sandboxmesh-api-key']`` or, as Signadot code writes it,
    ``api_key['signadot-api-key']`` (the control plane accepts both).
    timeout bounds every request in seconds; verify_ssl and ssl_ca_cert
    control TLS checks; default_headers are added to every request.
    """

    def __init__(
        self,
        host: Optional[str] = None,
        api_key: Optional[Mapping[str, str]] = None,
        api_key_prefix: Optional[Mapping[str, str]] = None,
        timeout: float = 60.0,
        verify_ssl: bool = True,
        ssl_ca_cert: Optional[str] = None,
    ) -> None:
        self.host: str = host or DEFAULT_HOST
        self.api_key: Dict[str, str] = dict(api_key or {})
        self.api_key_prefix: Dict[str, str] = dict(api_key_prefix or {})
        self.timeout: float = timeout
        self.verify_ssl: bool = verify_ssl
        self.ssl_ca_cert: Optional[str] = ssl_ca_cert
        self.default_headers: Dict[str, str] = {}
        self.user_agent: str = "sandboxmesh-python-sdk/0.1.0"

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "Configuration":
        """from_env reads SANDBOXMESH_API_URL and SANDBOXMESH_API_KEY (as the CLI does)."""
        env = os.environ if environ is None else environ
        c = cls(host=env.get("SANDBOXMESH_API_URL") or None)
        key = env.get("SANDBOXMESH_API_KEY")
        if key:
            c.api_key[API_KEY_HEADER] = key
        return c

    @property
    def base_url(self) -> str:
        """base_url is the URL the API paths (/orgs/...) are appended to: host plus /api/v2."""
        h = self.host.rstrip("/")
        if not h.endswith(API_PREFIX):
            h += API_PREFIX
        return h

    def auth_headers(self) -> Dict[str, str]:
        """auth_headers returns the API key header(s) to send (both names when both are set)."""
        out: Dict[str, str] = {}
        for name in (API_KEY_HEADER, SIGNADOT_API_KEY_HEADER):
            key = self.api_key.get(name)
            if key:
                prefix = self.api_key_prefix.get(name)
                out[name] = f"{prefix} {key}" if prefix else key
        return out
