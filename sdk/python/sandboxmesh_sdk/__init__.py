"""sandboxmesh_sdk is the Python SDK of the SandboxMesh control plane (/api/v2).

Standard library only. Its names are those of Signadot's generated Python SDK
(Configuration, ApiClient, SandboxesApi, RouteGroupsApi, ClustersApi and the
Sandbox* models), so existing scripts change their import, base URL and key:

    from sandboxmesh_sdk import ApiClient, Configuration, SandboxesApi
    cfg = Configuration(host="http://localhost:8080")
    cfg.api_key["sandboxmesh-api-key"] = "smk_..."
    sandboxes = SandboxesApi(ApiClient(cfg))

See docs/python-sdk.md.
"""

from .api import PAGE_SIZE, ClustersApi, Page, RouteGroupsApi, SandboxesApi
from .api_client import ApiClient, ApiResponse
from .configuration import API_KEY_HEADER, SIGNADOT_API_KEY_HEADER, Configuration
from .exceptions import (
    ApiConnectionError,
    ApiDecodeError,
    ApiException,
    ApiTimeoutError,
    BadRequestException,
    ConflictException,
    FieldError,
    ForbiddenException,
    NotFoundException,
    OpenApiException,
    QuotaExceededException,
    ServiceException,
    UnauthorizedException,
)
from .models import (
    Cluster,
    ClusterOperator,
    ClusterToken,
    ClusterTokenStatus,
    Model,
    RouteGroup,
    RouteGroupEndpoint,
    RouteGroupMatch,
    RouteGroupMatcher,
    RouteGroupMatchLabel,
    RouteGroupSpec,
    RouteGroupSpecEndpoint,
    RouteGroupStatus,
    Sandbox,
    SandboxCustomizations,
    SandboxCustomPatch,
    SandboxDefaultRouteGroup,
    SandboxEndpoint,
    SandboxEnvVar,
    SandboxFork,
    SandboxForkEndpoint,
    SandboxForkOf,
    SandboxForkStatus,
    SandboxImage,
    SandboxSpec,
    SandboxStatus,
    SandboxTTL,
)

__version__ = "0.1.0"

__all__ = [
    "API_KEY_HEADER",
    "PAGE_SIZE",
    "SIGNADOT_API_KEY_HEADER",
    "ApiClient",
    "ApiConnectionError",
    "ApiDecodeError",
    "ApiException",
    "ApiResponse",
    "ApiTimeoutError",
    "BadRequestException",
    "Cluster",
    "ClusterOperator",
    "ClusterToken",
    "ClusterTokenStatus",
    "ClustersApi",
    "Configuration",
    "ConflictException",
    "FieldError",
    "ForbiddenException",
    "Model",
    "NotFoundException",
    "OpenApiException",
    "Page",
    "QuotaExceededException",
    "RouteGroup",
    "RouteGroupEndpoint",
    "RouteGroupMatch",
    "RouteGroupMatchLabel",
    "RouteGroupMatcher",
    "RouteGroupSpec",
    "RouteGroupSpecEndpoint",
    "RouteGroupStatus",
    "RouteGroupsApi",
    "Sandbox",
    "SandboxCustomPatch",
    "SandboxCustomizations",
    "SandboxDefaultRouteGroup",
    "SandboxEndpoint",
    "SandboxEnvVar",
    "SandboxFork",
    "SandboxForkEndpoint",
    "SandboxForkOf",
    "SandboxForkStatus",
    "SandboxImage",
    "SandboxSpec",
    "SandboxStatus",
    "SandboxTTL",
    "SandboxesApi",
    "ServiceException",
    "UnauthorizedException",
]
