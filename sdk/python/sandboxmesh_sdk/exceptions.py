"""Typed errors of the SDK.

Every error answer of the control plane is ``{code, error, requestId, reason,
fields}``; ApiException carries it, and its subclasses name the common HTTP
statuses so callers can ``except NotFoundException``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Type

__all__ = [
    "OpenApiException",
    "ApiException",
    "BadRequestException",
    "UnauthorizedException",
    "ForbiddenException",
    "NotFoundException",
    "ConflictException",
    "QuotaExceededException",
    "ServiceException",
    "ApiTimeoutError",
    "ApiConnectionError",
    "ApiDecodeError",
    "FieldError",
]


class OpenApiException(Exception):
    """OpenApiException is the base of every exception of the SDK (the name openapi-generator clients use)."""


class FieldError:
    """FieldError is one invalid field of a request body: path (e.g. spec.forks[0].forkOf.name) and message."""

    __slots__ = ("path", "message")

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message

    def __repr__(self) -> str:
        return f"FieldError(path={self.path!r}, message={self.message!r})"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldError) and (self.path, self.message) == (other.path, other.message)

    def __hash__(self) -> int:
        return hash((self.path, self.message))


class ApiException(OpenApiException):
    """ApiException is an error answer of the API.

    status is the HTTP status, reason its phrase (as in openapi-generator
    clients); code, error_message, request_id, api_reason and fields come from
    the JSON error body; body is the raw body text and headers the response
    headers. method and url name the request.
    """

    def __init__(
        self,
        status: Optional[int] = None,
        reason: Optional[str] = None,
        body: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        method: str = "",
        url: str = "",
    ) -> None:
        self.status: Optional[int] = status
        self.reason: Optional[str] = reason
        self.body: Optional[str] = body
        self.headers: Dict[str, str] = dict(headers or {})
        self.method = method
        self.url = url
        self.code: Optional[int] = status
        self.error_message: str = ""
        self.api_reason: str = ""
        self.request_id: str = _header(self.headers, "X-Request-Id")
        self.fields: List[FieldError] = []
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            if isinstance(parsed.get("code"), int):
                self.code = parsed["code"]
            self.error_message = parsed["error"]
            if isinstance(parsed.get("reason"), str):
                self.api_reason = parsed["reason"]
            if isinstance(parsed.get("requestId"), str) and parsed["requestId"]:
                self.request_id = parsed["requestId"]
            for f in parsed.get("fields") or []:
                if isinstance(f, dict):
                    self.fields.append(FieldError(str(f.get("path", "")), str(f.get("message", ""))))
        elif body:
            self.error_message = body.strip()[:2000]
        super().__init__(str(self))

    def __str__(self) -> str:
        s = f"({self.status})"
        if self.method or self.url:
            s = f"{self.method} {self.url}: {s}".strip()
        if self.reason:
            s += f" {self.reason}"
        if self.error_message:
            s += f": {self.error_message}"
        if self.request_id:
            s += f" (request {self.request_id})"
        return s


def _header(headers: Mapping[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return ""


class BadRequestException(ApiException):
    """BadRequestException is a 400 answer: fields name what is invalid."""


class UnauthorizedException(ApiException):
    """UnauthorizedException is a 401 answer: the API key is missing, wrong or revoked."""


class ForbiddenException(ApiException):
    """ForbiddenException is a 403 answer."""


class NotFoundException(ApiException):
    """NotFoundException is a 404 answer (an org the key cannot see looks the same)."""


class ConflictException(ApiException):
    """ConflictException is a 409 answer (If-Match version mismatch, object in use...)."""


class QuotaExceededException(ApiException):
    """QuotaExceededException is a 429 answer: the org has its maximum of sandboxes."""


class ServiceException(ApiException):
    """ServiceException is a 5xx answer."""


class ApiTimeoutError(OpenApiException, TimeoutError):
    """ApiTimeoutError is raised by wait_until_ready when the deadline passes; last is the last object read."""

    def __init__(self, message: str, last: Any = None) -> None:
        super().__init__(message)
        self.last = last


class ApiConnectionError(OpenApiException, ConnectionError):
    """ApiConnectionError means no answer came: the control plane is unreachable or timed out."""

    def __init__(self, message: str, method: str = "", url: str = "") -> None:
        super().__init__(f"{method} {url}: {message}".strip())
        self.method = method
        self.url = url


class ApiDecodeError(OpenApiException, ValueError):
    """ApiDecodeError means a successful answer's body is not the JSON expected (e.g. a list cut short)."""

    def __init__(self, message: str, method: str = "", url: str = "") -> None:
        super().__init__(f"{method} {url}: {message}".strip())
        self.method = method
        self.url = url


_BY_STATUS: Dict[int, Type[ApiException]] = {
    400: BadRequestException,
    401: UnauthorizedException,
    403: ForbiddenException,
    404: NotFoundException,
    409: ConflictException,
    429: QuotaExceededException,
}


def exception_for(status: int) -> Type[ApiException]:
    """exception_for returns the ApiException subclass of an HTTP status."""
    if status >= 500:
        return ServiceException
    return _BY_STATUS.get(status, ApiException)
