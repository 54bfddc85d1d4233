"""The review services: the only code that changes review state.

Every function checks, at the moment of the change, that the user may act;
changes the row with one conditional UPDATE on status and version
(compare-and-set), so of concurrent callers exactly one wins and the others get
:class:`~stepkit_django.exceptions.ReviewConflict`; and writes its audit event
in the same transaction. The admin and the REST API call these and nothing else.

The services that act on one checkpoint take the instance or its primary key;
either way they read it afresh, so an instance loaded earlier is never stale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeAlias
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from . import sql
from .conf import settings
from .engine import StepCompleteEvent, decode_checkpoint
from .engine.context import to_json_ready
from .engine.executor import resume_point
from .exceptions import (
    InvalidCheckpoint,
    PipelineChanged,
    ReviewConflict,
    ReviewMisconfigured,
    ReviewPermissionDenied,
)
from .executors import dispatch, held_here
from .models import Approval, AuditEvent, Checkpoint, PipelineRun
from .overrides import diff, validate_override
from .registry import get_registration
from .review_spec import Review
from .runner import audit, audit_event
from .signals import checkpoint_created, checkpoint_decided, run_finished
from .status import AuditAction, CheckpointStatus, RunStatus

__all__ = [
    "approve",
    "can_review",
    "cancel_run",
    "check_pending",
    "claim",
    "claim_next",
    "create_checkpoint",
    "edit",
    "expire_due",
    "reassign",
    "reject",
    "release",
    "retry_run",
]

#: A checkpoint, or its primary key.
CheckpointRef: TypeAlias = "Checkpoint | UUID | str"

logger = logging.getLogger("stepkit_django")
User = AbstractBaseUser | AnonymousUser | None
RUN_MANAGE_PERMISSION = "stepkit_django.manage_pipelinerun"


# -- creating checkpoints (called by the runner when a run pauses) ---------------------


def create_checkpoint(run: PipelineRun, event: StepCompleteEvent, spec: Review) -> Checkpoint:
    """Store a pending checkpoint for ``event``'s step and pause ``run``.

    Raises :class:`ReviewMisconfigured` when the review names a group, user or
    permission that does not exist, so a typo fails the run loudly instead of
    leaving a checkpoint nobody can review.
    """
    snapshot = spec.snapshot()
    context = event.context
    _require_permission_exists(snapshot["permission"], event.step_name)
    groups = _resolve_groups(spec.assign_to_group, context, event.step_name)
    users = _resolve_users(spec.assign_to_user, context, event.step_name)
    if spec.escalate_to_group:
        _resolve_groups(spec.escalate_to_group, context, event.step_name)
    now = timezone.now()
    with transaction.atomic():
        checkpoint = Checkpoint.objects.create(
            run=run,
            pipeline_name=run.pipeline_name,
            step=event.step_name,
            position=list(event.position),
            token=event.checkpoint,
            context=to_json_ready(context),
            review=snapshot,
            assigned=bool(groups or users),  # Checkpoint.save() derives permission from the review
            expires_at=now + spec.timeout if spec.timeout else None,
        )
        if groups:
            checkpoint.assigned_groups.set(groups)
        if users:
            checkpoint.assigned_users.set(users)
        paused = PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.PAUSED, updated_at=now, lease_owner="", lease_expires_at=None
        )
        if paused != 1:
            raise ReviewConflict(f"Run {run.pk} is no longer running; it cannot pause")
        run.status, run.updated_at, run.lease_owner, run.lease_expires_at = RunStatus.PAUSED, now, "", None
        audit(
            run,
            AuditAction.PAUSED,
            checkpoint=checkpoint,
            data={
                "step": event.step_name,
                "assigned_groups": sorted(g.name for g in groups),
                "assigned_users": sorted(u.get_username() for u in users),
                "expires_at": checkpoint.expires_at.isoformat() if checkpoint.expires_at else None,
            },
        )
        checkpoint_created.send(sender=Checkpoint, checkpoint=checkpoint, run=run)
    return checkpoint


def _require_permission_exists(permission: str, step: str) -> None:
    app_label, _, codename = permission.partition(".")
    if not Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists():
        raise ReviewMisconfigured(f"Review of step {step!r} requires permission {permission!r}, which does not exist")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _resolve_groups(spec: Any, context: dict[str, Any], step: str) -> list[Group]:
    names: list[str] = []
    groups: list[Group] = []
    for item in _as_list(spec):
        for value in _as_list(item(context) if callable(item) else item):
            if isinstance(value, Group):
                groups.append(value)
            elif isinstance(value, get_user_model()):
                continue
            else:
                names.append(str(value))
    if names:
        found = {g.name: g for g in Group.objects.filter(name__in=names)}
        missing = sorted(set(names) - set(found))
        if missing:
            raise ReviewMisconfigured(
                f"Review of step {step!r} is assigned to group(s) {', '.join(map(repr, missing))}, "
                "which do not exist: create them or fix the Review"
            )
        groups.extend(found.values())
    return groups


def _resolve_users(spec: Any, context: dict[str, Any], step: str) -> list[Any]:
    user_model = get_user_model()
    names: list[str] = []
    users: list[Any] = []
    for item in _as_list(spec):
        for value in _as_list(item(context) if callable(item) else item):
            if isinstance(value, user_model):
                users.append(value)
            elif not isinstance(value, Group):
                names.append(str(value))
    if names:
        found = {
            u.get_username(): u
            for u in user_model._default_manager.filter(**{f"{user_model.USERNAME_FIELD}__in": names})
        }
        missing = sorted(set(names) - set(found))
        if missing:
            raise ReviewMisconfigured(
                f"Review of step {step!r} is assigned to user(s) {', '.join(map(repr, missing))}, which do not exist"
            )
        users.extend(found.values())
    return users


# -- checks -----------------------------------------------------------------------------


def _load(checkpoint: CheckpointRef) -> Checkpoint:
    pk = checkpoint.pk if isinstance(checkpoint, Checkpoint) else checkpoint
    return sql.get(Checkpoint, pk, related="run")  # type: ignore[no-any-return]


def _require_active(user: User) -> Any:
    """The user, if logged in and active (typed Any: AUTH_USER_MODEL may be a custom model)."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise ReviewPermissionDenied("You must be logged in to review.")
    if not getattr(user, "is_active", False):
        raise ReviewPermissionDenied("Inactive users cannot review.")
    return user


