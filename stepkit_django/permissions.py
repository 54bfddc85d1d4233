"""Who may do what: the one place that answers "may this user … this checkpoint or run".

The models' ``visible_to`` and ``for_user`` querysets, the review services, the
admin and the API all ask here; nothing else decides. The rules:

* **see a checkpoint** (the queue): superusers see all; others see checkpoints of
  runs they started, and checkpoints they may review (they hold its review
  permission and it is assigned to nobody, to them, or to one of their groups).
  A checkpoint created with assignees stays restricted when its assignees are
  deleted (fail closed): then only superusers and reassigners see it.
* **claim, edit, approve, reject**: logged in and active, the checkpoint's review
  permission, not the run's starter (four-eyes) unless the review allows it, and
  assigned to them (superusers are exempt from the assignment only).
* **reassign**: :data:`REASSIGN_PERMISSION`, not the run's starter, and not someone
  who approved the checkpoint (an approver could otherwise choose the second approver).
* **cancel and retry a run**: its starter, or :data:`MANAGE_RUNS_PERMISSION`.
* **re-run from a checkpoint** (``review.rerun_from``): the original run's starter, or
  :data:`MANAGE_RUNS_PERMISSION`; the new run still meets its reviews.
* **start a run** (the API's ``POST runs/``, the admin's "Start a run" form):
  :data:`START_RUNS_PERMISSION`.
* **read the pipelines pages of the admin** (steps, review rules, pending counts):
  reviewers (:data:`REVIEW_PERMISSION`) and those who may start runs.
* **open the reviewer inbox** (:mod:`stepkit_django.inbox`): reviewers (a review permission) and those
  who may start runs; what it shows is their queue, as above. ``is_staff`` plays no part.
* **read a failure's message and traceback**: superusers and :data:`MANAGE_RUNS_PERMISSION`;
  others see the failed step and the exception's type.
* **see notifications** (who was told what): superusers and run managers see all; others those of
  runs they may see, and of those runs' checkpoints only the ones in their queue (nothing of another
  group's items), and their own digests.
* **send failed notifications again**: superusers and :data:`MANAGE_RUNS_PERMISSION`.

This module imports no models (the models import it): it works on the querysets
and instances it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.translation import gettext

from .conf import settings
from .exceptions import ReviewPermissionDenied

__all__ = [
    "MANAGE_RUNS_PERMISSION",
    "REASSIGN_PERMISSION",
    "REVIEW_PERMISSION",
    "START_RUNS_PERMISSION",
    "can_reassign",
    "can_rerun",
    "can_retry_notifications",
    "can_review",
    "can_see_failure_details",
    "can_see_pipelines",
    "can_start_runs",
    "can_use_inbox",
    "check_approver",
    "check_reassign",
    "check_rerun",
    "check_reviewer",
    "check_run_manager",
    "check_start_runs",
    "count_orphans",
    "counted_for",
    "events_for",
    "fit_reviewers",
    "is_active_user",
    "may_approve",
    "may_review_in",
    "notifications_for",
    "orphans_for",
    "queue_for",
    "require_active",
    "review_permission_of",
    "reviewable_by",
    "runs_for",
]

APP_LABEL = "stepkit_django"


def permission_name(action: str, model_name: str) -> str:
    """``"stepkit_django.<action>_<model>"``, as ``django.contrib.auth.get_permission_codename`` derives it."""
    return f"{APP_LABEL}.{action}_{model_name}"


#: The default permission a reviewer needs (``STEPKIT["DEFAULT_REVIEW_PERMISSION"]`` may name another).
REVIEW_PERMISSION = permission_name("review", "checkpoint")
#: Reassigning a checkpoint to other users or groups.
REASSIGN_PERMISSION = permission_name("reassign", "checkpoint")
#: Cancelling and retrying any run, and reading failures in full.
MANAGE_RUNS_PERMISSION = permission_name("manage", "pipelinerun")
#: Starting runs, through the API or the admin's pipelines pages.
START_RUNS_PERMISSION = permission_name("add", "pipelinerun")


# -- who is acting -----------------------------------------------------------------------


def is_active_user(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))


def is_superuser(user: Any) -> bool:
    return is_active_user(user) and bool(getattr(user, "is_superuser", False))


def require_active(user: Any) -> Any:
    """The user, if logged in and active; else :class:`ReviewPermissionDenied`."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise ReviewPermissionDenied(gettext("You must be logged in to review."))
    if not getattr(user, "is_active", False):
        raise ReviewPermissionDenied(gettext("Inactive users cannot review."))
    return user


