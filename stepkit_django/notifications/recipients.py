"""Who is told of each event (the rules of :class:`~stepkit_django.notifications.EmailNotifier`).

* ``review_requested`` and ``due_soon``: the checkpoint's reviewers: its assigned users and the members
  of its assigned groups who may review it (:func:`stepkit_django.permissions.fit_reviewers`: active,
  the review permission, not the run's starter unless the review allows it); for a checkpoint assigned
  to nobody, the users granted the review permission (directly or through a group; superusers are not
  emailed for every item). A checkpoint whose assignees were all deleted tells no one.
* ``reassigned``: the new assignees who may review it; ``escalated``: the members of the escalation
  group who may review it.
* ``expired``: the run's starter and the checkpoint's reviewers.
* ``approved``, ``rejected``, ``changes_requested``: the run's starter.
* ``run_failed``: the run's starter and the users granted ``stepkit_django.manage_pipelinerun``.

Whatever the rule, the actor of the event is never told (:mod:`stepkit_django.notifications.events`
leaves them out), nor an inactive user.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from .. import permissions
from ..models import Checkpoint, PipelineRun
from ..status import NotificationEvent

if TYPE_CHECKING:
    from .notifiers import Occasion

__all__ = ["reviewers", "run_managers", "starter", "users_for"]

_DECIDED = {NotificationEvent.APPROVED, NotificationEvent.REJECTED, NotificationEvent.CHANGES_REQUESTED}


def users_for(occasion: Occasion) -> list[Any]:
    """The users the rules above name for ``occasion`` (each once, the actor included: the caller drops them)."""
    event, cp, run = occasion.event, occasion.checkpoint, occasion.run
    found: list[Any] = []
    if event in (NotificationEvent.REVIEW_REQUESTED, NotificationEvent.DUE_SOON) and cp is not None:
        found = reviewers(cp)
    elif event == NotificationEvent.REASSIGNED and cp is not None:
        found = reviewers(cp, users=occasion.data.get("to_users", []), groups=occasion.data.get("to_groups", []))
    elif event == NotificationEvent.ESCALATED and cp is not None:
        found = reviewers(cp, users=[], groups=occasion.data.get("to_groups", []))
    elif event == NotificationEvent.EXPIRED:
        found = [*starter(run), *(reviewers(cp) if cp is not None else [])]
    elif event in _DECIDED:
        found = starter(run)
    elif event == NotificationEvent.RUN_FAILED:
        found = [*starter(run), *run_managers()]
    return list({u.pk: u for u in found}.values())


def starter(run: PipelineRun) -> list[Any]:
    """The run's starter, when active."""
    user = run.started_by if run.started_by_id else None
    return [user] if user is not None and permissions.is_active_user(user) else []


def _granted(permission: str) -> list[Any]:
    """The active users granted ``permission`` (directly or through a group), superusers aside."""
    manager = get_user_model()._default_manager
    try:
        found = manager.with_perm(permission, is_active=True, include_superusers=False)
    except (TypeError, ValueError):  # several authentication backends, or one that cannot list holders
        return []
    return list(found.order_by("pk"))


def run_managers() -> list[Any]:
    """The active users granted the permission to manage runs."""
    return _granted(permissions.MANAGE_RUNS_PERMISSION)


def reviewers(
    checkpoint: Checkpoint, *, users: Iterable[Any] | None = None, groups: Iterable[Any] | None = None
) -> list[Any]:
    """Who may review ``checkpoint`` among ``users`` and the members of ``groups`` (objects or names);
    without either, among its assignees (or, assigned to nobody, the holders of its review permission)."""
    if users is None and groups is None:
        if not checkpoint.assigned:
            candidates = _granted(permissions.review_permission_of(checkpoint))
            return permissions.fit_reviewers(checkpoint, candidates)
        users, groups = checkpoint.assigned_users.all(), checkpoint.assigned_groups.all()
    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    named = [u for u in users or [] if not isinstance(u, user_model)]
    candidates = [u for u in users or [] if isinstance(u, user_model)]
    if named:
        candidates += list(user_model._default_manager.filter(**{f"{field}__in": [str(n) for n in named]}))
    group_list = list(groups or [])
    names = [str(g) for g in group_list if not isinstance(g, Group)]
    ids = [g.pk for g in group_list if isinstance(g, Group)]
    if names:
        ids += list(Group.objects.filter(name__in=names).values_list("pk", flat=True))
    if ids:
        candidates += list(user_model._default_manager.filter(groups__in=ids, is_active=True).distinct().order_by("pk"))
    unique = list({u.pk: u for u in candidates}.values())
    return permissions.fit_reviewers(checkpoint, unique)