def _is_assigned(checkpoint: Checkpoint, user: AbstractBaseUser) -> bool | None:
    """True/False for an assigned checkpoint, None when it is assigned to nobody."""
    if not checkpoint.assigned:  # created assigned to nobody, and nobody since (kept by an m2m_changed receiver)
        return None
    user_ids = set(checkpoint.assigned_users.values_list("pk", flat=True))
    group_ids = set(checkpoint.assigned_groups.values_list("pk", flat=True))
    if not user_ids and not group_ids:
        return None
    if user.pk in user_ids:
        return True
    return bool(group_ids) and Group.objects.filter(pk__in=group_ids, user=user).exists()  # type: ignore[misc]


def _check_reviewer(checkpoint: Checkpoint, user: User) -> Any:
    """Raise ReviewPermissionDenied unless ``user`` may review ``checkpoint`` now."""
    reviewer = _require_active(user)
    permission = checkpoint.review.get("permission") or settings.DEFAULT_REVIEW_PERMISSION
    if not reviewer.has_perm(permission):
        raise ReviewPermissionDenied(f"You need the permission {permission!r} to review this checkpoint.")
    if not checkpoint.review.get("allow_self_approval", False) and checkpoint.run.started_by_id == reviewer.pk:
        raise ReviewPermissionDenied("Four-eyes rule: the user who started the run may not review it.")
    if not getattr(reviewer, "is_superuser", False) and _is_assigned(checkpoint, reviewer) is False:
        raise ReviewPermissionDenied("This checkpoint is assigned to other reviewers.")
    return reviewer


def can_review(checkpoint: Checkpoint, user: User) -> bool:
    """Whether ``user`` may review ``checkpoint`` (the checks every service makes, as a bool)."""
    try:
        _check_reviewer(checkpoint, user)
    except ReviewPermissionDenied:
        return False
    return True