def review_permission_of(checkpoint: Any) -> str:
    """The permission a reviewer of ``checkpoint`` needs (its review's, else the default)."""
    return str(checkpoint.review.get("permission") or settings.DEFAULT_REVIEW_PERMISSION)


# -- querysets -----------------------------------------------------------------------------


def _audience_model(queryset: QuerySet[Any]) -> Any:
    return queryset.model._meta.get_field("audience").related_model


def _audiences_of(audience: Any, user: Any) -> Q:
    """``audience_id`` is one of the audiences that hold ``user`` or one of their groups: a few ids, computed
    once per query. The groups are read from the membership table at each query: joining or leaving a group
    counts at once."""
    memberships = Group.user_set.through.objects.filter(user_id=user.pk).values("group_id")
    direct = audience.users.through.objects.filter(user_id=user.pk).values("audience_id")
    by_group = audience.groups.through.objects.filter(group_id__in=memberships).values("audience_id")
    return Q(audience_id__in=direct) | Q(audience_id__in=by_group)


def _empty_audiences(audience: Any) -> QuerySet[Any]:
    """Audiences whose users and groups were all deleted."""
    users = audience.users.through.objects.filter(audience_id=OuterRef("pk"))
    groups = audience.groups.through.objects.filter(audience_id=OuterRef("pk"))
    empty: QuerySet[Any] = audience._default_manager.filter(~Exists(users) & ~Exists(groups)).values("pk")
    return empty


def _assigned_to(queryset: QuerySet[Any], user: Any) -> Q:
    """Assigned to nobody (a checkpoint created so), or to ``user`` directly or through a group.

    Read from ``Checkpoint.audience`` (the set of its assignees, kept by :mod:`stepkit_django.audiences`
    from the assignment tables), which PostgreSQL checks in the queue index. A checkpoint created with
    assignees keeps ``assigned=True`` when they are all removed or deleted, and then matches no one here
    (fail closed).
    """
    return Q(assigned=False) | _audiences_of(_audience_model(queryset), user)


def _orphan_parts(queryset: QuerySet[Any], *, nested: bool = True) -> list[Q]:
    """Created with assignees, all of which are gone: no audience left (or one whose members were deleted)
    *and* no assignment row left. The audience alone is not trusted here: a checkpoint whose audience is
    missing or stale (not yet backfilled, written by old code or through the assignment tables directly)
    but that has assignees is not an orphan, as the single-object checks (:func:`check_reassign`) say.

    As disjoint conditions, each served by one index on PostgreSQL: no audience (the partial index
    ``stepkit_cp_unheld``, which holds only those) and an emptied audience (the audience's foreign-key
    index; the emptied audiences are read first, a few rows, usually none, and given as ids). ``nested``
    (to be ``OR``-ed into the queue's rule): each an ``id IN`` a subquery, planned on its own and run once
    per query, since inside an ``OR`` a correlated ``NOT EXISTS`` is hashed over every assignment row;
    else (to filter with alone, as :func:`count_orphans` does) the plain conditions, whose ``NOT EXISTS``
    PostgreSQL turns into joins driven by the index."""
    model = queryset.model
    users = model.assigned_users.through.objects.filter(checkpoint_id=OuterRef("pk"))
    groups = model.assigned_groups.through.objects.filter(checkpoint_id=OuterRef("pk"))
    unheld = Q(assigned=True) & ~Exists(users) & ~Exists(groups)
    empty = list(_empty_audiences(_audience_model(queryset)).values_list("pk", flat=True))
    conditions = [Q(audience__isnull=True)] + ([Q(audience_id__in=empty)] if empty else [])
    if not nested:
        return [unheld & condition for condition in conditions]
    rows = model._default_manager
    return [condition & Q(pk__in=rows.filter(unheld & condition).values("pk")) for condition in conditions]


