"""List filters of the queue."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..describe import describe_pipeline
from ..registry import registered
from ..reviewing import queue
from ..status import CheckpointStatus


class StatusFilter(admin.SimpleListFilter):
    """Status, showing pending items unless another status (or all) is chosen."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*((value, str(label)) for value, label in CheckpointStatus.choices), ("all", str(_("All")))]

    def value(self) -> str:
        return super().value() or CheckpointStatus.PENDING

    def choices(self, changelist: Any) -> Any:
        choices = super().choices(changelist)
        next(choices)  # the generic "All" link would show the default (pending) again; "all" replaces it
        yield from choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value == "all" else queryset.filter(status=value)


class _YesFilter(admin.SimpleListFilter):
    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", str(_("Yes")))]

    def condition(self, request: HttpRequest) -> Q:
        raise NotImplementedError  # pragma: no cover - subclasses must override

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(self.condition(request)).distinct()
        return queryset


class AssignedToMeFilter(_YesFilter):
    title = _("assigned to me")
    parameter_name = "assigned_to_me"

    def condition(self, request: HttpRequest) -> Q:
        return queue.assigned_to_me(request.user)


class ClaimedByMeFilter(_YesFilter):
    title = _("claimed by me")
    parameter_name = "claimed_by_me"

    def condition(self, request: HttpRequest) -> Q:
        return queue.claimed_by(request.user)


class UnclaimedFilter(_YesFilter):
    title = _("unclaimed")
    parameter_name = "unclaimed"

    def condition(self, request: HttpRequest) -> Q:
        return queue.unclaimed()


class OverdueFilter(_YesFilter):
    title = _("overdue")
    parameter_name = "overdue"

    def condition(self, request: HttpRequest) -> Q:
        return queue.overdue()


class PipelineFilter(admin.SimpleListFilter):
    """The registered pipelines, from code: no scan of the checkpoint table for its distinct names."""

    title = _("pipeline")
    parameter_name = "pipeline_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in registered()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(pipeline_name=value) if value else queryset


class StepFilter(admin.SimpleListFilter):
    """Steps that can pause: those declared with ``review=`` (of the chosen pipeline, or of all), from code."""

    title = _("step")
    parameter_name = "step"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        chosen = request.GET.get(PipelineFilter.parameter_name)
        pipelines = registered()
        if chosen:
            pipelines = {chosen: pipelines[chosen]} if chosen in pipelines else {}
        steps: set[str] = set()
        for pipeline in pipelines.values():
            steps.update(s["name"] for s in describe_pipeline(pipeline)["all_steps"] if s["review"] is not None)
        return [(step, step) for step in sorted(steps)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(step=value) if value else queryset
