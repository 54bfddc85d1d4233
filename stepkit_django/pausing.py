"""Pausing a run for review: the pending checkpoint, its assignees, its ``paused`` event and signal.

:func:`create_checkpoint` is what the runner calls when a step declared with
``review=Review(...)`` completes (or a ``step_completed`` receiver stops the run);
:func:`open_checkpoint` is shared with ``review.retry_run``, which opens a review again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone

from . import audiences, audit
from .assignments import resolve_groups, resolve_users
from .engine import StepCompleteEvent
from .engine.context import to_json_ready
from .exceptions import ReviewMisconfigured
from .models import Checkpoint, PipelineRun
from .notifications.schedule import first_reminder
from .review_spec import Review
from .revisions import kept_assignment, previous_revision
from .signals import checkpoint_created
from .status import AuditAction, RunStatus
from .transitions import move_run

__all__ = ["create_checkpoint", "open_checkpoint", "reopen_checkpoint"]


def create_checkpoint(run: PipelineRun, event: StepCompleteEvent, spec: Review) -> Checkpoint:
    """Store a pending checkpoint for ``event``'s step and pause ``run``.

    Raises :class:`ReviewMisconfigured` when the review names a group, user or
    permission that does not exist, or when its title or summary cannot be filled
    in from the context, so a typo fails the run loudly instead of leaving a
    checkpoint nobody can review (or tell from the next).
    """
    snapshot = spec.snapshot()
    context = event.context
    _require_permission_exists(snapshot["permission"], event.step_name)
    title = spec.render_title(context, run.pipeline_name, event.step_name)
    summary = spec.render_summary(context, event.step_name)
    snapshot["title"] = title  # the checkpoint's settings hold the title as shown, not its format string
    groups = resolve_groups(spec.assign_to_group, context, event.step_name)
    users = resolve_users(spec.assign_to_user, context, event.step_name)
    if spec.quorum_groups:
        # The groups whose approvals are needed must exist; the item goes to them (and to assign_to_user).
        groups = _quorum_groups(spec.quorum_groups, event.step_name)
    if spec.escalate_to_group:
        resolve_groups(spec.escalate_to_group, context, event.step_name)
    with transaction.atomic():
        move_run(run, RunStatus.RUNNING, RunStatus.PAUSED, lease_owner="", lease_expires_at=None)
        previous = previous_revision(run, event.step_name)
        kept = kept_assignment(previous) if previous is not None else None
        declared: dict[str, list[str]] = {}
        if kept is not None:  # a manager's choice of reviewers outlives the request for changes
            declared = _names(users, groups)
            users, groups = kept.users, kept.groups
        return open_checkpoint(
            run,
            step=event.step_name,
            position=list(event.position),
            token=event.checkpoint,
            context=to_json_ready(context),
            review=snapshot,
            title=title,
            summary=summary,
            users=users,
            groups=groups,
            assigned=True if kept is not None else None,
            revision_of=previous,
            kept=(kept.reassigners, declared) if kept is not None else None,
        )


def _names(users: list[Any], groups: list[Group]) -> dict[str, list[str]]:
    return {"users": sorted(u.get_username() for u in users), "groups": sorted(g.name for g in groups)}


def open_checkpoint(
    run: PipelineRun,
    *,
    step: str,
    position: list[int],
    token: str,
    context: dict[str, Any],
    review: dict[str, Any],
    title: str,
    summary: dict[str, str],
    users: list[Any],
    groups: list[Group],
    assigned: bool | None = None,
    data: Mapping[str, Any] | None = None,
    revision_of: Checkpoint | None = None,
    kept: tuple[list[Any], dict[str, list[str]]] | None = None,
) -> Checkpoint:
    """Create a pending checkpoint of the paused ``run`` with its assignments, its ``paused`` event and the signal.

    ``revision_of``: the checkpoint of the same step whose reviewer requested the changes this one answers.
    ``kept``: when ``users`` and ``groups`` are the assignees a manager chose on ``revision_of``, the users
    who reassigned it and the assignees the review declares; each of those users gets a
    ``reassigned`` event on the new checkpoint (``kept_from``), so that they may not approve it either.
    """
    timeout = review.get("timeout_seconds")
    now = timezone.now()
    expires_at = now + timedelta(seconds=timeout) if timeout else None
    revision = revision_of.revision + 1 if revision_of is not None else 1
    if revision_of is not None:
        data = {**(data or {}), "revision": revision, "revision_of": str(revision_of.pk)}
    checkpoint = Checkpoint.objects.create(
        run=run,
        pipeline_name=run.pipeline_name,
        step=step,
        position=position,
        token=token,
        context=context,
        review=review,
        title=title,
        summary=summary,
        assigned=bool(groups or users) if assigned is None else assigned,  # save() derives the permission column
        created_at=now,
        expires_at=expires_at,
        next_reminder_at=first_reminder(review, now, expires_at),
        revision_of=revision_of,
        revision=revision,
    )
    if groups or users:
        # Both tables first, then the audience once (two set() calls would each compute one).
        audiences.assign_new(checkpoint, users, groups)
    audit.record(
        run,
        AuditAction.PAUSED,
        checkpoint=checkpoint,
        data={
            "step": step,
            "assigned_groups": sorted(g.name for g in groups),
            "assigned_users": sorted(u.get_username() for u in users),
            "expires_at": checkpoint.expires_at.isoformat() if checkpoint.expires_at else None,
            **(data or {}),
        },
    )
    if kept is not None and revision_of is not None:
        reassigners, declared = kept
        for actor in reassigners or [None]:  # a reassigner since deleted: the event still says why
            audit.record(
                run,
                AuditAction.REASSIGNED,
                checkpoint=checkpoint,
                actor=actor,
                data={
                    "before": declared,
                    "after": _names(users, groups),
                    "kept_from": str(revision_of.pk),
                    "kept_from_revision": revision_of.revision,
                },
            )
    checkpoint_created.send(sender=Checkpoint, checkpoint=checkpoint, run=run)
    return checkpoint


def _quorum_groups(names: list[str], step: str) -> list[Group]:
    found = {group.name: group for group in Group.objects.filter(name__in=names)}
    missing = [name for name in names if name not in found]
    if missing:
        raise ReviewMisconfigured(
            f"Review of step {step!r} needs approvals from group(s) {', '.join(map(repr, missing))}, "
            "which do not exist: create them or fix the Review"
        )
    return [found[name] for name in names]


def _require_permission_exists(permission: str, step: str) -> None:
    app_label, _, codename = permission.partition(".")
    if not Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists():
        raise ReviewMisconfigured(f"Review of step {step!r} requires permission {permission!r}, which does not exist")


def reopen_checkpoint(
    run: PipelineRun, previous: Checkpoint, data: dict[str, Any], *, same_revision: bool = False
) -> Checkpoint:
    """A new pending checkpoint of ``run`` asking ``previous``'s question again: its step, data, review
    settings, title and assignees (restricted stays restricted, even if its assignees are gone); ``data``
    goes into its ``paused`` event (what it was reopened from).

    ``same_revision``: the question is asked again in the same run (a retry after an expiry), so the new
    checkpoint is the same revision as ``previous``, answering the same request for changes, and keeps
    its revision history.
    """
    return open_checkpoint(
        run,
        step=previous.step,
        position=list(previous.position),
        token=previous.token,
        context=previous.context,
        review=previous.review,
        title=previous.title,
        summary=previous.summary,
        users=list(previous.assigned_users.all()),
        groups=list(previous.assigned_groups.all()),
        assigned=previous.assigned,
        data=data,
        revision_of=previous.revision_of if same_revision else None,
    )