def _orphaned(queryset: QuerySet[Any]) -> Q:
    """The orphans of :func:`_orphan_parts`, as one condition."""
    orphaned = Q()
    for part in _orphan_parts(queryset):
        orphaned |= part
    return orphaned


def _visible(queryset: QuerySet[Any], user: Any) -> Q:
    """Assigned so that ``user`` (active, not a superuser) may see it: to nobody, to them or their groups,
    or, for a reassigner, to assignees who were all deleted (so that they can fix it)."""
    visible = _assigned_to(queryset, user)
    if user.has_perm(REASSIGN_PERMISSION):
        visible |= _orphaned(queryset)
    return visible


def counted_for(summary: QuerySet[Any], audience: Any, user: Any) -> QuerySet[Any]:
    """The rows of a summary of pending checkpoints (:class:`~stepkit_django.models.PendingCount`, with the
    queue's ``permission``, ``assigned`` and ``audience_id`` columns, 0 for none) that count checkpoints
    ``user`` may review: the same rule as :func:`queue_for`, without the runs they started."""
    if not is_active_user(user):
        return summary.none()
    if is_superuser(user):
        return summary
    visible = Q(assigned=False) | _audiences_of(audience, user)
    return summary.filter(Q(permission__in=_held_permissions(user)) & visible)


def orphans_for(queryset: QuerySet[Any], user: Any) -> QuerySet[Any]:
    """The checkpoints of ``queryset`` in a reassigner's queue only because their assignees are all gone
    (none for others and for superusers, who see everything anyway). The summary cannot tell them apart
    (it knows the audience, not the assignment rows): :func:`stepkit_django.pending_counts.queue_count`
    counts them here, from the queue itself. They are disjoint from :func:`counted_for`'s rows."""
    if not is_active_user(user) or is_superuser(user) or not user.has_perm(REASSIGN_PERMISSION):
        return queryset.none()
    return queryset.filter(Q(permission__in=_held_permissions(user)) & _orphaned(queryset))


def count_orphans(queryset: QuerySet[Any], user: Any) -> int:
    """How many checkpoints :func:`orphans_for` holds, counted per part of the rule (disjoint), each from its
    own index: a few milliseconds on PostgreSQL where one ``COUNT`` of the ``OR`` scans the whole queue."""
    if not is_active_user(user) or is_superuser(user) or not user.has_perm(REASSIGN_PERMISSION):
        return 0
    held = queryset.filter(permission__in=_held_permissions(user))
    return sum(held.filter(part).count() for part in _orphan_parts(queryset, nested=False))


def may_review_in(queryset: QuerySet[Any], user: Any) -> QuerySet[Any]:
    """The checkpoints of ``queryset`` in ``user``'s queue because they may review them (permission and
    assignment), whoever started their runs."""
    if not is_active_user(user):
        return queryset.none()
    if is_superuser(user):
        return queryset
    return queryset.filter(Q(permission__in=_held_permissions(user)) & _visible(queryset, user))


def reviewable_by(queryset: QuerySet[Any], user: Any) -> QuerySet[Any]:
    """The checkpoints of ``queryset`` assigned so that ``user`` may see them (permissions aside)."""
    if not is_active_user(user):
        return queryset.none()
    if is_superuser(user):
        return queryset
    return queryset.filter(_visible(queryset, user))


def _held_permissions(user: Any) -> list[str]:
    """The permissions ``user`` holds, with ``""`` for checkpoints stored without one when the default is held."""
    permissions = sorted(user.get_all_permissions())
    if settings.DEFAULT_REVIEW_PERMISSION in permissions:
        permissions.append("")  # a checkpoint stored without one: the services check the default
    return permissions


def queue_for(queryset: QuerySet[Any], user: Any, started_runs: QuerySet[Any]) -> QuerySet[Any]:
    """What ``user`` may see in the queue: checkpoints they may review, and those of ``started_runs``.

    Written with EXISTS and IN so that PostgreSQL applies it after the queue indexes narrowed the rows.
    """
    if not is_active_user(user):
        return queryset.none()
    if is_superuser(user):
        return queryset
    # IN on the indexed started_by rather than a join, which would scan every run
    started = Q(run_id__in=started_runs.filter(started_by=user).values("pk"))
    return queryset.filter((Q(permission__in=_held_permissions(user)) & _visible(queryset, user)) | started)


