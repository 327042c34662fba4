"""rest re-exports the exceptions where openapi-generator clients import them from.

Code written for Signadot's SDK does ``from signadot_sdk.rest import
ApiException``; ``from sandboxmesh_sdk.rest import ApiException`` works the same.
"""

from .exceptions import ApiException, OpenApiException

__all__ = ["ApiException", "OpenApiException"]
