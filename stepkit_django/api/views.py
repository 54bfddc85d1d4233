"""Viewsets of the REST API. They stay thin: find the object, check the request, call the services, serialize.

The policies live apart, one module each: :mod:`.exceptions` (the services' errors as
HTTP errors), :mod:`.pagination`, :mod:`.filters` (queue filters and strict ordering),
:mod:`.conditional` (ETag and If-Match), :mod:`.schema` (the OpenAPI description),
:mod:`.serializers` and :mod:`.parsers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from .. import pending_counts, permissions, review
from ..describe import describe_pipeline
from ..exceptions import PipelineNotFound
from ..models import AuditEvent, Checkpoint, PipelineRun, approvals_count
from ..registry import get_pipeline, registered
from ..runs import start_or_replay
from . import rows
from . import serializers as s
from .conditional import etag, if_match_version
from .exceptions import Conflict, api_error
from .filters import AuditEventFilter, CheckpointFilter, RunFilter, StrictOrderingFilter
from .pagination import CountedRows, StepkitPagination, TrailPagination
from .parsers import StepkitJSONParser
from .schema import ERRORS, ETAG, RERUN_ERRORS, RUN_ERRORS, StepkitAutoSchema, decision


class StepkitViewMixin:
    schema = StepkitAutoSchema()
    permission_classes = [IsAuthenticated]
    pagination_class = StepkitPagination
    parser_classes = [StepkitJSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        for key, values in request.query_params.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                raise ParseError(gettext("Query parameters must not contain NUL characters."))
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, (OperationalError, InterfaceError)):
            # The database is unreachable (restarting, failing over): tell clients to come back.
            response = Response(
                {"detail": gettext("The database is unavailable; retry shortly.")},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
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


#: Actions that change a checkpoint through the review services.
DECISIONS = frozenset({"claim", "release", "edit", "approve", "reject", "request_changes", "reassign"})


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
    ordering_fields = ["created_at", "expires_at", "updated_at", "title"]
    ordering = ["created_at"]

    def get_queryset(self) -> QuerySet[Checkpoint]:
        queryset = Checkpoint.objects.for_user(self.request.user)
        if self.action == "list":
            # The queue page: no run join, no heavy columns, approvals counted in the same query.
            return queryset.annotate(approvals_total=approvals_count())
        if self.action == "rerun":
            # The checkpoints of the runs the caller may see (run managers see all); the service says who may.
            runs = PipelineRun.objects.visible_to(self.request.user).values("pk")
            return Checkpoint.objects.filter(run_id__in=runs).only("pk")
        if self.action in DECISIONS:
            # Only to find the checkpoint and check its ETag: the service reloads it, _respond() reads it back.
            return queryset.only("pk", "version")
        # The assignments and approvals are read by rows.detail(), which skips what it knows is empty.
        return queryset.select_related("run", "claimed_by", "decided_by")

    def filter_queryset(self, queryset: Any) -> Any:
        # The queue's filters narrow the list (and claim-next); one checkpoint is found by its id alone.
        if self.action in ("retrieve", "rerun") or self.action in DECISIONS:
            return queryset
        return super().filter_queryset(queryset)

    def get_serializer_class(self) -> type[Serializer[Any]]:
        return s.CheckpointSerializer if self.action == "list" else s.CheckpointDetailSerializer

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The queue page is read far more than anything else: rows come from values(), not model
        # instances, and are shaped like CheckpointSerializer (which documents them).
        # Counted on the filtered table alone: the row's columns join the users' table for their names.
        queryset = self.filter_queryset(self.get_queryset())
        # Pending, of a pipeline and step at most: the count from the summary (PostgreSQL), else counted.
        total = pending_counts.count_for(
            request.user,
            request.query_params,
            pipeline="pipeline",
            step="step",
            ignored=("page", "page_size", "ordering"),
            pending_by_default=False,
        )
        source: Any = queryset if total is None else pending_counts.Counted(total)
        counted: Any = CountedRows(queryset.values(*rows.QUEUE_FIELDS), counted=source)  # a QuerySet to DRF
        page: Any = self.paginate_queryset(counted)
        page_rows = list(page or [])
        return self.get_paginated_response(rows.queue_rows(page_rows))

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        checkpoint = self.get_object()
        return self._respond(checkpoint)

    def _respond(self, checkpoint: Checkpoint) -> Response:
        # The instance a service returned holds its own write (status, version, claim, decision): only
        # the assignment and the approvals are read back. Not through get_queryset(): after a
        # reassignment the checkpoint may have left the caller's queue.
        response = Response(rows.detail(checkpoint, self.request.user))
        response["ETag"] = etag(checkpoint)
        return response

    def _decide(self, request: Request, serializer_class: type[Serializer[Any]], act: Callable[..., Any]) -> Response:
        """A decision in DRF's order: the checkpoint in the caller's queue (404), its If-Match (412),
        the body (400), then the service, which reloads it and decides (403, 409)."""
        checkpoint = self.get_object()
        header_version = if_match_version(request, checkpoint)
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        expected = data.pop("expected_version", None) or header_version
        return self._respond(act(checkpoint.pk, data, expected))

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

    @decision(
        s.ApproveSerializer,
        "Approve (with optional edits, and the choice when the checkpoint offers choices); "
        "the last required approval resumes the run",
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request,
            s.ApproveSerializer,
            lambda pk, d, v: review.approve(
                pk,
                request.user,
                d["override_data"] or None,
                d["comment"],
                v,
                choice=d["choices"] if d["choices"] is not None else d["choice"],
            ),
        )

    @decision(s.RejectSerializer, "Reject; the run ends and runs nothing more")
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request, s.RejectSerializer, lambda pk, d, v: review.reject(pk, request.user, d["comment"], v)
        )

    @decision(
        s.RequestChangesSerializer,
        "Request changes with a comment; the run runs the step (or an earlier one) again and pauses for a new revision",
    )
    @action(detail=True, methods=["post"], url_path="request-changes")
    def request_changes(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(
            request,
            s.RequestChangesSerializer,
            lambda pk, d, v: review.request_changes(
                pk,
                request.user,
                d["comment"],
                to_step=d["to_step"] or None,
                override_data=d["override_data"] or None,
                expected_version=v,
            ),
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
        summary="Re-run from this checkpoint: a new run takes up the pipeline after its step",
        description=(
            "The new run has the checkpoint's context with `override_data` merged in. It resumes right after "
            "the checkpoint's step when the checkpoint was approved with the same data; otherwise it pauses "
            "there for review again. The original run does not change."
        ),
        request=s.RerunSerializer,
        responses={201: s.RunSerializer, **RERUN_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk: str | None = None) -> Response:
        checkpoint = self.get_object()
        serializer = s.RerunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = review.rerun_from(checkpoint.pk, request.user, serializer.validated_data["override_data"])
        fresh = PipelineRun.objects.select_related("started_by").prefetch_related("checkpoints").get(pk=run.pk)
        return Response(s.RunSerializer(fresh, context={"request": request}).data, status=status.HTTP_201_CREATED)

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
            400: OpenApiResponse(
                s.ValidationErrorSerializer,
                description=(
                    "Invalid data: an unknown pipeline, or an input that cannot be stored or does not match the "
                    'pipeline\'s input schema, per key ({"input": {"amount": ["Enter a whole number."]}}).'
                ),
            ),
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
        permissions.check_start_runs(request.user)
        serializer = s.RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run, created = start_or_replay(
            data["pipeline"], data["input"], user=request.user, idempotency_key=data["idempotency_key"]
        )
        # A replayed key answers with its run only to someone who may see it, and only for the same pipeline.
        visible = self.get_queryset().filter(pk=run.pk).first()
        if visible is None or (not created and run.pipeline_name != data["pipeline"]):
            raise Conflict(gettext("This idempotency key was already used for another run."))
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
    list=extend_schema(
        summary="The audit trail you may see, oldest first, by cursor",
        description=(
            "Pages of events in time order, followed by their `next` and `previous` links (a `cursor`); "
            "there is no `count` and no page number: the trail grows without end, and a cursor costs the "
            "same on any page."
        ),
    ),
    retrieve=extend_schema(summary="One audit event"),
)
class AuditEventViewSet(StepkitViewMixin, viewsets.ReadOnlyModelViewSet[AuditEvent]):  # type: ignore[misc]
    serializer_class = s.AuditEventSerializer
    pagination_class = TrailPagination  # type: ignore[assignment]
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