def claimable_permissions(queryset: QuerySet[Any], user: Any) -> QuerySet[Any]:
    """Narrow ``queryset`` (in SQL) to checkpoints whose review permission ``user`` holds."""
    if is_superuser(user):
        return queryset
    return queryset.filter(permission__in=_held_permissions(user))


def runs_for(queryset: QuerySet[Any], user: Any, queue: QuerySet[Any]) -> QuerySet[Any]:
    """Runs ``user`` started or has a checkpoint of in ``queue`` (their queue); all for run managers."""
    if not is_active_user(user):
        return queryset.none()
    if is_superuser(user) or user.has_perm(MANAGE_RUNS_PERMISSION):
        return queryset
    return queryset.filter(Q(pk__in=queue.values("run_id")) | Q(started_by=user))


def events_for(queryset: QuerySet[Any], user: Any, queue: QuerySet[Any]) -> QuerySet[Any]:
    """Events of runs ``user`` started, or that have a checkpoint in ``queue``; all for run managers.

    Written with ``EXISTS`` per event and an ``IN`` on the indexed starter, no join: PostgreSQL then
    reads the trail in the order asked and stops at a page, rather than listing every run of the queue.
    """
    if not is_active_user(user):
        return queryset.none()
    if is_superuser(user) or user.has_perm(MANAGE_RUNS_PERMISSION):
        return queryset
    runs = queryset.model._meta.get_field("run").related_model._default_manager
    in_queue = Exists(queue.filter(run_id=OuterRef("run_id")))
    started = Q(run_id__in=runs.filter(started_by=user).values("pk"))
    return queryset.filter(in_queue | started)


def notifications_for(queryset: QuerySet[Any], user: Any, runs: QuerySet[Any], queue: QuerySet[Any]) -> QuerySet[Any]:
    """Notifications of ``runs`` (those ``user`` may see) that are of no checkpoint or of one in ``queue``
    (their queue), and their own digests (which are of no run); all for run managers, as the audit trail."""
    if not is_active_user(user):
        return queryset.none()
    if is_superuser(user) or user.has_perm(MANAGE_RUNS_PERMISSION):
        return queryset
    in_queue = Q(checkpoint__isnull=True) | Q(checkpoint_id__in=queue.values("pk"))
    own_digest = Q(run__isnull=True, recipient_id=user.pk)
    return queryset.filter((Q(run_id__in=runs.values("pk")) & in_queue) | own_digest)


# -- one checkpoint ---------------------------------------------------------------------------


def assignment_of(checkpoint: Any, user: Any) -> bool | None:
    """True/False for a checkpoint created assigned, None for one created assigned to nobody.

    A checkpoint whose assignees were all deleted answers False for everyone (fail closed).
    """
    if not checkpoint.assigned:  # created assigned to nobody, and nobody since (kept by an m2m_changed receiver)
        return None
    user_ids = {u.pk for u in checkpoint.assigned_users.all()}
    if user.pk in user_ids:
        return True
    group_ids = {g.pk for g in checkpoint.assigned_groups.all()}
    return bool(group_ids) and Group.objects.filter(pk__in=group_ids, user=user).exists()


def _starters(run: Any) -> set[Any]:
    """Who started ``run``, and, for a rerun, who started each run it was re-run from (a run manager's rerun
    of someone's run is still that person's work)."""
    starters = {run.started_by_id}
    seen = 0
    while getattr(run, "forked_from_id", None) is not None and seen < 20:
        run = type(run).objects.only("started_by", "forked_from").get(checkpoints__pk=run.forked_from_id)
        starters.add(run.started_by_id)
        seen += 1
    return starters


