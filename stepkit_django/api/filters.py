"""django-filter FilterSets for the queue, runs and the audit trail."""

from __future__ import annotations

import datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request

from ..models import AuditEvent, Checkpoint, PipelineRun
from ..status import AuditAction, CheckpointStatus, RunStatus


def user_id(request: Any, name: str, value: str) -> int | None:
    """``"me"`` is the requesting user; anything else must be a user id (a positive 63-bit integer).

    Only ASCII digits, and at most 19 of them, checked before ``int()``: ``str.isdigit()`` also
    accepts digits ``int()`` refuses (``"²"``), ``int()`` refuses more than 4,300 digits, and a
    database refuses more than 63 bits. Each is a 400 on the field, never a 500.
    """
    if value == "me":
        user = getattr(request, "user", None)
        return int(user.pk) if user is not None and user.is_authenticated else None
    if not (value.isascii() and value.isdigit() and len(value) <= len(str(2**63)) and int(value) < 2**63):
        from rest_framework.exceptions import ValidationError

        raise ValidationError({name: [gettext('Use "me" or a numeric user id.')]})
    return int(value)


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time, compared in UTC (PostgreSQL refuses offsets beyond ±15:59)."""

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value is not None:
            try:
                value = value.astimezone(datetime.UTC)
            except (OverflowError, ValueError):
                from rest_framework.exceptions import ValidationError

                raise ValidationError({"detail": gettext("Date and time out of range.")}) from None
        return super().filter(qs, value)  # type: ignore[no-any-return]


class UserRefFilter(django_filters.CharFilter):
    """Accepts ``me`` or a numeric user id; anything else is a 400 with a field error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", '"me" or a user id')
        super().__init__(*args, **kwargs)


class StrictBooleanField(forms.Field):
    """``true``/``false`` (or ``1``/``0``, any case); anything else is a field error, not silently ignored."""

    widget = forms.TextInput
    TRUE, FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise forms.ValidationError(gettext('Use "true" or "false".'), code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class CheckpointFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=CheckpointStatus.choices)
    pipeline = django_filters.CharFilter(field_name="pipeline_name")
    step = django_filters.CharFilter()
    assigned_to = UserRefFilter(method="filter_assigned_to")
    claimed_by = UserRefFilter(method="filter_claimed_by")
    unclaimed = StrictBooleanFilter(method="filter_unclaimed", help_text="Pending and claimed by nobody.")
    overdue = StrictBooleanFilter(method="filter_overdue", help_text="Pending past its deadline.")
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=200,
        help_text="Words of the title or the summary (any case), or a run id; text in the context too "
        'when STEPKIT["SEARCH_CONTEXT"] is on.',
    )

    class Meta:
        model = Checkpoint
        fields = ["status", "pipeline", "step"]

    def filter_search(self, queryset: QuerySet[Checkpoint], name: str, value: str) -> QuerySet[Checkpoint]:
        return queryset.search(value)  # type: ignore[attr-defined,no-any-return]

    def _uid(self, name: str, value: str) -> int | None:
        return user_id(self.request, name, value)

    def filter_assigned_to(self, queryset: QuerySet[Checkpoint], name: str, value: str) -> QuerySet[Checkpoint]:
        uid = self._uid(name, value)
        return queryset.filter(Q(assigned_users=uid) | Q(assigned_groups__user=uid)).distinct()

    def filter_claimed_by(self, queryset: QuerySet[Checkpoint], name: str, value: str) -> QuerySet[Checkpoint]:
        return queryset.filter(claimed_by=self._uid(name, value))

    def filter_unclaimed(self, queryset: QuerySet[Checkpoint], name: str, value: bool) -> QuerySet[Checkpoint]:
        unclaimed = Q(status=CheckpointStatus.PENDING, claimed_by__isnull=True)
        return queryset.filter(unclaimed) if value else queryset.exclude(unclaimed)

    def filter_overdue(self, queryset: QuerySet[Checkpoint], name: str, value: bool) -> QuerySet[Checkpoint]:
        overdue = Q(status=CheckpointStatus.PENDING, expires_at__lt=timezone.now())
        return queryset.filter(overdue) if value else queryset.exclude(overdue)


class RunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    pipeline = django_filters.CharFilter(field_name="pipeline_name")
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = PipelineRun
        fields = ["status", "pipeline"]


class AuditEventFilter(django_filters.FilterSet):
    run = django_filters.UUIDFilter(field_name="run_id")
    checkpoint = django_filters.UUIDFilter(field_name="checkpoint_id")
    action = django_filters.ChoiceFilter(choices=AuditAction.choices)
    actor = UserRefFilter(method="filter_actor")
    pipeline = django_filters.CharFilter(field_name="pipeline_name")
    after = UTCDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    before = UTCDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["run", "checkpoint", "action", "actor", "pipeline"]

    def filter_actor(self, queryset: QuerySet[AuditEvent], name: str, value: str) -> QuerySet[AuditEvent]:
        return queryset.filter(actor_id=user_id(self.request, name, value))


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
                message = gettext("Unknown field(s): %(unknown)s. Use %(offered)s, with - for descending.") % {
                    "unknown": ", ".join(unknown),
                    "offered": offered,
                }
                raise ValidationError({self.ordering_param: [message]})
        return super().get_ordering(request, queryset, view)
