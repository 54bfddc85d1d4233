"""Read-only admin for runs and the audit trail, with cancel and retry actions and reruns from a checkpoint."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from .. import permissions, retention, review
from ..audit import redacted
from ..exceptions import StepkitError
from ..models import AuditEvent, Checkpoint, PipelineRun, QueueOverview
from ..reviewing.trail import describe_event, event_html
from ..sentences import local_time
from ..status import RunStatus
from . import pipelines

MANAGE_PERMISSION = permissions.MANAGE_RUNS_PERMISSION


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventDetailsMixin:
    """The ``details`` column of audit events (the sentence, edits, note and the rest of the data): failure
    messages only in ``full_details`` (see get_fields)."""

    @admin.display(description=_("details"))
    def details(self, obj: AuditEvent) -> str:
        return self._details(obj, full=False)

    @admin.display(description=_("details"))
    def full_details(self, obj: AuditEvent) -> str:
        return self._details(obj, full=True)

    def _details(self, obj: AuditEvent, *, full: bool) -> str:
        raise NotImplementedError


class AuditEventInline(EventDetailsMixin, ReadOnlyMixin, admin.TabularInline):
    """The run's audit trail, oldest first: each event's time and sentence, with edits as word-level differences."""

    model = AuditEvent
    fk_name = "run"
    extra = 0
    can_delete = False
    ordering = ["timestamp", "id"]
    fields = ["when", "details"]
    readonly_fields = ["when", "details", "full_details"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return super().get_queryset(request).select_related("actor")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Failure messages in full only for those who may read them (permissions.can_see_failure_details).
        full = permissions.can_see_failure_details(request.user)
        return ["when", "full_details" if full else "details"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # whoever may see the run may see its trail
        return True

    @admin.display(description=_("time"))
    def when(self, obj: AuditEvent) -> str:
        return format_html(
            '<time datetime="{}">{}</time>', timezone.localtime(obj.timestamp).isoformat(), local_time(obj.timestamp)
        )

    def _details(self, obj: AuditEvent, *, full: bool) -> str:
        return event_html(describe_event(obj, full=full))


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ["stepkit_django/admin.css"]}  # links in text underlined (Django 5.2 does not)

    list_display = ["short_id", "pipeline_name", "status", "started_by", "current_step", "created_at", "duration"]
    list_filter = ["status", "pipeline_name", "created_at"]
    search_fields = ["id", "idempotency_key"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    list_select_related = ["started_by"]
    actions = ["cancel_runs", "retry_runs", "erase_runs"]
    inlines = [AuditEventInline]
    fieldsets = [
        (None, {"fields": ["id", "pipeline_name", "pipeline_version", "status", "started_by", "idempotency_key"]}),
        (_("Progress"), {"fields": ["current_step", "position", "input", "context"]}),
        (_("Timing"), {"fields": ["created_at", "started_at", "finished_at", "duration"]}),
        (_("Failure"), {"fields": ["error", "traceback"], "classes": ["collapse"]}),
    ]
    readonly_fields = [
        "id",
        "pipeline_name",
        "pipeline_version",
        "status",
        "started_by",
        "idempotency_key",
        "current_step",
        "position",
        "input",
        "context",
        "created_at",
        "started_at",
        "finished_at",
        "duration",
        "error",
        "traceback",
        "failure",
        "rerun_of",
    ]

    change_form_template = "admin/stepkit_django/pipelinerun/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[PipelineRun]:
        return PipelineRun.objects.visible_to(request.user)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(self.fieldsets)
        if obj is not None and obj.forked_from_id:
            first = fieldsets[0][1]["fields"]
            fieldsets[0] = (None, {"fields": [*first[:1], "rerun_of", *first[1:]]})
        if permissions.can_see_failure_details(request.user):
            return fieldsets
        # The message and the traceback may quote personal data: others see the failed step and the type.
        return [*fieldsets[:-1], (_("Failure"), {"fields": ["failure"], "classes": ["collapse"]})]

    @admin.display(description=_("rerun of"))
    def rerun_of(self, obj: PipelineRun) -> str:
        checkpoint = obj.forked_from
        if checkpoint is None:
            return "—"
        review_url = reverse("admin:stepkit_django_checkpoint_change", args=[checkpoint.pk])
        run_url = reverse("admin:stepkit_django_pipelinerun_change", args=[checkpoint.run_id])
        return format_html(
            gettext("Rerun of {checkpoint} of run {run}"),
            checkpoint=format_html('<a href="{}">{}</a>', review_url, checkpoint.title or checkpoint.step),
            run=format_html('<a href="{}">{}</a>', run_url, str(checkpoint.run_id)[:8]),
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if run is not None:
            # Each review item of the run, with a "Rerun from here" button for those who may (permissions.py).
            extra["rerun_checkpoints"] = list(run.checkpoints.order_by("created_at", "pk"))
            extra["can_rerun"] = permissions.can_rerun(run, request.user)
        return super().change_view(request, object_id, form_url, extra)

    def rerun_view(self, request: HttpRequest, object_id: str, checkpoint_id: str) -> HttpResponse:
        """POST: re-run the run from one of its checkpoints (review.rerun_from); to the new run's page."""
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404(gettext("No run %(id)s among those you may see.") % {"id": object_id})
        checkpoint = get_object_or_404(Checkpoint, pk=checkpoint_id, run=run)
        back = reverse("admin:stepkit_django_pipelinerun_change", args=[run.pk])
        try:
            new_run = review.rerun_from(checkpoint, request.user)
        except StepkitError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(back)
        url = reverse("admin:stepkit_django_pipelinerun_change", args=[new_run.pk])
        text = (
            gettext("Started run {run}, a rerun from step {step}.")
            if new_run.status != RunStatus.PAUSED
            else gettext("Started run {run}, a rerun from step {step}; it waits for the review of that step.")
        )
        link = format_html('<a href="{}">{}</a>', url, str(new_run.pk)[:8])
        self.message_user(request, format_html(text, run=link, step=checkpoint.step), messages.SUCCESS)
        return HttpResponseRedirect(url)

    @admin.display(description=_("failure"))
    def failure(self, obj: PipelineRun) -> str:
        if not obj.error:
            return "—"
        return gettext("%(type)s after step %(step)s (ask a run manager for the details)") % {
            "type": permissions.error_type(obj.error),
            "step": obj.current_step or "—",
        }

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Reviewers, and those who start runs (they see the runs they started: get_queryset)
        user = request.user
        return (
            user.has_perm(permissions.REVIEW_PERMISSION)
            or permissions.can_start_runs(user)
            or super().has_view_permission(request, obj)
        )

    def has_manage_permission(self, request: HttpRequest) -> bool:
        # Offered to whoever sees runs; the services decide per run (its starter, or MANAGE_PERMISSION),
        # as in the API, and the message names the runs they refused.
        return self.has_view_permission(request)

    def get_urls(self) -> list[Any]:
        rerun = path(
            "<path:object_id>/rerun/<uuid:checkpoint_id>/",
            self.admin_site.admin_view(require_POST(self.rerun_view)),
            name="stepkit_django_pipelinerun_rerun",
        )
        # the pipelines pages (admin/pipelines.py)
        return [*pipelines.urls(self), rerun, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra = {"pipelines_url": pipelines.pipelines_url(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    @admin.display(description=_("run"), ordering="id")
    def short_id(self, obj: PipelineRun) -> str:
        return str(obj.pk)[:8]

    @admin.display(description=_("duration"))
    def duration(self, obj: PipelineRun) -> str:
        if obj.started_at is None:
            return "—"
        end = obj.finished_at or obj.updated_at
        return gettext("%(seconds)s s") % {"seconds": number_format((end - obj.started_at).total_seconds(), 3)}

    def _bulk(self, request: HttpRequest, queryset: QuerySet[PipelineRun], done_text: str, act: Any) -> None:
        """Apply ``act`` to each run; ``done_text`` says how many were done, with ``%(done)d`` and ``%(total)d``."""
        done, refused = 0, []
        for run in queryset:
            try:
                act(run, request.user)
                done += 1
            except StepkitError as exc:
                refused.append(f"{str(run.pk)[:8]}: {exc}")
        text = done_text % {"done": done, "total": done + len(refused)}
        if refused:
            text += " " + gettext("Not done: %(runs)s") % {"runs": "; ".join(refused)}
        self.message_user(request, text, messages.SUCCESS if not refused else messages.WARNING)

    @admin.action(description=_("Cancel selected runs"), permissions=["manage"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[PipelineRun]) -> None:
        self._bulk(request, queryset, gettext("Cancelled %(done)d of %(total)d run(s)."), review.cancel_run)

    @admin.action(description=_("Retry selected failed runs"), permissions=["manage"])
    def retry_runs(self, request: HttpRequest, queryset: QuerySet[PipelineRun]) -> None:
        self._bulk(request, queryset, gettext("Retried %(done)d of %(total)d run(s)."), review.retry_run)

    @admin.action(description=_("Erase the personal data of selected ended runs"), permissions=["manage"])
    def erase_runs(self, request: HttpRequest, queryset: QuerySet[PipelineRun]) -> None:
        self._bulk(request, queryset, gettext("Erased the data of %(done)d of %(total)d run(s)."), retention.erase)


@admin.register(AuditEvent)
class AuditEventAdmin(EventDetailsMixin, ReadOnlyMixin, admin.ModelAdmin):
    class Media:
        css = {"all": ["stepkit_django/admin.css"]}  # links in text underlined (Django 5.2 does not)

    list_display = ["timestamp", "action", "actor", "pipeline_name", "run_link", "checkpoint_link", "details"]
    list_filter = ["action", ("actor", admin.RelatedOnlyFieldListFilter), "pipeline_name", "timestamp"]
    date_hierarchy = "timestamp"
    ordering = ["-timestamp", "-id"]
    list_select_related = ["actor"]
    search_fields = ["run__id", "note"]
    readonly_fields = ["timestamp", "action", "actor", "pipeline_name", "run", "checkpoint", "data", "note"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return AuditEvent.objects.visible_to(request.user)

    def get_list_display(self, request: HttpRequest) -> Any:
        if permissions.can_see_failure_details(request.user):
            return [*self.list_display[:-1], "full_details"]
        return self.list_display

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if permissions.can_see_failure_details(request.user):
            return self.readonly_fields
        return [name if name != "data" else "visible_data" for name in self.readonly_fields]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return user.has_perm(permissions.REVIEW_PERMISSION) or super().has_view_permission(request, obj)

    @admin.display(description=_("run"))
    def run_link(self, obj: AuditEvent) -> str:
        url = reverse("admin:stepkit_django_pipelinerun_change", args=[obj.run_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.run_id)[:8])

    @admin.display(description=_("checkpoint"))
    def checkpoint_link(self, obj: AuditEvent) -> str:
        if obj.checkpoint_id is None:
            return "—"
        url = reverse("admin:stepkit_django_checkpoint_change", args=[obj.checkpoint_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.checkpoint_id)[:8])

    @admin.display(description=_("data"))
    def visible_data(self, obj: AuditEvent) -> str:
        return json.dumps(redacted(obj.data or {}, full=False), indent=2, sort_keys=True, cls=DjangoJSONEncoder)

    def _details(self, obj: AuditEvent, *, full: bool) -> str:
        return event_html(describe_event(obj, full=full))


@admin.register(QueueOverview)
class QueueOverviewAdmin(admin.ModelAdmin):
    """The admin index entry of the queue overview page."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(permissions.REVIEW_PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return HttpResponseRedirect(reverse("admin:stepkit_django_checkpoint_overview"))