def check_pending(checkpoint: Checkpoint, expected_version: int | None = None) -> None:
    """Raise ReviewConflict unless ``checkpoint`` is pending (at ``expected_version``, when given)."""
    if checkpoint.status != CheckpointStatus.PENDING:
        who = f" by {checkpoint.decided_by}" if checkpoint.decided_by_id else ""
        raise ReviewConflict(f"This checkpoint was already {checkpoint.status}{who}.")
    if expected_version is not None and expected_version != checkpoint.version:
        raise ReviewConflict(
            f"This checkpoint changed since you loaded it (version {expected_version}, now {checkpoint.version}); "
            "reload it and try again."
        )


def _check_claim(checkpoint: Checkpoint, user: AbstractBaseUser) -> None:
    if checkpoint.claimed_by_id is not None and checkpoint.claimed_by_id != user.pk:
        raise ReviewConflict(f"This checkpoint is claimed by {checkpoint.claimed_by}.")


def _open(checkpoint: CheckpointRef, by: User, expected_version: int | None) -> tuple[Checkpoint, Any]:
    """Reload ``checkpoint`` and check that ``by`` may decide it now: pending, allowed, not claimed by another."""
    cp = _load(checkpoint)
    check_pending(cp, expected_version)
    reviewer = _check_reviewer(cp, by)
    _check_claim(cp, reviewer)
    return cp, reviewer


def _conflict(checkpoint: Checkpoint) -> ReviewConflict:
    """Why a conditional write of ``checkpoint`` (pending, at the version read) found no row."""
    current = Checkpoint.objects.filter(pk=checkpoint.pk).values_list("status", flat=True).first()
    if current != CheckpointStatus.PENDING:
        return ReviewConflict(f"This checkpoint was already {current}.")
    return ReviewConflict("Someone else changed this checkpoint at the same time; reload it and try again.")


def _cas(checkpoint: Checkpoint, **changes: Any) -> None:
    """Apply ``changes`` if the checkpoint is still pending at the version we read; else ReviewConflict."""
    _write(checkpoint, changes, [])


def _write(
    checkpoint: Checkpoint,
    changes: Mapping[str, Any],
    events: list[AuditEvent],
    *,
    run: tuple[str, str, Mapping[str, Any]] | None = None,
    approvals: list[Approval] | None = None,
) -> None:
    """Change the checkpoint if it is still pending at the version read, move its run ``(from, to, fields)``
    and append ``events`` and ``approvals``: all or nothing (one statement on PostgreSQL).

    Raises ReviewConflict when the checkpoint or the run changed meanwhile; then nothing is written.
    """
    now = timezone.now()
    updates = [
        sql.Update(
            Checkpoint,
            checkpoint.pk,
            {"updated_at": now, **changes},
            where={"status": CheckpointStatus.PENDING, "version": checkpoint.version},
            increment=("version",),
        )
    ]
    if run is not None:
        source, target, fields = run
        updates.append(
            sql.Update(
                PipelineRun, checkpoint.run_id, {"status": target, "updated_at": now, **fields}, {"status": source}
            )
        )
    rows = [sql.Insert.of(batch) for batch in (events, approvals) if batch]
    failed = sql.write(updates, rows)
    if failed == 0:
        raise _conflict(checkpoint)
    if failed is not None:
        raise ReviewConflict(f"Run {checkpoint.run_id} is no longer {updates[1].where['status']}.")
    for name, value in changes.items():
        setattr(checkpoint, name, value)
    checkpoint.version += 1
    checkpoint.updated_at = now
    if run is not None:
        checkpoint.run.status, checkpoint.run.updated_at = run[1], now
        for name, value in run[2].items():
            setattr(checkpoint.run, name, value)


def _move_run(run: PipelineRun, source: str, target: str, **changes: Any) -> None:
    now = timezone.now()
    moved = sql.update(PipelineRun, run.pk, {"status": target, "updated_at": now, **changes}, where={"status": source})
    if moved != 1:
        raise ReviewConflict(f"Run {run.pk} is no longer {source}.")
    run.status, run.updated_at = target, now
    for field, value in changes.items():
        setattr(run, field, value)


