"""Viewsets of the REST API. They stay thin: validate, call ``review``/``runner``, serialize."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import InterfaceError, OperationalError
from django.db.models import QuerySet
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ParseError, PermissionDenied, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from .. import review
from ..describe import describe_pipeline
from ..exceptions import (
    CheckpointError,
    InvalidAssignment,
    InvalidOverride,
    PipelineChanged,
    PipelineNotFound,
    ReviewConflict,
    ReviewMisconfigured,
    ReviewPermissionDenied,
    StepkitError,
)
from ..models import AuditEvent, Checkpoint, PipelineRun, approvals_count
from ..permissions import START_RUNS_PERMISSION
from ..registry import get_pipeline, registered
from ..runner import RunNotResumable
from ..runs import start_or_replay
from . import rows
from . import serializers as s
from .filters import AuditEventFilter, CheckpointFilter, RunFilter
from .parsers import StepkitJSONParser


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource changed or was already decided."
    default_code = "conflict"


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The If-Match ETag does not match the current version."
    default_code = "precondition_failed"


class StepkitPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
        # DRF falls back to the default for a page_size it cannot use; say so instead. The length
        # is checked before int(), which refuses more than 4,300 digits (ValueError, a 500).
        raw = request.query_params.get(self.page_size_query_param)
        usable = raw is None or (
            raw.isascii()
            and raw.isdigit()
            and len(raw) <= len(str(self.max_page_size))
            and 1 <= int(raw) <= self.max_page_size
        )
        if not usable:
            raise ValidationError({"page_size": [f"Use a whole number from 1 to {self.max_page_size}."]})
        return super().get_page_size(request)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        # DRF marks next/previous with OpenAPI 3.0's "nullable", which 3.1 ignores: null in 3.1's words.
        # Both are always sent (null on the first and last page).
        paginated: dict[str, Any] = super().get_paginated_response_schema(schema)
        paginated["required"] = sorted({*paginated.get("required", []), "next", "previous"})
        if not spectacular_settings.OAS_VERSION.startswith("3.0"):
            for link in paginated["properties"].values():
                if link.pop("nullable", False):
                    link["type"] = [link["type"], "null"]
        return paginated


class StrictOrderingFilter(OrderingFilter):
    """Ordering that refuses fields it does not offer (DRF's ignores them) with a 400."""

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        params = request.query_params.get(self.ordering_param)
        if params:
            fields = [param.strip() for param in params.split(",")]
            allowed = {name for name, _label in self.get_valid_fields(queryset, view, {"request": request})}
            unknown = [f for f in fields if f.lstrip("-") not in allowed]
            if unknown:
                offered = ", ".join(sorted(allowed))
                message = f"Unknown field(s): {', '.join(unknown)}. Use {offered}, with - for descending."
                raise ValidationError({self.ordering_param: [message]})
        return super().get_ordering(request, queryset, view)


def api_error(exc: Exception) -> Exception:
    """Translate the services' named exceptions into HTTP errors."""
    if isinstance(exc, InvalidOverride):
        errors = {("non_field_errors" if key == "__all__" else key): msgs for key, msgs in exc.errors.items()}
        return ValidationError({"override_data": errors})
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


class StepkitViewMixin:
    schema = StepkitAutoSchema()
    permission_classes = [IsAuthenticated]
    pagination_class = StepkitPagination
    parser_classes = [StepkitJSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        for key, values in request.query_params.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                raise ParseError("Query parameters must not contain NUL characters.")
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, (OperationalError, InterfaceError)):
            # The database is unreachable (restarting, failing over): tell clients to come back.
            response = Response(
                {"detail": "The database is unavailable; retry shortly."}, status=status.HTTP_503_SERVICE_UNAVAILABLE
            )
            response["Retry-After"] = "5"
            return response
        return super().handle_exception(api_error(exc))  # type: ignore[misc,no-any-return]

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        # No response may be framed (a framed page could trick a reviewer into a click),
        # whatever the project's middleware; as Django's xframe_options_deny, a header already
        # set is kept.
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        response.setdefault("X-Frame-Options", "DENY")
        return response


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


#: Actions that change a checkpoint through the review services.
DECISIONS = frozenset({"claim", "release", "edit", "approve", "reject", "reassign"})


def etag(checkpoint: Checkpoint) -> str:
    return f'"{checkpoint.pk}-{checkpoint.version}"'


def decision(serializer: type[Serializer[Any]], summary: str, *, body: bool = True) -> Callable[..., Any]:
    return extend_schema(
        summary=summary,
        request=serializer if body else None,
        parameters=[IF_MATCH, ETAG],
        responses={200: s.CheckpointDetailSerializer, **ERRORS},
    )


@extend_schema_view(
    list=extend_schema(summary="The review queue, oldest first"),
    retrieve=extend_schema(
        summary="One checkpoint with its context, editable keys, schema and approvals",
        parameters=[ETAG],
        responses={200: s.CheckpointDetailSerializer, 404: ERRORS[404]},
    ),
)
class CheckpointViewSet(StepkitViewMixin, viewsets.ReadOnlyModelViewSet[Checkpoint]):  # type: ignore[misc]
    """Checkpoints the user may review, or that belong to runs the user started."""

    filter_backends = [DjangoFilterBackend, StrictOrderingFilter]
    filterset_class = CheckpointFilter
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers a JSON 404
    ordering_fields = ["created_at", "expires_at", "updated_at"]
    ordering = ["created_at"]

    def get_queryset(self) -> QuerySet[Checkpoint]:
        queryset = Checkpoint.objects.for_user(self.request.user)
        if self.action == "list":
            # The queue page: no run join, no heavy columns, approvals counted in the same query.
            return queryset.annotate(approvals_total=approvals_count())
        if self.action in DECISIONS:
            # Only to find the checkpoint and check its ETag: the service reloads it, _respond() reads it back.
            return queryset
        # The assignments and approvals are read by rows.detail(), which skips what it knows is empty.
        return queryset.select_related("run", "claimed_by", "decided_by")

    def filter_queryset(self, queryset: Any) -> Any:
        # The queue's filters narrow the list (and claim-next); one checkpoint is found by its id alone.
        if self.action == "retrieve" or self.action in DECISIONS:
            return queryset
        return super().filter_queryset(queryset)

    def get_serializer_class(self) -> type[Serializer[Any]]:
        return s.CheckpointSerializer if self.action == "list" else s.CheckpointDetailSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The queue page is read far more than anything else: rows come from values(), not model
        # instances, and are shaped like CheckpointSerializer (which documents them).
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset.values(*rows.QUEUE_FIELDS))
        page_rows = list(page or [])
        return self.get_paginated_response(rows.queue_rows(page_rows))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        checkpoint = self.get_object()
        return self._respond(checkpoint)

    def _respond(self, checkpoint: Checkpoint) -> Response:
        # The instance a service returned holds its own write (status, version, claim, decision): only
        # the assignment and the approvals are read back. Not through get_queryset(): after a
        # reassignment the checkpoint may have left the caller's queue.
        response = Response(rows.detail(checkpoint))
        response["ETag"] = etag(checkpoint)
        return response

    def _if_match(self, request: Request, pk: uuid.UUID) -> int | None:
        """The version of this checkpoint named by If-Match (None without one, or for ``*``).

        412 when the header names no current version of it: its ETag cannot match then. A version
        is read only as an ETag writes it (canonical decimal, at most 63 bits): anything else,
        such as 5,000 digits that int() refuses or a database cannot compare, matches no ETag.
        """
        header = request.headers.get("If-Match")
        if not header:
            return None
        tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
        if "*" in tags:
            return None
        prefix, versions = f'"{pk}-', set()
        for tag in tags:
            version = tag.removeprefix(prefix).removesuffix('"')
            if not (tag.startswith(prefix) and tag.endswith('"') and version.isascii() and version.isdigit()):
                continue
            if len(version) <= len(str(2**63)) and int(version) < 2**63 and str(int(version)) == version:
                versions.add(int(version))
        if len(versions) > 1:  # several ETags of this checkpoint: the current one, if listed
            current = Checkpoint.objects.filter(pk=pk).values_list("version", flat=True).first()
            versions &= {current}
        if not versions:
            raise self._precondition_failed(pk)
        return versions.pop()

    def _precondition_failed(self, pk: uuid.UUID) -> PreconditionFailed:
        current = Checkpoint.objects.filter(pk=pk).only("pk", "version").first()
        return PreconditionFailed(f"The checkpoint changed: its ETag is now {etag(current)}." if current else None)

    def _decide(self, request: Request, serializer_class: type[Serializer[Any]], act: Callable[..., Any]) -> Response:
        # The service loads the checkpoint itself (once). The caller's queue and the If-Match
        # version are read only when the decision is refused, to answer in the same order as a
        # lookup first would: 404 outside the queue, then 412 for a stale ETag, then the refusal.
        try:
            pk = uuid.UUID(str(self.kwargs["pk"]))
        except ValueError:
            raise Http404 from None
        header_version = None
        try:
            header_version = self._if_match(request, pk)
            serializer = serializer_class(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            expected = data.pop("expected_version", None) or header_version
            if header_version is not None and expected != header_version and not self._at_version(pk, header_version):
                raise self._precondition_failed(pk)  # the body's version is checked by the service (409)
            checkpoint = act(pk, data, expected)
        except (APIException, StepkitError, ObjectDoesNotExist):
            if not self.get_queryset().filter(pk=pk).exists():
                raise Http404 from None
            if header_version is not None and not self._at_version(pk, header_version):
                raise self._precondition_failed(pk) from None
            raise
        return self._respond(checkpoint)

    @staticmethod
    def _at_version(pk: uuid.UUID, version: int) -> bool:
        return Checkpoint.objects.filter(pk=pk, version=version).exists()

    @decision(s.VersionSerializer, "Claim the checkpoint")
    @action(detail=True, methods=["post"])
    def claim(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request, s.VersionSerializer, lambda pk, d, v: review.claim(pk, request.user, expected_version=v)
        )

    @decision(s.VersionSerializer, "Release your claim")
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request, s.VersionSerializer, lambda pk, d, v: review.release(pk, request.user, expected_version=v)
        )

    @decision(s.EditSerializer, "Save edits to the data the run resumes with")
    @action(detail=True, methods=["post"])
    def edit(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request, s.EditSerializer, lambda pk, d, v: review.edit(pk, request.user, d["override_data"], v)
        )

    @decision(s.ApproveSerializer, "Approve (with optional edits); the last required approval resumes the run")
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request,
            s.ApproveSerializer,
            lambda pk, d, v: review.approve(pk, request.user, d["override_data"] or None, d["comment"], v),
        )

    @decision(s.RejectSerializer, "Reject; the run ends and runs nothing more")
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request, s.RejectSerializer, lambda pk, d, v: review.reject(pk, request.user, d["comment"], v)
        )

    @decision(s.ReassignSerializer, "Assign to other users and/or groups")
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request,
            s.ReassignSerializer,
            lambda pk, d, v: review.reassign(
                pk, request.user, to_users=d.get("to_users"), to_groups=d.get("to_groups"), expected_version=v
            ),
        )

    @extend_schema(
        summary="Claim the oldest unclaimed checkpoint you may review (filtered like the list)",
        request=None,
        parameters=[ETAG],
        responses={
            200: s.CheckpointDetailSerializer,
            204: OpenApiResponse(description="Nothing to claim."),
            400: ERRORS[400],
            403: ERRORS[403],
        },
    )
    @action(detail=False, methods=["post"], url_path="claim-next")
    def claim_next(self, request: Request) -> Response:
        # The list's filters on the bare table: claim_next() adds visibility and checks the permission.
        queue = self.filter_queryset(Checkpoint.objects.all())
        checkpoint = review.claim_next(request.user, queryset=queue)
        if checkpoint is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self._respond(checkpoint)


