"""The inbox's pages: the queue, "Review next", the review page and my decisions.

Thin views over :mod:`stepkit_django.reviewing` (the review page's form, context and
POST dispatch, shared with the admin) and :mod:`stepkit_django.review`. Every page
needs a logged-in user who may use the inbox (:func:`stepkit_django.permissions.can_use_inbox`),
shows only the user's queue (``Checkpoint.objects.for_user``) and refuses to be framed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LogoutView
from django.core.paginator import Page, Paginator
from django.db.models import F, Q, QuerySet, prefetch_related_objects
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import permissions
from ..conf import settings
from ..models import Checkpoint
from ..review_spec import default_title
from ..reviewing import queue
from ..reviewing.actions import claim_next, following_item, handle_post
from ..reviewing.display import due_in, duration
from ..reviewing.page import PAGE_RELATED, page_context, review_forms
from ..sentences import local_time
from ..status import CheckpointStatus

__all__ = ["decisions", "queue_view", "review_next_view", "review_view", "urlpatterns"]

#: Items per page of the queue and of my decisions.
PER_PAGE = 25
#: The longest search term the queue takes (a longer one is cut, with a message), as in the admin.
MAX_SEARCH_LENGTH = 200
#: Columns the lists leave unread (a context may be large).
LIST_DEFERRED = ("context", "override_data", "token", "comment")

#: The queue's filters: (parameter value, label); "" is every pending item of the queue.
FILTERS = (
    ("", _("All waiting")),
    ("mine", _("Assigned to me")),
    ("groups", _("My groups")),
    ("claimed", _("Claimed by me")),
    ("unclaimed", _("Unclaimed")),
    ("overdue", _("Overdue")),
)

View = Callable[..., HttpResponse]


def page(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """Render an inbox page: ``base_template`` is ``STEPKIT["INBOX_BASE_TEMPLATE"]``, read now."""
    return render(request, template, {"base_template": settings.INBOX_BASE_TEMPLATE, **context}, status=status)


def inbox_view(view: View) -> View:
    """Logged in (the project's ``LOGIN_URL``), allowed to use the inbox (else a 403 page), never framed,
    never cached (the pages show reviewed data), and CSRF-checked whatever the project's middleware."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not permissions.can_use_inbox(request.user, Checkpoint.objects.all()):
            return page(request, "stepkit_django/inbox/forbidden.html", {}, status=403)
        return view(request, *args, **kwargs)

    return xframe_options_deny(never_cache(csrf_protect(login_required(wrapped))))


def review_url(checkpoint: Checkpoint) -> str:
    """The inbox's review page of ``checkpoint``."""
    return reverse("stepkit_inbox:review", args=[checkpoint.pk])


def _row(checkpoint: Checkpoint, now: Any) -> dict[str, Any]:
    """One item of a list: its title, where it waits, its summary, its age and its deadline."""
    overdue = checkpoint.is_pending and checkpoint.expires_at is not None and checkpoint.expires_at < now
    return {
        "checkpoint": checkpoint,
        "url": review_url(checkpoint),
        "title": checkpoint.title or default_title(checkpoint.pipeline_name, checkpoint.step),
        "where": f"{checkpoint.pipeline_name} · {checkpoint.step}",
        "summary": list(checkpoint.summary.items()),
        "waiting": duration(now - checkpoint.created_at),
        "due": due_in(checkpoint, now),
        "overdue": overdue,
        "claimed_by": checkpoint.claimed_by.get_username()
        if checkpoint.claimed_by_id and checkpoint.claimed_by
        else "",
        "decided_at": local_time(checkpoint.decided_at) if checkpoint.decided_at else "",
    }


def _list(request: HttpRequest, items: QuerySet[Checkpoint]) -> dict[str, Any]:
    """One page of ``items`` as rows, with the links to the pages before and after it."""
    current: Page[Checkpoint] = Paginator(items, PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    return {
        "rows": [_row(checkpoint, now) for checkpoint in current],
        "page_obj": current,
        "previous_url": _query(request, page=str(current.previous_page_number())) if current.has_previous() else "",
        "next_page_url": _query(request, page=str(current.next_page_number())) if current.has_next() else "",
    }


def _query(request: HttpRequest, **changes: str) -> str:
    """The current query string with ``changes`` (an empty value drops the parameter)."""
    params = request.GET.copy()
    for key, value in changes.items():
        if value:
            params[key] = value
        else:
            params.pop(key, None)
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@inbox_view
@require_GET
def queue_view(request: HttpRequest) -> HttpResponse:
    """The pending items of the user's queue, oldest first: filtered, searched, a page at a time."""
    user = request.user
    shown = request.GET.get("show", "")
    if shown not in queue.CONDITIONS:
        shown = ""
    term = request.GET.get("q", "").replace("\x00", "").strip()
    if len(term) > MAX_SEARCH_LENGTH:
        messages.warning(
            request, gettext("Searched for the first %(limit)d characters only.") % {"limit": MAX_SEARCH_LENGTH}
        )
        term = term[:MAX_SEARCH_LENGTH]
    items = Checkpoint.objects.for_user(user).filter(status=CheckpointStatus.PENDING)
    if shown:
        items = items.filter(pk__in=Checkpoint.objects.filter(queue.CONDITIONS[shown](user)).values("pk"))
    items = items.search(term).select_related("claimed_by").defer(*LIST_DEFERRED).order_by("created_at", "pk")
    context = {
        "title": gettext("Review queue"),
        "nav": "queue",
        **_list(request, items),
        "filters": [(value, label, _query(request, show=value, page="")) for value, label in FILTERS],
        "shown": shown,
        "term": term,
    }
    return page(request, "stepkit_django/inbox/queue.html", context)


@inbox_view
@require_POST
def review_next_view(request: HttpRequest) -> HttpResponse:
    """Claim the oldest free item of the user's queue and open it; a message when nothing waits."""
    claimed = claim_next(request)
    if claimed is None:
        return HttpResponseRedirect(reverse("stepkit_inbox:queue"))
    return HttpResponseRedirect(review_url(claimed))


@inbox_view
@require_http_methods(["GET", "POST"])
def review_view(request: HttpRequest, pk: Any) -> HttpResponse:
    """The review page: the data, the edits form, the decisions, the trail and the revisions."""
    mine = Checkpoint.objects.for_user(request.user)
    checkpoint = mine.select_related(*PAGE_RELATED).filter(pk=pk).first()
    if checkpoint is None:  # outside the user's queue: the same answer as an id that does not exist
        return page(
            request, "stepkit_django/inbox/not_found.html", {"queue_url": reverse("stepkit_inbox:queue")}, status=404
        )
    prefetch_related_objects([checkpoint], "assigned_users", "assigned_groups")
    posted = request.POST if request.method == "POST" else None
    form, reassign_form = review_forms(checkpoint, posted)
    if posted is not None:
        outcome = handle_post(request, checkpoint, form, reassign_form, may_review=True)
        if outcome.decided is not None:
            following = following_item(request, outcome.decided)
            return HttpResponseRedirect(review_url(following) if following else request.path)
        if outcome.reassigned and not mine.filter(pk=checkpoint.pk).exists():
            return HttpResponseRedirect(reverse("stepkit_inbox:queue"))
        if not outcome.rerender:
            return HttpResponseRedirect(request.path)
        # Shown again with the forms' errors: as it is now (a refused decision may have claimed nothing,
        # but another reviewer may have acted meanwhile).
        shown = mine.select_related(*PAGE_RELATED).filter(pk=checkpoint.pk).first()
        if shown is None:
            return HttpResponseRedirect(reverse("stepkit_inbox:queue"))
        prefetch_related_objects([shown], "assigned_users", "assigned_groups")
        checkpoint = shown
    context = {**page_context(checkpoint, request.user, form, reassign_form, review_url), "nav": "queue"}
    return page(request, "stepkit_django/inbox/review.html", context)


@inbox_view
@require_GET
def decisions(request: HttpRequest) -> HttpResponse:
    """The items the user decided or approved, newest first."""
    user: Any = request.user  # logged in: inbox_view
    mine = Q(decided_by=user) | Q(pk__in=Checkpoint.objects.filter(approvals__user=user).values("pk"))
    items = (
        Checkpoint.objects.for_user(user)
        .filter(mine)
        .select_related("claimed_by")
        .defer(*LIST_DEFERRED)
        .order_by(F("decided_at").desc(nulls_first=True), "-created_at", "-pk")
    )
    context = {"title": gettext("My decisions"), "nav": "decisions", **_list(request, items)}
    return page(request, "stepkit_django/inbox/decisions.html", context)


urlpatterns: list[URLPattern | URLResolver] = [
    path("", queue_view, name="queue"),
    path("next/", review_next_view, name="review_next"),
    path("decisions/", decisions, name="decisions"),
    path("logout/", xframe_options_deny(LogoutView.as_view(next_page="stepkit_inbox:queue")), name="logout"),
    path("<uuid:pk>/", review_view, name="review"),
]
