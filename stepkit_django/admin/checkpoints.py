"""The review queue in the admin: the Checkpoint changelist and the review page."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import django
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import OrderBy, QuerySet, prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import get_text_list
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_deny

from .. import choices, permissions, quorum, review, revisions
from ..conf import settings
from ..describe import remaining_steps
from ..exceptions import InvalidAssignment, InvalidDecision, InvalidOverride, ReviewConflict, StepkitError
from ..models import PENDING_FIRST, Checkpoint, approvals_count
from ..registry import registered
from ..review_spec import default_title
from ..sentences import actor_name, local_time
from ..status import CheckpointStatus
from .bulk import decide_selected, item_label
from .display import data_rows, revision_changes
from .filters import (
    AssignedToMeFilter,
    ClaimedByMeFilter,
    OverdueFilter,
    PipelineFilter,
    StatusFilter,
    StepFilter,
    UnclaimedFilter,
)
from .forms import ReassignForm, ReviewForm
from .navigation import approved_message, next_item, review_next
from .notifications import failed_notifications, notification_rows
from .overview import overview_context
from .pipelines import pipelines_url
from .trail import trail_rows

REVIEW_PERMISSION = permissions.REVIEW_PERMISSION


def _duration(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return gettext("%(days)dd %(hours)dh") % {"days": days, "hours": hours}
    if hours:
        return gettext("%(hours)dh %(minutes)dm") % {"hours": hours, "minutes": minutes}
    return gettext("%(minutes)dm") % {"minutes": minutes}


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
        return _duration(timezone.now() - obj.created_at)

    @admin.display(description=_("due in"), ordering="expires_at")
    def expires_in(self, obj: Checkpoint) -> str:
        if obj.expires_at is None or obj.status != CheckpointStatus.PENDING:
            return "—"
        left = obj.expires_at - timezone.now()
        if left.total_seconds() < 0:
            return gettext("overdue %(duration)s") % {"duration": _duration(left)}
        return _duration(left)

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
        reassigning = posted is not None and posted.get("_action") == "reassign"
        form = self._form(checkpoint, data=None if reassigning else posted)
        reassign_form = ReassignForm(posted if reassigning else None, prefix="reassign")
        if request.method == "POST":
            response = self._post(request, checkpoint, form, reassign_form)
            if response is not None:
                return response
        return self._render(request, checkpoint, form, reassign_form)

    def _form(self, checkpoint: Checkpoint, data: Any = None) -> ReviewForm:
        form = ReviewForm(
            data,
            editable=checkpoint.editable_keys,
            schema=checkpoint.review.get("schema"),
            current=checkpoint.effective_context,
            to_steps=revisions.steps_to_go_back_to(checkpoint) if checkpoint.is_pending else None,
            initial={"expected_version": checkpoint.version, "comment": ""},
        )
        if checkpoint.review.get("require_reject_reason"):
            form.fields["comment"].help_text = _("To reject, say why: the reason is required.")
        elif checkpoint.is_pending and not revisions.revisions_left(checkpoint):
            form.fields["comment"].help_text = _("Optional: the person who started the run and the trail show it.")
        return form

    def _post(
        self, request: HttpRequest, checkpoint: Checkpoint, form: ReviewForm, reassign_form: ReassignForm
    ) -> HttpResponse | None:
        # A review with choices has one button per choice, each sending its key as _choice: that approves.
        action = request.POST.get("_action", "") or ("approve" if "_choice" in request.POST else "")
        here = HttpResponseRedirect(request.path)
        if not self.has_change_permission(request, checkpoint):
            self.message_user(request, gettext("You may not review checkpoints."), messages.ERROR)
            return here
        user = request.user
        raw = request.POST.get("expected_version", "")
        if not (raw.isascii() and raw.isdigit() and len(raw) < 19):  # the page's own field: a decision is about it
            self.message_user(request, gettext("This page is out of date: reload it and try again."), messages.ERROR)
            return here
        version = int(raw)
        try:
            if action == "claim":
                review.claim(checkpoint, user, expected_version=version)
                self.message_user(request, gettext("You claimed this checkpoint."), messages.SUCCESS)
            elif action == "release":
                review.release(checkpoint, user, expected_version=version)
                self.message_user(request, gettext("You released your claim."), messages.SUCCESS)
            elif action == "reassign":
                review.check_pending(checkpoint, version)
                if not reassign_form.is_valid():
                    self.message_user(request, gettext("Please correct the errors below."), messages.ERROR)
                    return None
                users, groups = reassign_form.cleaned_data["to_users"], reassign_form.cleaned_data["to_groups"]
                review.reassign(checkpoint, user, to_users=users, to_groups=groups, expected_version=version)
                names = [*users, *(group.name for group in groups)]
                self.message_user(
                    request, gettext("Reassigned to %(names)s.") % {"names": ", ".join(names)}, messages.SUCCESS
                )
                if not self.get_queryset(request).filter(pk=checkpoint.pk).exists():
                    return HttpResponseRedirect(reverse("admin:stepkit_django_checkpoint_changelist"))
            elif action in ("edit", "approve", "reject", "request_changes"):
                review.check_pending(checkpoint, version)
                if not form.is_valid():
                    self.message_user(request, gettext("Please correct the errors below."), messages.ERROR)
                    return None
                comment = form.cleaned_data["comment"]
                # Only the keys whose value the reviewer changed: a page approved untouched records no edit.
                changes = form.changes()
                if action == "edit":
                    if not changes:
                        self.message_user(request, gettext("Nothing changed."), messages.INFO)
                        return here
                    review.edit(checkpoint, user, changes, expected_version=version)
                    saved = gettext("Saved edits to %(keys)s.") % {"keys": ", ".join(changes)}
                    self.message_user(request, saved, messages.SUCCESS)
                elif action == "approve":
                    choice = self._choice(request, checkpoint)
                    decided = review.approve(
                        checkpoint, user, changes or None, comment, expected_version=version, choice=choice
                    )
                    decided = decided or checkpoint
                    self.message_user(request, approved_message(decided, item_label(decided)), messages.SUCCESS)
                    return self._after_decision(request, decided)
                elif action == "request_changes":
                    to_step = form.cleaned_data.get("to_step") or None
                    decided = review.request_changes(
                        checkpoint,
                        user,
                        comment,
                        to_step=to_step,
                        override_data=changes or None,
                        expected_version=version,
                    )
                    sent_back = gettext("Changes requested on “%(title)s”: the run goes back to step %(step)s.")
                    step = to_step or decided.step
                    self.message_user(
                        request, sent_back % {"title": item_label(decided), "step": step}, messages.SUCCESS
                    )
                    return self._after_decision(request, decided)
                else:
                    decided = review.reject(checkpoint, user, comment, expected_version=version)
                    rejected = gettext("Rejected “%(title)s”: the run will not continue.")
                    self.message_user(request, rejected % {"title": item_label(decided)}, messages.SUCCESS)
                    return self._after_decision(request, decided)
            else:
                self.message_user(request, gettext("Unknown action %(action)r.") % {"action": action}, messages.ERROR)
        except InvalidOverride as exc:
            form.add_override_errors(exc.errors)
            self.message_user(request, gettext("The edits were refused; see the errors below."), messages.ERROR)
            return None
        except InvalidDecision as exc:
            form.add_decision_errors(exc.errors)
            self.message_user(request, gettext("The decision was refused; see the errors below."), messages.ERROR)
            return None
        except InvalidAssignment as exc:
            reassign_form.add_assignment_errors(exc.errors)
            refused = gettext("The reassignment was refused; see the errors below.")
            self.message_user(request, refused, messages.ERROR)
            return None
        except StepkitError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return here

    @staticmethod
    def _choice(request: HttpRequest, checkpoint: Checkpoint) -> choices.Choice:
        """The choice the review page sent: the key of the button pressed, or the boxes ticked."""
        if checkpoint.review.get("multiple"):
            return request.POST.getlist("_choice")
        return request.POST.get("_choice") or None

    def _after_decision(self, request: HttpRequest, decided: Checkpoint) -> HttpResponse:
        """The next item the reviewer can decide; this one again when there is none."""
        following = next_item(request.user, after=decided)
        if following is None:
            self.message_user(request, gettext("Nothing else is waiting for you."), messages.INFO)
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
        try:
            claimed = review_next(request.user, **filters)
        except StepkitError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            claimed = None
        if claimed is None:
            self.message_user(request, gettext("Nothing is waiting for you to review."), messages.INFO)
            return HttpResponseRedirect(reverse("admin:stepkit_django_checkpoint_changelist"))
        claimed_text = gettext("You claimed “%(title)s”: nobody else can decide it while you work on it.")
        self.message_user(request, claimed_text % {"title": item_label(claimed)}, messages.SUCCESS)
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
        checkpoint = self.get_queryset(request).select_related("decided_by", "run__started_by").get(pk=checkpoint.pk)
        pipeline_steps = self._steps(checkpoint)
        data = data_rows(
            checkpoint.context, checkpoint.override_data, checkpoint.review.get("schema"), checkpoint.editable_keys
        )
        context = {
            **self.admin_site.each_context(request),
            **self._crumbs(request),
            "opts": self.opts,
            "title": self._heading(checkpoint),
            "subtitle": f"{checkpoint.pipeline_name} · {checkpoint.step}",
            "checkpoint": checkpoint,
            "run": checkpoint.run,
            "steps": pipeline_steps,
            "data_rows": data,
            "edited_keys": [row.label for row in data if row.edited],
            "context_json": json.dumps(checkpoint.context, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder),
            "form": form,
            "reassign_form": reassign_form,
            "pending": checkpoint.is_pending,
            "can_review": permissions.can_review(checkpoint, request.user),
            "can_reassign": permissions.can_reassign(
                checkpoint, request.user, [a.user_id for a in checkpoint.approvals.all()]
            ),
            "assignee_names": [g.name for g in checkpoint.assigned_groups.all()]
            + [str(u) for u in checkpoint.assigned_users.all()],
            "assignees_gone": checkpoint.assigned
            and not checkpoint.assigned_users.all()
            and not checkpoint.assigned_groups.all(),
            "claimed_by_me": checkpoint.claimed_by_id == request.user.pk,
            "claimed_by_name": actor_name(checkpoint.claimed_by) if checkpoint.claimed_by_id else "",
            "decided_by_name": actor_name(checkpoint.decided_by) if checkpoint.decided_by_id else "",
            "decided_at": local_time(checkpoint.decided_at) if checkpoint.decided_at else "",
            "started_by_name": actor_name(checkpoint.run.started_by) if checkpoint.run.started_by_id else "",
            "expires": local_time(checkpoint.expires_at) if checkpoint.expires_at else "",
            "approvals": [
                (actor_name(a.user), local_time(a.created_at), a.group)
                for a in checkpoint.approvals.select_related("user")
            ],
            **self._quorum(checkpoint, request.user),
            "trail": trail_rows(checkpoint.events.select_related("actor"), request.user),
            "notifications": notification_rows(checkpoint.notifications.all()),
            "revisions": self._revisions(request, checkpoint),
            "revisions_left": revisions.revisions_left(checkpoint),
            "run_url": reverse("admin:stepkit_django_pipelinerun_change", args=[checkpoint.run_id]),
            "next_url": self._next_url(request, checkpoint),
            "has_view_permission": True,
            "choice_options": choices.options(checkpoint.review),
            "multiple_choices": bool(checkpoint.review.get("multiple")),
        }
        return TemplateResponse(request, self.review_template, context)

    @staticmethod
    def _quorum(checkpoint: Checkpoint, user: Any) -> dict[str, Any]:
        """A per-group quorum's progress, and why ``user`` cannot add an approval now (their groups' counts
        are met, or they are in none of the groups), for the page to say so instead of offering Approve."""
        if not checkpoint.approvals_by_group:
            return {"quorum_progress": [], "quorum_refusal": None}
        groups = [approval.group for approval in checkpoint.approvals.all()]
        already = any(approval.user_id == user.pk for approval in checkpoint.approvals.all())
        refusal = quorum.refusal(checkpoint.review, user, groups) if checkpoint.is_pending and not already else None
        return {"quorum_progress": quorum.progress(checkpoint.review, groups), "quorum_refusal": refusal}

    @staticmethod
    def _revisions(request: HttpRequest, checkpoint: Checkpoint) -> list[dict[str, Any]]:
        """The earlier revisions ``request.user`` may see, each with what the next revision changed."""
        schema = checkpoint.review.get("schema")
        rows = []
        for earlier in revisions.history(checkpoint, request.user):
            cp = earlier.checkpoint
            changes = revision_changes(earlier.changes, schema)
            rows.append(
                {
                    "revision": cp.revision,
                    "next_revision": earlier.next_revision,
                    "comment": cp.comment,
                    "by": actor_name(cp.decided_by) if cp.decided_by_id else "",
                    "at": local_time(cp.decided_at) if cp.decided_at else "",
                    "url": reverse("admin:stepkit_django_checkpoint_change", args=[cp.pk]),
                    "changes": changes,
                    "changed": get_text_list([row.label for row in changes], gettext("and")),
                }
            )
        return rows

    @staticmethod
    def _next_url(request: HttpRequest, checkpoint: Checkpoint) -> str:
        following = next_item(request.user, after=checkpoint)
        return reverse("admin:stepkit_django_checkpoint_change", args=[following.pk]) if following else ""

    @staticmethod
    def _heading(checkpoint: Checkpoint) -> str:
        """The checkpoint's title when it has one, else its pipeline and step."""
        title = str(getattr(checkpoint, "title", "") or "").strip()
        if title:
            return title
        return gettext("Review: %(pipeline)s / %(step)s") % {
            "pipeline": checkpoint.pipeline_name,
            "step": checkpoint.step,
        }

    @staticmethod
    def _steps(checkpoint: Checkpoint) -> list[dict[str, str]]:
        pipeline = registered().get(checkpoint.pipeline_name)
        if pipeline is None or not checkpoint.position:
            return []
        names = pipeline.describe()
        here = checkpoint.position[0]
        remaining = set(remaining_steps(checkpoint.pipeline_name, checkpoint.position))
        rows = []
        pending = checkpoint.is_pending
        for index, name in enumerate(names):
            if index == here:
                state = "paused"
                label = (gettext("paused here (%(step)s)") if pending else gettext("reviewed here (%(step)s)")) % {
                    "step": checkpoint.step
                }
            elif name in remaining:
                state = "remaining"
                label = gettext("to run after approval") if pending else gettext("after this review")
            else:
                state, label = "done", gettext("done")
            rows.append({"name": name, "state": state, "label": label})
        return rows

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
