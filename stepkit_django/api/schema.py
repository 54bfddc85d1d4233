"""The API's OpenAPI description: the error responses every operation may answer, and the headers of decisions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.pagination import CursorPagination
from rest_framework.serializers import Serializer

from . import serializers as s

__all__ = ["ERRORS", "ETAG", "IF_MATCH", "RERUN_ERRORS", "RUN_ERRORS", "StepkitAutoSchema", "decision"]


# Every operation may answer these; documented once so clients (and fuzzers) find them in the schema,
# with their bodies: s.ErrorSerializer ({"detail": "..."}) and s.ValidationErrorSerializer (field errors).
COMMON_ERRORS = {
    "400": 'Invalid input: a body mapping each field to its errors, or {"detail": ...}.',
    "401": "Not authenticated.",
    "403": "Not allowed.",
    "404": "Not found (or not in your queue), or a page past the end.",
    "503": "The database is unavailable; retry after the Retry-After seconds.",
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "required": True, "description": "Seconds to wait."}}


def error_body(code: str) -> type[Serializer[Any]]:
    """The serializer documenting the body of an error with this status code."""
    return s.ValidationErrorSerializer if code == "400" else s.ErrorSerializer


class StepkitAutoSchema(AutoSchema):
    """Adds the errors every operation may answer, with their bodies, to each operation's responses."""

    def get_paginated_name(self, serializer_name: str) -> str:
        # A page by cursor (the audit trail) has no count: it needs a component of its own, apart from the
        # numbered pages of the same items (a run's events).
        if isinstance(self._get_paginator(), CursorPagination):  # type: ignore[no-untyped-call]
            return f"CursorPaginated{serializer_name}List"
        return super().get_paginated_name(serializer_name)

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code, description in COMMON_ERRORS.items():
            if code not in responses:
                response = OpenApiResponse(error_body(code), description=description)
                responses[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    response, code, ["application/json"], direction
                )
                if code == "503":
                    responses[code]["headers"] = {**responses[code].get("headers", {}), **RETRY_AFTER}
        return responses


ERRORS = {
    400: OpenApiResponse(
        s.ValidationErrorSerializer, description="Invalid data; the body maps each field to its errors."
    ),
    403: OpenApiResponse(s.ErrorSerializer, description="Not allowed to review this checkpoint (or not logged in)."),
    404: OpenApiResponse(s.ErrorSerializer, description="No such checkpoint in your queue."),
    409: OpenApiResponse(
        s.ErrorSerializer, description="Conflict: already decided, claimed by someone else, or a stale version."
    ),
    412: OpenApiResponse(
        s.ErrorSerializer, description="The If-Match ETag does not match the checkpoint's current ETag."
    ),
}
#: The errors of cancelling or retrying a run (which takes no If-Match, so never answers 412).
RUN_ERRORS = {
    403: OpenApiResponse(s.ErrorSerializer, description="Not allowed to manage this run."),
    404: OpenApiResponse(s.ErrorSerializer, description="No such run among those you may see."),
    409: OpenApiResponse(s.ErrorSerializer, description="The run already ended (cancel) or has not failed (retry)."),
}
#: The errors of re-running from a checkpoint.
RERUN_ERRORS = {
    400: OpenApiResponse(
        s.ValidationErrorSerializer,
        description='Invalid edits, per key, as for a reviewer\'s edit ({"override_data": {"subject": ["..."]}}).',
    ),
    403: OpenApiResponse(s.ErrorSerializer, description="Only the run's starter or a run manager may re-run it."),
    404: OpenApiResponse(s.ErrorSerializer, description="No such checkpoint among the runs you may see."),
    409: OpenApiResponse(
        s.ErrorSerializer, description="The pipeline changed since the checkpoint was made and cannot take it up."
    ),
}
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The checkpoint's ETag as you saw it; refused with 412 if it changed since.",
)
#: The response header of a checkpoint's detail: its version, for If-Match.
ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    required=True,
    description="The checkpoint's current version; send it back as If-Match to decide on what you saw.",
)


def decision(serializer: type[Serializer[Any]], summary: str, *, body: bool = True) -> Callable[..., Any]:
    return extend_schema(
        summary=summary,
        request=serializer if body else None,
        parameters=[IF_MATCH, ETAG],
        responses={200: s.CheckpointDetailSerializer, **ERRORS},
    )