# -- claiming -----------------------------------------------------------------------------


def claim(checkpoint: CheckpointRef, by: User, *, expected_version: int | None = None) -> Checkpoint:
    """Take ``checkpoint`` so that no one else decides it while ``by`` works on it."""
    cp = _load(checkpoint)
    check_pending(cp, expected_version)
    reviewer = _check_reviewer(cp, by)
    if cp.claimed_by_id == reviewer.pk:
        return cp
    _check_claim(cp, reviewer)
    claimed = {"claimed_by": reviewer, "claimed_at": timezone.now()}
    _write(cp, claimed, [audit_event(cp.run, AuditAction.CLAIMED, checkpoint=cp, actor=reviewer)])
    return cp


def release(checkpoint: CheckpointRef, by: User, *, expected_version: int | None = None) -> Checkpoint:
    """Give back a claim (the holder, or a superuser for someone else's claim)."""
    cp = _load(checkpoint)
    check_pending(cp, expected_version)
    user = _require_active(by)
    if cp.claimed_by_id is None:
        raise ReviewConflict("This checkpoint is not claimed.")
    if cp.claimed_by_id != user.pk and not getattr(user, "is_superuser", False):
        raise ReviewPermissionDenied(f"Only {cp.claimed_by} (or a superuser) can release this claim.")
    event = audit_event(
        cp.run, AuditAction.RELEASED, checkpoint=cp, actor=user, data={"claimed_by": str(cp.claimed_by)}
    )
    _write(cp, {"claimed_by": None, "claimed_at": None}, [event])
    return cp


def claim_next(by: User, queryset: QuerySet[Checkpoint] | None = None, **filters: Any) -> Checkpoint | None:
    """Claim the oldest pending, unclaimed checkpoint ``by`` may review, or return None.

    ``queryset`` (a filtered ``Checkpoint`` queryset, such as the API's filtered queue)
    and ``filters`` (``pipeline_name="...", step="..."``) narrow the candidates.
    On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP LOCKED``, so
    concurrent callers never receive the same checkpoint and never wait for each other.
    """
    reviewer = _require_active(by)
    base = Checkpoint.objects.all() if queryset is None else queryset
    if base.query.distinct or base.query.is_sliced:
        # FOR UPDATE cannot lock rows of a DISTINCT or sliced query: take its ids instead.
        base = Checkpoint.objects.filter(pk__in=base.values("pk"))
    queue = (
        base.visible_to(reviewer)  # type: ignore[attr-defined]
        .filter(status=CheckpointStatus.PENDING, claimed_by__isnull=True, **filters)
        .order_by("created_at", "pk")
    )
    if not reviewer.is_superuser:  # skip, in SQL, what needs a permission the reviewer lacks
        queue = queue.filter(permission__in=sorted(reviewer.get_all_permissions()))
    skip_locked = connection.features.has_select_for_update_skip_locked
    passed_over: list[Any] = []
    while True:
        with transaction.atomic():
            candidates = queue.exclude(pk__in=passed_over)
            if skip_locked:
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            candidate = next(iter(candidates[:1]), None)
            if candidate is None:
                return None
            cp = _load(candidate)
            passed_over.append(cp.pk)
            if cp.claimed_by_id is not None or not can_review(cp, reviewer):
                continue
            event = audit_event(cp.run, AuditAction.CLAIMED, checkpoint=cp, actor=reviewer, data={"via": "claim_next"})
            try:
                _write(cp, {"claimed_by": reviewer, "claimed_at": timezone.now()}, [event])
            except ReviewConflict:
                continue
            return cp


