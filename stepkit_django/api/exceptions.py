"""The API's errors: the HTTP errors of its own, and the services' named exceptions as HTTP errors."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError

from ..exceptions import (
    CheckpointError,
    InvalidAssignment,
    InvalidDecision,
    InvalidInput,
    InvalidOverride,
    PipelineChanged,
    PipelineNotFound,
    ReviewConflict,
    ReviewMisconfigured,
    ReviewPermissionDenied,
)
from ..execution.runner import RunNotResumable

__all__ = ["Conflict", "PreconditionFailed", "api_error"]


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The resource changed or was already decided.")
    default_code = "conflict"


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = _("The If-Match ETag does not match the current version.")
    default_code = "precondition_failed"


def api_error(exc: Exception) -> Exception:
    """Translate the services' named exceptions into HTTP errors."""
    if isinstance(exc, InvalidOverride):
        errors = {("non_field_errors" if key == "__all__" else key): msgs for key, msgs in exc.errors.items()}
        return ValidationError({"override_data": errors})
    if isinstance(exc, InvalidDecision):
        return ValidationError(exc.errors)
    if isinstance(exc, InvalidInput):
        errors = {("non_field_errors" if key == "__all__" else key): msgs for key, msgs in exc.errors.items()}
        return ValidationError({"input": errors})
    if isinstance(exc, InvalidAssignment):
        return ValidationError(
            {("non_field_errors" if key == "__all__" else key): msgs for key, msgs in exc.errors.items()}
        )
    if isinstance(exc, ReviewPermissionDenied):
        return PermissionDenied(str(exc))
    if isinstance(exc, (ReviewConflict, PipelineChanged, RunNotResumable)):
        return Conflict(str(exc))
    if isinstance(exc, ReviewMisconfigured):
        return ValidationError({"non_field_errors": [str(exc)]})
    if isinstance(exc, CheckpointError):
        return ValidationError({"input": [str(exc)]})
    if isinstance(exc, PipelineNotFound):
        return NotFound(str(exc))
    return exc