def check_reviewer(checkpoint: Any, user: Any) -> Any:
    """The user, if they may claim, edit, approve or reject ``checkpoint``; else ReviewPermissionDenied."""
    reviewer = require_active(user)
    permission = review_permission_of(checkpoint)
    if not reviewer.has_perm(permission):
        raise ReviewPermissionDenied(
            gettext("You need the permission %(permission)r to review this checkpoint.") % {"permission": permission}
        )
    if not checkpoint.review.get("allow_self_approval", False) and reviewer.pk in _starters(checkpoint.run):
        raise ReviewPermissionDenied(gettext("Four-eyes rule: the user who started the run may not review it."))
    if not is_superuser(reviewer) and assignment_of(checkpoint, reviewer) is False:
        raise ReviewPermissionDenied(gettext("This checkpoint is assigned to other reviewers."))
    return reviewer


def can_review(checkpoint: Any, user: Any) -> bool:
    """Whether ``user`` may review ``checkpoint`` (:func:`check_reviewer` as a bool)."""
    try:
        check_reviewer(checkpoint, user)
    except ReviewPermissionDenied:
        return False
    return True


def _orphaned_checkpoint(checkpoint: Any) -> bool:
    return bool(checkpoint.assigned) and not checkpoint.assigned_users.all() and not checkpoint.assigned_groups.all()


def check_reassign(checkpoint: Any, user: Any, approver_ids: Iterable[Any]) -> Any:
    """The user, if they may reassign ``checkpoint``; else ReviewPermissionDenied.

    A reassigner acts on checkpoints in their own queue (assigned to nobody, to them or their
    groups), or whose assignees were all deleted; superusers on any.
    """
    actor = require_active(user)
    if not actor.has_perm(REASSIGN_PERMISSION):
        raise ReviewPermissionDenied(
            gettext("You need the permission %(permission)r to reassign checkpoints.")
            % {"permission": REASSIGN_PERMISSION}
        )
    if not is_superuser(actor) and assignment_of(checkpoint, actor) is False and not _orphaned_checkpoint(checkpoint):
        raise ReviewPermissionDenied(gettext("This checkpoint is assigned to other reviewers."))
    if checkpoint.run.started_by_id == actor.pk and not checkpoint.review.get("allow_self_approval", False):
        raise ReviewPermissionDenied(
            gettext("Four-eyes rule: the user who started the run may not choose its reviewers.")
        )
    if actor.pk in set(approver_ids):
        raise ReviewPermissionDenied(
            gettext(
                "You approved this checkpoint, so you may not choose who else approves it; "
                "ask someone else to reassign it."
            )
        )
    return actor


def can_reassign(checkpoint: Any, user: Any, approver_ids: Iterable[Any]) -> bool:
    """:func:`check_reassign` as a bool."""
    try:
        check_reassign(checkpoint, user, approver_ids)
    except ReviewPermissionDenied:
        return False
    return True


def check_approver(checkpoint: Any, user: Any, reassigner_ids: Iterable[Any]) -> None:
    """Raise ReviewPermissionDenied if ``user`` (a reviewer of ``checkpoint``) may not approve it now.

    Whoever chose a checkpoint's reviewers by reassigning it may not approve it (they
    could hand it to themselves and a friend). ``reassigner_ids``: the users who reassigned it.
    """
    if user.pk in set(reassigner_ids):
        raise ReviewPermissionDenied(
            gettext("You reassigned this checkpoint, so you may not approve it: its reviewers were your choice.")
        )


def unfit_reviewers(checkpoint: Any, users: Iterable[Any]) -> list[str]:
    """The usernames among ``users`` who could not review ``checkpoint`` (inactive, or without its permission)."""
    permission = review_permission_of(checkpoint)
    return [
        str(u.get_username())
        for u in users
        if not getattr(u, "is_active", False) or not (u.is_superuser or u.has_perm(permission))
    ]


def fit_reviewers(checkpoint: Any, users: Iterable[Any], holds: Callable[[Any, str], bool] | None = None) -> list[Any]:
    """The users among ``users`` who may review ``checkpoint`` once it is assigned to them (as
    :func:`check_reviewer` asks: active, its review permission, not the run's starter unless the review
    allows it): whom a notification asks to review it.

    ``holds(user, permission)`` answers whether a user holds a permission (default: ``user.has_perm``);
    the digest passes one that reads the holders it listed in one query per permission.
    """
    permission = review_permission_of(checkpoint)
    starters = set() if checkpoint.review.get("allow_self_approval", False) else _starters(checkpoint.run)
    held = holds or (lambda user, perm: bool(user.has_perm(perm)))
    return [u for u in users if is_active_user(u) and held(u, permission) and u.pk not in starters]