def reassign(
    checkpoint: CheckpointRef,
    by: User,
    *,
    to_users: Iterable[Any] | None = None,
    to_groups: Iterable[Any] | None = None,
    expected_version: int | None = None,
) -> Checkpoint:
    """Assign ``checkpoint`` to other users and/or groups (replacing the assignment) and drop any claim."""
    cp, reviewer = _open(checkpoint, by, expected_version)
    if to_users is None and to_groups is None:
        raise ReviewMisconfigured("reassign() needs to_users and/or to_groups")
    users = _resolve_users(list(to_users or []), cp.context, cp.step)
    groups = _resolve_groups(list(to_groups or []), cp.context, cp.step)
    before = {
        "users": sorted(u.get_username() for u in cp.assigned_users.all()),
        "groups": sorted(g.name for g in cp.assigned_groups.all()),
    }
    after = {"users": sorted(u.get_username() for u in users), "groups": sorted(g.name for g in groups)}
    with transaction.atomic():
        _cas(cp, claimed_by=None, claimed_at=None)
        cp.assigned_users.set(users)
        cp.assigned_groups.set(groups)
        audit(cp.run, AuditAction.REASSIGNED, checkpoint=cp, actor=reviewer, data={"before": before, "after": after})
    return cp


# -- editing and deciding -----------------------------------------------------------------


def _validated(cp: Checkpoint, override_data: object) -> dict[str, Any]:
    return validate_override(
        override_data,
        context={**cp.context, **cp.override_data},
        editable=cp.editable_keys,
        schema=cp.review.get("schema"),
    )


def edit(
    checkpoint: CheckpointRef, by: User, override_data: Mapping[str, Any], expected_version: int | None = None
) -> Checkpoint:
    """Save edits to the data the run will resume with; validated, and audited as before → after."""
    cp, reviewer = _open(checkpoint, by, expected_version)
    data = _validated(cp, override_data)
    before = cp.effective_context
    merged = {**cp.override_data, **data}
    event = audit_event(cp.run, AuditAction.EDITED, checkpoint=cp, actor=reviewer, data={"changes": diff(before, data)})
    _write(cp, {"override_data": merged}, [event])
    return cp


