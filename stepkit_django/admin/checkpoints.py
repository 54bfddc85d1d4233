"""The review queue in the admin: the Checkpoint changelist and the review page."""

from __future__ import annotations

from typing import Any

import django
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import OrderBy, QuerySet, prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_deny

from .. import pending_counts, permissions, quorum
from ..conf import settings
from ..exceptions import ReviewConflict
from ..models import PENDING_FIRST, Checkpoint, approvals_count
from ..review_spec import default_title
from ..reviewing.actions import claim_next, following_item, handle_post
from ..reviewing.display import due_in, duration
from ..reviewing.forms import ReassignForm, ReviewForm
from ..reviewing.page import PAGE_RELATED, heading, page_context, review_forms
from .bulk import decide_selected
from .filters import (
    AssignedToMeFilter,
    ClaimedByMeFilter,
    OverdueFilter,
    PipelineFilter,
    StatusFilter,
    StepFilter,
    UnclaimedFilter,
)
from .notifications import failed_notifications, notification_rows
from .overview import overview_context
from .pipelines import pipelines_url

REVIEW_PERMISSION = permissions.REVIEW_PERMISSION


def _change_url(checkpoint: Checkpoint) -> str:
    return reverse("admin:stepkit_django_checkpoint_change", args=[checkpoint.pk])