def may_approve(checkpoint: Any, user: Any, reassigner_ids: Iterable[Any]) -> bool:
    """:func:`check_approver` as a bool."""
    try:
        check_approver(checkpoint, user, reassigner_ids)
    except ReviewPermissionDenied:
        return False
    return True


def check_run_manager(run: Any, user: Any) -> Any:
    """The user, if they may cancel or retry ``run`` (its starter, or a run manager)."""
    actor = require_active(user)
    if run.started_by_id == actor.pk or actor.has_perm(MANAGE_RUNS_PERMISSION):
        return actor
    raise ReviewPermissionDenied(
        gettext("Only the user who started the run or one with %(permission)r can do this.")
        % {"permission": MANAGE_RUNS_PERMISSION}
    )


def check_rerun(run: Any, user: Any) -> Any:
    """The user, if they may re-run ``run`` from one of its checkpoints (its starter, or a run manager)."""
    actor = require_active(user)
    if run.started_by_id == actor.pk or actor.has_perm(MANAGE_RUNS_PERMISSION):
        return actor
    raise ReviewPermissionDenied(
        gettext("Only the user who started the run or one with %(permission)r can re-run it from a checkpoint.")
        % {"permission": MANAGE_RUNS_PERMISSION}
    )


def can_rerun(run: Any, user: Any) -> bool:
    """:func:`check_rerun` as a bool."""
    try:
        check_rerun(run, user)
    except ReviewPermissionDenied:
        return False
    return True


def can_start_runs(user: Any) -> bool:
    """Whether ``user`` may start runs of registered pipelines (:data:`START_RUNS_PERMISSION`)."""
    return is_active_user(user) and bool(user.has_perm(START_RUNS_PERMISSION))


def check_start_runs(user: Any) -> Any:
    """The user, if they may start runs; else :class:`ReviewPermissionDenied`."""
    if not can_start_runs(user):
        raise ReviewPermissionDenied(
            gettext("You need the permission %(permission)r to start runs.") % {"permission": START_RUNS_PERMISSION}
        )
    return user


def can_see_pipelines(user: Any) -> bool:
    """Whether ``user`` may read the admin's pipelines pages: reviewers, and those who may start runs."""
    return is_active_user(user) and (bool(user.has_perm(REVIEW_PERMISSION)) or can_start_runs(user))


def can_use_inbox(user: Any, checkpoints: QuerySet[Any]) -> bool:
    """Whether ``user`` may open the reviewer inbox (:mod:`stepkit_django.inbox`): superusers, holders of a
    review permission (:data:`REVIEW_PERMISSION`, the default one, or one a checkpoint of ``checkpoints``
    needs), and those who may start runs (they follow their runs' reviews). ``is_staff`` plays no part."""
    if not is_active_user(user):
        return False
    if is_superuser(user) or can_start_runs(user):
        return True
    if user.has_perm(REVIEW_PERMISSION) or user.has_perm(settings.DEFAULT_REVIEW_PERMISSION):
        return True
    held = sorted(user.get_all_permissions())
    return bool(held) and checkpoints.filter(permission__in=held).exists()


def can_see_failure_details(user: Any) -> bool:
    """Whether ``user`` may read a failed run's error message and traceback (they may hold personal data)."""
    return is_active_user(user) and (is_superuser(user) or user.has_perm(MANAGE_RUNS_PERMISSION))


def can_retry_notifications(user: Any) -> bool:
    """Whether ``user`` may send failed notifications again (superusers and :data:`MANAGE_RUNS_PERMISSION`).

    The run managers: they are told of failed runs, read failures in full and retry runs; a delivery
    that failed is the same kind of work, and needs no permission of its own.
    """
    return is_active_user(user) and (is_superuser(user) or bool(user.has_perm(MANAGE_RUNS_PERMISSION)))


def error_type(error: str) -> str:
    """The exception's type from a stored ``"Type: message"`` error: what everyone may see of a failure."""
    return error.split(":", 1)[0].strip() if error else ""