def _resume_state(cp: Checkpoint, override: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Run fields for resuming after ``cp``, from its stored, signed token (never a client's)."""
    payload = decode_checkpoint(cp.token, max_age=None)
    registration = get_registration(payload["pipeline"])
    pipeline = registration.pipeline
    if payload["version"] != pipeline.version:
        migration = registration.migrations.get(payload["version"])
        if migration is None:
            raise PipelineChanged(
                f"Pipeline {pipeline.name!r} changed from version {payload['version']} to {pipeline.version} "
                f"since this checkpoint was made; register a migration for version {payload['version']} "
                "(register(pipeline, migrations={...})) to resume it"
            )
        result = migration(dict(payload["context"]), payload["step"])
        context, step = result if isinstance(result, tuple) else (result, payload["step"])
        payload = {**payload, "context": context, "step": step, "position": []}
    try:
        point = resume_point(pipeline, payload, override)
    except InvalidCheckpoint as exc:
        raise PipelineChanged(f"Pipeline {pipeline.name!r} changed since this checkpoint was made: {exc}") from exc
    fields = {
        "context": point.contexts[-1],
        "outer_contexts": list(point.contexts[:-1]),
        "position": list(point.position),
        "current_step": payload["step"],
        "pipeline_version": pipeline.version,
    }
    return fields, pipeline.version


def approve(
    checkpoint: CheckpointRef,
    by: User,
    override_data: Mapping[str, Any] | None = None,
    comment: str = "",
    expected_version: int | None = None,
) -> Checkpoint:
    """Record ``by``'s approval; with the last required approval, resume the run with the edits merged."""
    cp, reviewer = _open(checkpoint, by, expected_version)
    required = cp.approvals_required
    # A pending checkpoint that needs one approval has none yet (the first one decides it).
    approvers = list(cp.approvals.values_list("user_id", flat=True)) if required > 1 else []
    if reviewer.pk in approvers:
        raise ReviewConflict("You have already approved this checkpoint.")
    data = _validated(cp, override_data) if override_data else {}
    override = {**cp.override_data, **data}
    count = len(approvers) + 1
    quorum = count >= required
    run_fields = _resume_state(cp, override)[0] if quorum else None
    held = held_here() if quorum else None
    before = cp.effective_context
    now = timezone.now()
    changes: dict[str, Any] = {"override_data": override}
    if quorum:
        changes.update(status=CheckpointStatus.APPROVED, decided_by=reviewer, decided_at=now, comment=comment)
    events = []
    if data:
        changes_made = {"changes": diff(before, data)}
        events.append(audit_event(cp.run, AuditAction.EDITED, checkpoint=cp, actor=reviewer, data=changes_made))
    approved = {"approvals": count, "required": required}
    events.append(audit_event(cp.run, AuditAction.APPROVED, checkpoint=cp, actor=reviewer, data=approved, note=comment))
    move = None
    if run_fields is not None:
        # With the inline executor the run moves straight to running, held by this process.
        move = (RunStatus.PAUSED, RunStatus.RUNNING if held else RunStatus.QUEUED, {**run_fields, **(held or {})})
        events.append(audit_event(cp.run, AuditAction.RESUMED, checkpoint=cp, actor=reviewer, data={"after": cp.step}))
    try:
        _write(cp, changes, events, run=move, approvals=[Approval(checkpoint=cp, user=reviewer, created_at=now)])
    except IntegrityError:
        raise ReviewConflict("You have already approved this checkpoint.") from None
    if quorum:
        checkpoint_decided.send(
            sender=Checkpoint, checkpoint=cp, run=cp.run, decision=CheckpointStatus.APPROVED, user=reviewer
        )
        dispatch(cp.run, held=held is not None)  # inline: runs here now; otherwise queued for a worker
    return cp


def reject(checkpoint: CheckpointRef, by: User, comment: str = "", expected_version: int | None = None) -> Checkpoint:
    """Reject ``checkpoint``: the run ends as ``rejected`` and runs nothing more."""
    cp, reviewer = _open(checkpoint, by, expected_version)
    now = timezone.now()
    decided = {"status": CheckpointStatus.REJECTED, "decided_by": reviewer, "decided_at": now, "comment": comment}
    event = audit_event(cp.run, AuditAction.REJECTED, checkpoint=cp, actor=reviewer, note=comment)
    _write(cp, decided, [event], run=(RunStatus.PAUSED, RunStatus.REJECTED, {"finished_at": now}))
    checkpoint_decided.send(
        sender=Checkpoint, checkpoint=cp, run=cp.run, decision=CheckpointStatus.REJECTED, user=reviewer
    )
    run_finished.send(sender=PipelineRun, run=cp.run, status=cp.run.status)
    return cp


# -- runs ---------------------------------------------------------------------------------


def _check_run_manager(run: PipelineRun, user: User) -> Any:
    actor = _require_active(user)
    if run.started_by_id == actor.pk or actor.has_perm(RUN_MANAGE_PERMISSION):
        return actor
    raise ReviewPermissionDenied(
        f"Only the user who started the run or one with {RUN_MANAGE_PERMISSION!r} can do this."
    )


def cancel_run(run: PipelineRun, by: User) -> PipelineRun:
    """Cancel a run that has not ended; its pending checkpoints are cancelled too."""
    run = PipelineRun.objects.get(pk=run.pk)
    actor = _check_run_manager(run, by)
    if run.is_finished:
        raise ReviewConflict(f"Run {run.pk} already ended ({run.status}).")
    now = timezone.now()
    with transaction.atomic():
        _move_run(run, run.status, RunStatus.CANCELLED, finished_at=now, lease_owner="", lease_expires_at=None)
        pending = list(run.checkpoints.filter(status=CheckpointStatus.PENDING))
        Checkpoint.objects.filter(pk__in=[c.pk for c in pending], status=CheckpointStatus.PENDING).update(
            status=CheckpointStatus.CANCELLED, decided_by=actor, decided_at=now, version=F("version") + 1
        )
        audit(run, AuditAction.RUN_CANCELLED, actor=actor, data={"checkpoints": [str(c.pk) for c in pending]})
    for cp in pending:
        cp.status = CheckpointStatus.CANCELLED
        checkpoint_decided.send(sender=Checkpoint, checkpoint=cp, run=run, decision=cp.status, user=actor)
    run_finished.send(sender=PipelineRun, run=run, status=run.status)
    return run


def retry_run(run: PipelineRun, by: User) -> PipelineRun:
    """Resume a failed run from its last completed step."""
    run = PipelineRun.objects.get(pk=run.pk)
    actor = _check_run_manager(run, by)
    if run.status != RunStatus.FAILED:
        raise ReviewConflict(f"Only failed runs can be retried; run {run.pk} is {run.status}.")
    with transaction.atomic():
        previous = run.error
        _move_run(run, RunStatus.FAILED, RunStatus.QUEUED, error="", traceback="", finished_at=None)
        audit(run, AuditAction.RUN_RETRIED, actor=actor, data={"previous_error": previous, "from": run.current_step})
    if not dispatch(run):
        run.refresh_from_db()
    return run


# -- deadlines ----------------------------------------------------------------------------


def expire_due(now: datetime | None = None) -> int:
    """Apply ``on_timeout`` to pending checkpoints past ``expires_at``; return how many were handled.

    Safe to run from several processes at once: each checkpoint is handled by
    exactly one of them.
    """
    now = now or timezone.now()
    due = list(
        Checkpoint.objects.filter(status=CheckpointStatus.PENDING, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)
    )
    handled = 0
    for pk in due:
        try:
            handled += _expire_one(pk, now)
        except ReviewConflict:
            continue  # another sweeper (or a reviewer) got there first
        except (PipelineChanged, ReviewMisconfigured):
            logger.exception("Could not apply on_timeout to checkpoint %s; it stays pending", pk)
    return handled


def _expire_one(pk: Any, now: datetime) -> int:
    skip_locked = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        rows = Checkpoint.objects.filter(pk=pk, status=CheckpointStatus.PENDING, expires_at__lte=now)
        if skip_locked:
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        if not list(rows):
            return 0  # decided meanwhile, or another sweeper holds it
        cp = _load(pk)
        action = cp.review.get("on_timeout", "reject")
        if action == "escalate" and cp.escalated:
            action = "reject"  # escalated once already: the second deadline ends it
        data = {"on_timeout": action, "expires_at": cp.expires_at.isoformat() if cp.expires_at else None}
        if action == "escalate":
            group_name = cp.review["escalate_to_group"]
            groups = _resolve_groups(group_name, cp.context, cp.step)
            timeout = cp.review.get("timeout_seconds")
            _cas(
                cp,
                escalated=True,
                claimed_by=None,
                claimed_at=None,
                expires_at=now + timedelta(seconds=timeout) if timeout else None,
            )
            cp.assigned_users.clear()
            cp.assigned_groups.set(groups)
            audit(cp.run, AuditAction.ESCALATED, checkpoint=cp, data={**data, "to_group": group_name})
            return 1
        if action == "approve":
            run_fields = _resume_state(cp, cp.override_data)[0]
            _cas(cp, status=CheckpointStatus.APPROVED, decided_at=now)
            audit(cp.run, AuditAction.EXPIRED, checkpoint=cp, data=data)
            audit(cp.run, AuditAction.APPROVED, checkpoint=cp, data={"automatic": True}, note="Approved on timeout")
            _move_run(cp.run, RunStatus.PAUSED, RunStatus.QUEUED, **run_fields)
            audit(cp.run, AuditAction.RESUMED, checkpoint=cp, data={"after": cp.step})
        else:
            _cas(cp, status=CheckpointStatus.EXPIRED, decided_at=now)
            audit(cp.run, AuditAction.EXPIRED, checkpoint=cp, data=data)
            if action == "fail":
                error = f"Review of step {cp.step!r} timed out"
                _move_run(cp.run, RunStatus.PAUSED, RunStatus.FAILED, finished_at=now, error=error)
                audit(cp.run, AuditAction.RUN_FAILED, checkpoint=cp, data={"step": cp.step, "error": error})
            else:
                _move_run(cp.run, RunStatus.PAUSED, RunStatus.REJECTED, finished_at=now)
    decision = CheckpointStatus.APPROVED if action == "approve" else CheckpointStatus.EXPIRED
    checkpoint_decided.send(sender=Checkpoint, checkpoint=cp, run=cp.run, decision=decision, user=None)
    if action == "approve":
        dispatch(cp.run)
    else:
        run_finished.send(sender=PipelineRun, run=cp.run, status=cp.run.status)
    return 1