@extend_schema_view(
    list=extend_schema(summary="Runs you started or have a checkpoint of in your queue"),
    retrieve=extend_schema(summary="One run"),
    create=extend_schema(
        summary="Start a run of a registered pipeline",
        request=s.RunCreateSerializer,
        responses={
            201: s.RunSerializer,
            200: OpenApiResponse(s.RunSerializer, description="Replay of an idempotency key: the existing run."),
            400: ERRORS[400],
            403: OpenApiResponse(s.ErrorSerializer, description="Not allowed to start runs."),
            409: OpenApiResponse(
                s.ErrorSerializer,
                description="The idempotency key was used already, for another pipeline or for a run you may not see.",
            ),
        },
    ),
)
class RunViewSet(  # type: ignore[misc]
    StepkitViewMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[PipelineRun]
):
    serializer_class = s.RunSerializer
    lookup_value_regex = "[^/]+"
    filter_backends = [DjangoFilterBackend, StrictOrderingFilter]
    filterset_class = RunFilter
    ordering_fields = ["created_at", "updated_at"]
    ordering = ["-created_at"]

    def get_queryset(self) -> QuerySet[PipelineRun]:
        return (
            PipelineRun.objects.visible_to(self.request.user)
            .select_related("started_by")
            .prefetch_related("checkpoints")
        )

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not request.user.has_perm(START_RUNS_PERMISSION):
            raise PermissionDenied(f"You need the permission {START_RUNS_PERMISSION!r} to start runs.")
        serializer = s.RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run, created = start_or_replay(
            data["pipeline"], data["input"], user=request.user, idempotency_key=data["idempotency_key"]
        )
        # A replayed key answers with its run only to someone who may see it, and only for the same pipeline.
        visible = self.get_queryset().filter(pk=run.pk).first()
        if visible is None or (not created and run.pipeline_name != data["pipeline"]):
            raise Conflict("This idempotency key was already used for another run.")
        return Response(
            self.get_serializer(visible).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(summary="Cancel the run", request=None, responses={200: s.RunSerializer, **RUN_ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = review.cancel_run(self.get_object(), request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(
        summary="Retry a failed run from its last completed step",
        request=None,
        responses={200: s.RunSerializer, **RUN_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        run = review.retry_run(self.get_object(), request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(summary="The run's audit trail, oldest first", responses={200: s.AuditEventSerializer(many=True)})
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=StepkitPagination)
    def events(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        events = AuditEvent.objects.filter(run=run).select_related("actor").order_by("timestamp", "id")
        page: Any = self.paginate_queryset(events)  # type: ignore[arg-type]
        return self.get_paginated_response(s.AuditEventSerializer(page, many=True, context={"request": request}).data)


@extend_schema_view(
    list=extend_schema(summary="The audit trail you may see"),
    retrieve=extend_schema(summary="One audit event"),
)
class AuditEventViewSet(StepkitViewMixin, viewsets.ReadOnlyModelViewSet[AuditEvent]):  # type: ignore[misc]
    serializer_class = s.AuditEventSerializer
    lookup_value_regex = "[^/]+"
    filter_backends = [DjangoFilterBackend, StrictOrderingFilter]
    filterset_class = AuditEventFilter
    ordering_fields = ["timestamp"]
    ordering = ["timestamp", "id"]

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.visible_to(self.request.user).select_related("actor")


NAME = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The pipeline's name.")


class PipelineViewSet(StepkitViewMixin, viewsets.ViewSet):  # type: ignore[misc]
    """Registered pipelines with their steps and review settings."""

    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    serializer_class = s.PipelineSerializer
    pagination_class = None  # type: ignore[assignment]

    @extend_schema(summary="Registered pipelines", responses={200: s.PipelineSerializer(many=True)})
    def list(self, request: Request) -> Response:
        return Response([describe_pipeline(p) for p in registered().values()])

    @extend_schema(
        summary="One registered pipeline", parameters=[NAME], responses={200: s.PipelineSerializer, 404: ERRORS[404]}
    )
    def retrieve(self, request: Request, name: str | None = None) -> Response:
        try:
            pipeline = get_pipeline(name or "")
        except PipelineNotFound as exc:
            raise Http404(str(exc)) from exc
        return Response(describe_pipeline(pipeline))
