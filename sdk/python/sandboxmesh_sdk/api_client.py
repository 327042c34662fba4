"""ApiClient sends requests to the control plane with urllib (standard library only)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .configuration import Configuration
from .exceptions import ApiConnectionError, ApiDecodeError, exception_for

__all__ = ["ApiClient", "ApiResponse"]

#: MAX_ANSWER_BYTES bounds the size of an answer read into memory.
MAX_ANSWER_BYTES = 64 << 20

Query = Union[Mapping[str, Any], Sequence[Tuple[str, Any]]]


class ApiResponse:
    """ApiResponse is a successful answer: status, headers (lower-case names) and the raw body."""

    def __init__(self, status: int, headers: Dict[str, str], data: bytes, method: str = "", url: str = "") -> None:
        self.status = status
        self.headers = headers
        self.data = data
        self.method = method
        self.url = url

    def json(self) -> Any:
        """json decodes the body (None for an empty body); ApiDecodeError when it is not JSON."""
        if not self.data.strip():
            return None
        try:
            return json.loads(self.data.decode("utf-8"))
        except ValueError as e:
            raise ApiDecodeError(f"answer is not valid JSON ({e}); was it cut short?", self.method, self.url) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would resend the API key to another place: refuse it.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


class ApiClient:
    """ApiClient holds a Configuration and sends requests; the *Api classes use it.

    header_name/header_value add one header to every request (as in
    openapi-generator clients). It is a context manager for symmetry with
    those clients; it keeps no open connections.
    """

    def __init__(
        self,
        configuration: Optional[Configuration] = None,
        header_name: Optional[str] = None,
        header_value: Optional[str] = None,
    ) -> None:
        self.configuration = configuration or Configuration()
        self.default_headers: Dict[str, str] = dict(self.configuration.default_headers)
        if header_name is not None and header_value is not None:
            self.default_headers[header_name] = header_value
        handlers: List[Any] = [_NoRedirect()]
        if self.configuration.base_url.startswith("https:"):
            ctx = ssl.create_default_context(cafile=self.configuration.ssl_ca_cert)
            if not self.configuration.verify_ssl:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        self._opener = urllib.request.build_opener(*handlers)

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """close releases nothing today (each request has its own connection); kept for compatibility."""

    def set_default_header(self, name: str, value: str) -> None:
        """set_default_header adds a header to every request."""
        self.default_headers[name] = value

    @staticmethod
    def path(*segments: str) -> str:
        """path joins URL path segments, escaping each one (a name cannot add a segment)."""
        return "".join("/" + urllib.parse.quote(str(s), safe="") for s in segments)

    def call_api(
        self,
        method: str,
        path: str,
        query: Optional[Query] = None,
        body: Any = None,
        headers: Optional[Mapping[str, str]] = None,
        _request_timeout: Optional[float] = None,
    ) -> ApiResponse:
        """call_api sends method path (below /api/v2) and returns the answer.

        body is JSON-encoded (Models via to_dict). An error answer raises the
        ApiException subclass of its status; no answer raises ApiConnectionError.
        """
        cfg = self.configuration
        url = cfg.base_url + path
        if query:
            items = list(query.items()) if isinstance(query, Mapping) else list(query)
            items = [(k, v) for k, v in items if v is not None]
            if items:
                url += "?" + urllib.parse.urlencode(items)
        data: Optional[bytes] = None
        hdrs: Dict[str, str] = {"Accept": "application/json", "User-Agent": cfg.user_agent}
        hdrs.update(self.default_headers)
        hdrs.update(cfg.auth_headers())
        if body is not None:
            if hasattr(body, "to_dict"):
                body = body.to_dict()
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        timeout = cfg.timeout if _request_timeout is None else _request_timeout
        shown = _redact(url)
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                raw = _read_bounded(resp, MAX_ANSWER_BYTES)
                if raw is None:
                    raise ApiConnectionError(f"answer larger than {MAX_ANSWER_BYTES} bytes", method, shown)
                want = resp.headers.get("Content-Length")
                if want is not None and want.isdigit() and int(want) != len(raw):
                    raise ApiConnectionError(f"answer cut short: {len(raw)} of {want} bytes", method, shown)
                return ApiResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, raw, method, shown)
        except ApiConnectionError:
            raise
        except urllib.error.HTTPError as e:
            try:
                text = (_read_bounded(e, 1 << 20) or b"").decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - a broken error body must not hide the status
                text = ""
            hdr = {k: v for k, v in (e.headers.items() if e.headers else [])}
            raise exception_for(e.code)(status=e.code, reason=str(e.reason), body=text, headers=hdr, method=method, url=shown) from None
        except urllib.error.URLError as e:
            raise ApiConnectionError(str(e.reason), method, shown) from e
        except (socket.timeout, TimeoutError) as e:
            raise ApiConnectionError(f"timed out after {timeout}s", method, shown) from e
        except (OSError, http.client.HTTPException) as e:  # refused, reset, cut short
            raise ApiConnectionError(f"{type(e).__name__}: {e}", method, shown) from e


def _read_bounded(f: Any, limit: int) -> Optional[bytes]:
    """_read_bounded reads f to its end in chunks; None when it holds more than limit bytes.

    (One read(limit) would allocate limit bytes at once on Python 3.9.)
    """
    buf = bytearray()
    while True:
        chunk = f.read(64 << 10)
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            return None


def _redact(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    if u.username or u.password:
        netloc = u.hostname or ""
        if u.port:
            netloc += f":{u.port}"
        u = u._replace(netloc=netloc)
    return urllib.parse.urlunsplit(u)