class QueueChangeList(ChangeList):
    """The queue page's rows without what it does not show: the run, the contexts and the token."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = gettext("Review queue")  # not Django's "Select review item to change"

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Checkpoint]:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.select_related(None).select_related("claimed_by").defer(*QUEUE_DEFERRED)


#: The hidden field of each queue row holding the version it was listed at (followed by the checkpoint's id).
VERSION_FIELD = "version-"


def _listed_version(request: HttpRequest, checkpoint: Checkpoint) -> int:
    """The version ``checkpoint`` had when the queue page listed it: a bulk decision is about that data.

    ReviewConflict when the page did not list it (selected "across all pages"): open it first.
    """
    raw = request.POST.get(f"{VERSION_FIELD}{checkpoint.pk}", "")
    if not (raw.isascii() and raw.isdigit() and len(raw) < 19):
        raise ReviewConflict(gettext("Open it to see its data before deciding it; it was not on the page you saw."))
    return int(raw)


#: Columns the queue page leaves unread (a context may be large; 50 rows of it make a slow page).
QUEUE_DEFERRED = ("context", "override_data", "token", "comment")

#: The longest search term the queue takes (a longer one is cut, with a message).
MAX_SEARCH_LENGTH = 200


def pending_first() -> OrderBy:
    """An ordering: pending items before the others (the queue under "All"), as the index has it."""
    return PENDING_FIRST.asc()


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    # Few columns, so that the queue fits 1280 pixels beside the admin's navigation and the filters: the
    # pipeline and step are under the title, the claim under the assignees, the status only under "All".
    list_display = ["item", "status", "age", "expires_in", "assigned_to", "approvals"]
    list_display_links = ["item"]
    list_filter = [
        StatusFilter,
        PipelineFilter,
        StepFilter,
        AssignedToMeFilter,
        ClaimedByMeFilter,
        UnclaimedFilter,
        OverdueFilter,
    ]
    # get_search_results() searches (Checkpoint.objects.search): titles, summaries, run ids; the admin
    # shows its search box when there are search fields.
    search_fields = ["title"]
    # No date hierarchy: reviewers sort by waiting time; its queries over the whole visible queue cost more
    # than the page itself (reviewer queue p95 79 → 41 ms, "All" 75 → 30 ms at 100,000 checkpoints).
    date_hierarchy = None
    # Facet counts on demand ("Show counts"): on a large queue, counting every filter value on every page load
    # costs more than the page itself.
    show_facets = admin.ShowFacets.ALLOW
    show_full_result_count = False
    ordering = ["created_at"]
    list_per_page = 50
    actions = ["approve_selected", "reject_selected"]
    review_template = "admin/stepkit_django/checkpoint/review.html"
    overview_template = "admin/stepkit_django/overview.html"

    # -- permissions: the review services decide; the admin only gates access ----------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION) or super().has_view_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    # -- the changelist -------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Checkpoint]:
        return (
            Checkpoint.objects.for_user(request.user)
            .select_related("run", "claimed_by")
            .annotate(approvals_total=approvals_count())
        )

    def get_paginator(
        self, request: HttpRequest, queryset: Any, per_page: int, orphans: int = 0, allow_empty_first_page: bool = True
    ) -> Any:
        # The default view (pending, of a pipeline and step at most): the count from the summary (PostgreSQL).
        total = pending_counts.count_for(
            request.user,
            request.GET,
            pipeline="pipeline_name",
            step="step",
            ignored=("o", "p"),
            pending_by_default=True,
        )
        if total is None:
            return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        return pending_counts.CountedPaginator(queryset, per_page, orphans, allow_empty_first_page, total=total)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return QueueChangeList

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        # The assignments of the page's checkpoints that may have some: two queries, or none for a
        # page of checkpoints created assigned to nobody (the usual queue).
        assignable = [checkpoint for checkpoint in changelist.result_list if checkpoint.assigned]
        prefetch_related_objects(assignable, "assigned_users", "assigned_groups")
        # The approvals of items with a per-group quorum, whose column shows each group's count: one query.
        grouped = [checkpoint for checkpoint in changelist.result_list if checkpoint.approvals_by_group]
        prefetch_related_objects(grouped, "approvals")
        return changelist

    @property
    def search_help_text(self) -> str:  # type: ignore[override]  # read when the page is built: the setting may change
        if settings.SEARCH_CONTEXT:
            return gettext("Words of a title or a summary, text anywhere in the data, or a run id.")
        return gettext("Words of a title or a summary, or a run id.")

    def get_list_display(self, request: HttpRequest) -> Any:
        # Under one status (pending, by default) every row has it: the column only takes room from the titles.
        if request.GET.get(StatusFilter.parameter_name) == "all":
            return list(self.list_display)
        return [name for name in self.list_display if name != "status"]

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        if request.GET.get(StatusFilter.parameter_name) == "all":
            return [pending_first(), "created_at"]
        return list(self.ordering or ())

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Checkpoint], search_term: str
    ) -> tuple[QuerySet[Checkpoint], bool]:
        term = search_term.strip()  # Django's search form refuses NUL characters already, with a message
        if len(term) > MAX_SEARCH_LENGTH:
            limit = {"limit": MAX_SEARCH_LENGTH}
            self.message_user(
                request, gettext("Searched for the first %(limit)d characters only.") % limit, messages.WARNING
            )
            term = term[:MAX_SEARCH_LENGTH]
        return queryset.search(term), False  # type: ignore[attr-defined]

    def action_checkbox(self, obj: Checkpoint) -> SafeString:
        # Django's renders a form widget through the template engine for each row: a fifth of the
        # changelist's time at 50 rows. The same markup, formatted directly.
        # With the version shown, so that a bulk decision applies only to the data as it was listed.
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">'
            '<input type="hidden" name="{}" value="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
            f"{VERSION_FIELD}{obj.pk}",
            obj.version,
        )

    @admin.display(description=_("title"), ordering="title")
    def item(self, obj: Checkpoint) -> SafeString:
        """The title, with the pipeline and step and the summary in small text under it."""
        where = f"{obj.pipeline_name} · {obj.step}"
        # Names break after their hyphens; a nested step's path after its slashes.
        where_html = format_html_join(mark_safe("/<wbr>"), "{}", ((part,) for part in where.split("/")))
        details = format_html_join(
            "", '<span class="stepkit-summary-item">{}: <strong>{}</strong></span>', obj.summary.items()
        )
        return format_html(
            '{}<br><span class="stepkit-summary"><span class="stepkit-summary-item stepkit-where">{}</span>{}</span>',
            obj.title or default_title(obj.pipeline_name, obj.step),
            where_html,
            details,
        )

    @admin.display(description=_("waiting"), ordering="created_at")
    def age(self, obj: Checkpoint) -> str:
        return duration(timezone.now() - obj.created_at)

    @admin.display(description=_("due in"), ordering="expires_at")
    def expires_in(self, obj: Checkpoint) -> str:
        return due_in(obj, timezone.now()) or "—"

    @admin.display(description=_("assigned to"))
    def assigned_to(self, obj: Checkpoint) -> str:
        """The assignees, and under them who claimed it (one column: both say who has the item)."""
        if not obj.assigned:  # created assigned to nobody, and nobody since
            assignees = "—"
        else:
            names = [g.name for g in obj.assigned_groups.all()] + [u.get_username() for u in obj.assigned_users.all()]
            # Created with assignees who were all deleted since: it stays restricted until someone reassigns it.
            assignees = ", ".join(names) or gettext("nobody: its assignees were deleted (reassign it)")
        if obj.claimed_by_id is None or obj.claimed_by is None:
            return assignees
        claimed = gettext("claimed by %(user)s") % {"user": obj.claimed_by.get_username()}
        return format_html('{}<br><span class="stepkit-claim">{}</span>', assignees, claimed)

    @admin.display(description=_("approvals"))
    def approvals(self, obj: Checkpoint) -> str:
        if obj.approvals_by_group:
            return quorum.describe(quorum.progress_of(obj))  # "legal 1/1 · finance 0/1"
        return f"{getattr(obj, 'approvals_total', 0)}/{obj.approvals_required}"

    # -- bulk actions: a confirmation page, then each item through the services on its own ------

    version_field = VERSION_FIELD

    @admin.action(description=_("Approve selected items"), permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Checkpoint]) -> TemplateResponse | None:
        return decide_selected(self, request, queryset, "approve", _listed_version)

    @admin.action(description=_("Reject selected items"), permissions=["review"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Checkpoint]) -> TemplateResponse | None:
        return decide_selected(self, request, queryset, "reject", _listed_version)

    # -- the review page ------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        overview = path(
            "overview/",
            self.admin_site.admin_view(self.overview_view),
            name="stepkit_django_checkpoint_overview",
        )
        review_next_url = path(
            "review-next/",
            self.admin_site.admin_view(self.review_next_view),
            name="stepkit_django_checkpoint_review_next",
        )
        return [overview, review_next_url, *super().get_urls()]

    # The review page and the queue carry the decision buttons and bulk actions: they refuse to be
    # framed (one click in a disguised frame would approve), whatever the project's middleware.
    @method_decorator(xframe_options_deny)
    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        checkpoint = self.get_object(request, object_id)
        if checkpoint is None:
            raise Http404(gettext("No checkpoint %(id)s in your queue.") % {"id": object_id})
        if not self.has_view_permission(request, checkpoint):
            raise Http404
        prefetch_related_objects([checkpoint], "assigned_users", "assigned_groups")  # the page reads each twice
        posted = request.POST if request.method == "POST" else None
        form, reassign_form = review_forms(checkpoint, posted)
        if request.method == "POST":
            response = self._post(request, checkpoint, form, reassign_form)
            if response is not None:
                return response
        return self._render(request, checkpoint, form, reassign_form)

    def _post(
        self, request: HttpRequest, checkpoint: Checkpoint, form: ReviewForm, reassign_form: ReassignForm
    ) -> HttpResponse | None:
        outcome = handle_post(
            request, checkpoint, form, reassign_form, may_review=self.has_change_permission(request, checkpoint)
        )
        if outcome.rerender:
            return None
        if outcome.decided is not None:
            return self._after_decision(request, outcome.decided)
        if outcome.reassigned and not self.get_queryset(request).filter(pk=checkpoint.pk).exists():
            return HttpResponseRedirect(reverse("admin:stepkit_django_checkpoint_changelist"))
        return HttpResponseRedirect(request.path)

    def _after_decision(self, request: HttpRequest, decided: Checkpoint) -> HttpResponse:
        """The next item the reviewer can decide; this one again when there is none."""
        following = following_item(request, decided)
        if following is None:
            return HttpResponseRedirect(request.path)
        return HttpResponseRedirect(reverse("admin:stepkit_django_checkpoint_change", args=[following.pk]))

    def review_next_view(self, request: HttpRequest) -> HttpResponse:
        """POST: claim the oldest free item of the reviewer's queue (within the queue's pipeline filter) and open it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        # Only text the database can take (a NUL character is refused by PostgreSQL): anything else matches nothing.
        filters = {
            name: request.POST[name]
            for name in ("pipeline_name", "step")
            if request.POST.get(name) and "\x00" not in request.POST[name] and len(request.POST[name]) <= 200
        }
        claimed = claim_next(request, **filters)
        if claimed is None:
            return HttpResponseRedirect(reverse("admin:stepkit_django_checkpoint_changelist"))
        return HttpResponseRedirect(reverse("admin:stepkit_django_checkpoint_change", args=[claimed.pk]))

    def _crumbs(self, request: HttpRequest) -> dict[str, Any]:
        return {
            "breadcrumbs_as_list": django.VERSION >= (6, 0),
            "crumbs": [
                (reverse("admin:app_list", args=[self.opts.app_label]), self.opts.app_config.verbose_name),
                (
                    reverse("admin:stepkit_django_checkpoint_changelist"),
                    str(self.opts.verbose_name_plural).capitalize(),
                ),
            ],
        }

    def _render(
        self, request: HttpRequest, checkpoint: Checkpoint, form: ReviewForm, reassign_form: ReassignForm
    ) -> TemplateResponse:
        checkpoint = self.get_queryset(request).select_related(*PAGE_RELATED).get(pk=checkpoint.pk)
        context = {
            **self.admin_site.each_context(request),
            **self._crumbs(request),
            "opts": self.opts,
            **page_context(checkpoint, request.user, form, reassign_form, _change_url),
            "notifications": notification_rows(checkpoint.notifications.all()),
            "run_url": reverse("admin:stepkit_django_pipelinerun_change", args=[checkpoint.run_id]),
            "has_view_permission": True,
        }
        return TemplateResponse(request, self.review_template, context)

    _heading = staticmethod(heading)

    def overview_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise Http404
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            **self._crumbs(request),
            "title": gettext("Review queue overview"),
            "pipelines_url": pipelines_url(request),
            **overview_context(self.get_queryset(request)),
            **failed_notifications(request),
        }
        return TemplateResponse(request, self.overview_template, context)

    @method_decorator(xframe_options_deny)
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra = {
            "overview_url": reverse("admin:stepkit_django_checkpoint_overview"),
            "pipelines_url": pipelines_url(request),
            "title": gettext("Review queue"),
            "review_next_url": reverse("admin:stepkit_django_checkpoint_review_next"),
            "review_next_filters": {
                name: request.GET[name] for name in ("pipeline_name", "step") if request.GET.get(name)
            },
            "can_review": self.has_change_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)
