"""The review services: the only code that changes review state.

Every function checks, at the moment of the change, that the user may act (asking
:mod:`stepkit_django.permissions`); changes the row with compare-and-set through
:mod:`stepkit_django.transitions`, so of concurrent callers exactly one wins and
the others get :class:`~stepkit_django.exceptions.ReviewConflict`; and appends its
audit events (:mod:`stepkit_django.audit`) with the change. The admin and the REST
API call these and nothing else.

The data rules: an approval attests to the effective data (context and edits) at
the moment it is given, so any change of a value voids the approvals given before
it; no one decides after the deadline (the ``on_timeout`` rule applies); a claim
older than ``STEPKIT["CLAIM_TIMEOUT"]``, or held by an inactive user, no longer
blocks others.

The services that act on one checkpoint take the instance or its primary key;
either way they read it afresh, so an instance loaded earlier is never stale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any, TypeAlias
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from . import audiences, audit, choices, permissions, quorum, revisions
from .assignments import resolve_groups, resolve_targets
from .conf import settings
from .exceptions import (
    InvalidAssignment,
    InvalidDecision,
    ReviewConflict,
    ReviewExpired,
    ReviewPermissionDenied,
)
from .execution.executors import dispatch, held_fields
from .links import action_url
from .models import Approval, AuditEvent, Checkpoint, PipelineRun
from .overrides import diff, validate_override
from .pausing import create_checkpoint, reopen_checkpoint
from .reruns import rerun_from
from .reruns import resume_state as _resume_state
from .signals import checkpoint_decided, run_finished
from .status import AuditAction, CheckpointStatus, RunStatus, run_status_word
from .telemetry import tracing
from .telemetry.tracing import decision
from .transitions import already_decided, cancel_checkpoints, lock_run, move_run, write_checkpoint

__all__ = [
    "action_url",
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
    "request_changes",
    "rerun_from",
    "retry_run",
]

#: The note of an automatic approval (stored in English, translated when shown).
APPROVED_ON_TIMEOUT = gettext_noop("Approved on timeout")

#: A checkpoint, or its primary key.
CheckpointRef: TypeAlias = "Checkpoint | UUID | str"

logger = logging.getLogger("stepkit_django")
User = AbstractBaseUser | AnonymousUser | None

can_review = permissions.can_review


# -- checks -----------------------------------------------------------------------------


def _load(checkpoint: CheckpointRef) -> Checkpoint:
    pk = checkpoint.pk if isinstance(checkpoint, Checkpoint) else checkpoint
    return Checkpoint.objects.select_related("run").get(pk=pk)


def check_pending(checkpoint: Checkpoint, expected_version: int | None = None) -> None:
    """Raise ReviewConflict unless ``checkpoint`` is pending (at ``expected_version``, when given)."""
    if checkpoint.status != CheckpointStatus.PENDING:
        raise ReviewConflict(
            already_decided(checkpoint.status, checkpoint.decided_by if checkpoint.decided_by_id else None)
        )
    if expected_version is not None and expected_version != checkpoint.version:
        raise ReviewConflict(
            gettext(
                "This checkpoint changed since you loaded it (version %(expected)s, now %(version)s); "
                "reload it and try again."
            )
            % {"expected": expected_version, "version": checkpoint.version}
        )


def _check_deadline(checkpoint: Checkpoint) -> None:
    """Raise ReviewExpired once the deadline has passed, after applying the timeout rule if nobody has yet."""
    now = timezone.now()
    if checkpoint.expires_at is None or checkpoint.expires_at > now:
        return
    # The sweeper may not have run yet: apply the rule now, unless inside the caller's transaction, whose
    # rollback (this call raises) would undo the decision but not the steps an inline executor ran.
    if not connection.in_atomic_block:
        try:
            _expire_one(checkpoint.pk, now)
        except ReviewConflict:
            pass  # someone else applied it meanwhile
        except Exception:
            logger.exception("Could not apply on_timeout to checkpoint %s; the sweeper will", checkpoint.pk)
    rule = checkpoint.review.get("on_timeout", "reject")
    raise ReviewExpired(
        gettext(
            "The deadline for this review passed at %(deadline)s UTC; no decision can be taken any more "
            "(the checkpoint's timeout rule, %(rule)r, applies)."
        )
        % {"deadline": f"{checkpoint.expires_at:%Y-%m-%d %H:%M}", "rule": rule}
    )


def _take_over(checkpoint: Checkpoint, user: Any) -> list[AuditEvent]:
    """The events of taking over another user's lapsed claim; ReviewConflict while the claim holds.

    A claim lapses after ``STEPKIT["CLAIM_TIMEOUT"]``, or when its holder is no longer active.
    """
    if checkpoint.claimed_by_id is None or checkpoint.claimed_by_id == user.pk:
        return []
    holder = checkpoint.claimed_by
    assert holder is not None
    lapsed_at = (checkpoint.claimed_at or timezone.now()) + settings.CLAIM_TIMEOUT
    if holder.is_active and lapsed_at > timezone.now():
        raise ReviewConflict(gettext("This checkpoint is claimed by %(holder)s.") % {"holder": holder})
    reason = "holder inactive" if not holder.is_active else "claim expired"  # stored: sentences.py tells it
    data = {"claimed_by": holder.get_username(), "reason": reason, "taken_over_by": user.get_username()}
    return [audit.event(checkpoint.run, AuditAction.RELEASED, checkpoint=checkpoint, actor=user, data=data)]


def _open(checkpoint: CheckpointRef, by: User, expected_version: int | None) -> tuple[Checkpoint, Any, list[Any]]:
    """Reload ``checkpoint`` and check that ``by`` may act on it now: pending, before the deadline,
    allowed, not claimed by another (a lapsed claim is taken over: its events come third)."""
    cp = _load(checkpoint)
    check_pending(cp, expected_version)
    reviewer = permissions.check_reviewer(cp, by)
    _check_deadline(cp)
    return cp, reviewer, _take_over(cp, reviewer)


_CLEAR_CLAIM = {"claimed_by": None, "claimed_at": None}


# -- claiming -----------------------------------------------------------------------------


def claim(checkpoint: CheckpointRef, by: User, *, expected_version: int | None = None) -> Checkpoint:
    """Take ``checkpoint`` so that no one else decides it while ``by`` works on it."""
    cp, reviewer, took_over = _open(checkpoint, by, expected_version)
    if cp.claimed_by_id == reviewer.pk:
        return cp
    claimed = {"claimed_by": reviewer, "claimed_at": timezone.now()}
    write_checkpoint(cp, claimed, [*took_over, audit.event(cp.run, AuditAction.CLAIMED, checkpoint=cp, actor=reviewer)])
    return cp


def release(checkpoint: CheckpointRef, by: User, *, expected_version: int | None = None) -> Checkpoint:
    """Give back a claim (the holder, or a superuser for someone else's claim)."""
    cp = _load(checkpoint)
    check_pending(cp, expected_version)
    user = permissions.require_active(by)
    if cp.claimed_by_id is None:
        raise ReviewConflict(gettext("This checkpoint is not claimed."))
    if cp.claimed_by_id != user.pk and not permissions.is_superuser(user):
        raise ReviewPermissionDenied(
            gettext("Only %(holder)s (or a superuser) can release this claim.") % {"holder": cp.claimed_by}
        )
    event = audit.event(
        cp.run, AuditAction.RELEASED, checkpoint=cp, actor=user, data={"claimed_by": str(cp.claimed_by)}
    )
    write_checkpoint(cp, _CLEAR_CLAIM, [event])
    return cp


def claim_next(by: User, queryset: QuerySet[Checkpoint] | None = None, **filters: Any) -> Checkpoint | None:
    """Claim the oldest pending checkpoint ``by`` may review and nobody holds, or return None.

    ``queryset`` (a filtered ``Checkpoint`` queryset, such as the API's filtered queue)
    and ``filters`` (``pipeline_name="...", step="..."``) narrow the candidates.
    Unclaimed checkpoints and lapsed claims are candidates; those past their deadline
    are not. On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP LOCKED``,
    so concurrent callers never receive the same checkpoint and never wait for each other.
    """
    reviewer = permissions.require_active(by)
    now = timezone.now()
    base = Checkpoint.objects.all() if queryset is None else queryset
    if base.query.distinct or base.query.is_sliced:
        # FOR UPDATE cannot lock rows of a DISTINCT or sliced query: take its ids instead.
        base = Checkpoint.objects.filter(pk__in=base.values("pk"))
    free = Q(claimed_by__isnull=True) | Q(claimed_at__lt=now - settings.CLAIM_TIMEOUT) | Q(claimed_by__is_active=False)
    queue = permissions.claimable_permissions(
        base.visible_to(reviewer)  # type: ignore[attr-defined]
        .filter(free, Q(expires_at__isnull=True) | Q(expires_at__gt=now), status=CheckpointStatus.PENDING, **filters)
        .order_by("created_at", "pk"),
        reviewer,
    )
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
            if not permissions.can_review(cp, reviewer) or _quorum_refuses(cp, reviewer):
                continue
            if skip_locked and not lock_run(cp.run_id, skip_locked=True):
                continue  # its run is busy (a decision, a cancellation): the lock order is the run's first
            try:
                took_over = _take_over(cp, reviewer)
                event = audit.event(
                    cp.run, AuditAction.CLAIMED, checkpoint=cp, actor=reviewer, data={"via": "claim_next"}
                )
                write_checkpoint(cp, {"claimed_by": reviewer, "claimed_at": timezone.now()}, [*took_over, event])
            except ReviewConflict:
                continue
            return cp


def _quorum_refuses(cp: Checkpoint, user: Any) -> bool:
    """With a per-group quorum, whether ``user`` could not add an approval (their groups' counts are met, or
    they are in none): "Review next" does not hand them the item, which would keep its approvers out."""
    if not quorum.applies(cp.review):
        return False
    return quorum.refusal(cp.review, user, cp.approvals.values_list("group", flat=True)) is not None


def reassign(
    checkpoint: CheckpointRef,
    by: User,
    *,
    to_users: Iterable[Any] | None = None,
    to_groups: Iterable[Any] | None = None,
    expected_version: int | None = None,
) -> Checkpoint:
    """Assign ``checkpoint`` to other users and/or groups (replacing the assignment) and drop any claim.

    Needs ``stepkit_django.reassign_checkpoint``; the run's starter and anyone who
    approved the checkpoint may not. Target users must exist, be active and hold
    the checkpoint's review permission; target groups must exist
    (:class:`InvalidAssignment` otherwise).
    """
    cp = _load(checkpoint)
    check_pending(cp, expected_version)
    approvers = cp.approvals.values_list("user_id", flat=True)
    actor = permissions.check_reassign(cp, by, approvers)
    _check_deadline(cp)
    took_over = _take_over(cp, actor)
    users, groups = resolve_targets(to_users or [], to_groups or [])
    unfit = permissions.unfit_reviewers(cp, users)
    if unfit:
        permission = permissions.review_permission_of(cp)
        message = gettext("%(name)s cannot review this checkpoint (needs %(permission)r).")
        raise InvalidAssignment({"to_users": [message % {"name": name, "permission": permission} for name in unfit]})
    if cp.approvals_by_group:
        _check_quorum_reachable(cp, users, groups, actor)
    before = {
        "users": sorted(u.get_username() for u in cp.assigned_users.all()),
        "groups": sorted(g.name for g in cp.assigned_groups.all()),
    }
    after = {"users": sorted(u.get_username() for u in users), "groups": sorted(g.name for g in groups)}
    event = audit.event(
        cp.run, AuditAction.REASSIGNED, checkpoint=cp, actor=actor, data={"before": before, "after": after}
    )
    with transaction.atomic():
        write_checkpoint(cp, {**_CLEAR_CLAIM, "assigned": True}, [*took_over, event])
        audiences.assign(cp, users, groups)  # one audience, for the final assignees
    return cp


# -- editing and deciding -----------------------------------------------------------------


def _check_quorum_reachable(cp: Checkpoint, users: list[Any], groups: list[Any], actor: Any) -> None:
    """A per-group quorum's item may only be handed to people who can still complete every group's count:
    each assigned user in one of the groups, and for each group enough of its members among the new
    assignees who hold the permission and have not approved yet (nor reassigned it: they may not approve)."""
    groups_needed = ", ".join(name for name, _count in cp.approvals_by_group)
    outside = quorum.outsiders(cp.review, users)
    if outside:
        message = gettext("%(name)s is in none of the groups whose approvals this item needs (%(groups)s).")
        raise InvalidAssignment({"to_users": [message % {"name": name, "groups": groups_needed} for name in outside]})
    given = list(cp.approvals.values_list("user_id", "group"))
    excluded = [user_id for user_id, _group in given] + [actor.pk]
    short = quorum.uncovered(
        cp.review, [group for _uid, group in given], users, groups, permissions.review_permission_of(cp), excluded
    )
    if short:
        message = gettext(
            "Among these reviewers, too few can give the approvals still needed from %(groups)s: "
            "add members of those groups."
        )
        raise InvalidAssignment({"__all__": [message % {"groups": ", ".join(group.group for group in short)}]})


def _validated(cp: Checkpoint, override_data: object) -> dict[str, Any]:
    """The edits of ``override_data`` that change a value (validated); empty when nothing changes."""
    choices.refuse_edit(cp, override_data)
    revisions.refuse_edit(cp, override_data)
    data = validate_override(
        override_data,
        context=cp.effective_context,
        editable=cp.editable_keys,
        schema=cp.review.get("schema"),
        existing=cp.override_data,
    )
    changed = diff(cp.effective_context, data)
    return {key: data[key] for key in changed}


def _voids(
    cp: Checkpoint, given: list[tuple[Any, Any, Any, str]], edits: Mapping[str, Any], actor: Any
) -> tuple[list[Any], list[AuditEvent]]:
    """The approvals ``given`` (see :func:`_approvals`) that a change of ``edits`` voids, and the event
    that says so: all of them, since each attested to the data before the change."""
    if not edits or not given:
        return [], []
    voided = sorted(str(name) for _pk, _uid, name, _group in given)
    data = {"voided": voided, "changed": sorted(edits), "version": cp.version}
    event = audit.event(cp.run, AuditAction.APPROVALS_VOIDED, checkpoint=cp, actor=actor, data=data)
    return [pk for pk, *_rest in given], [event]


def _approvals(cp: Checkpoint) -> list[tuple[Any, Any, Any, str]]:
    """The approvals given so far, as ``(pk, user id, username, group counted for)``."""
    return list(cp.approvals.values_list("pk", "user_id", "user__" + _username_field(), "group"))


def _username_field() -> str:
    return str(get_user_model().USERNAME_FIELD)


def edit(
    checkpoint: CheckpointRef, by: User, override_data: Mapping[str, Any], expected_version: int | None = None
) -> Checkpoint:
    """Save edits to the data the run will resume with; validated, and audited as before → after.

    An edit that changes no value changes nothing (no new version, no event). One
    that does voids the approvals given before it.
    """
    cp, reviewer, took_over = _open(checkpoint, by, expected_version)
    data = _validated(cp, override_data)
    if not data:
        return cp
    changes = {"changes": diff(cp.effective_context, data)}
    void, voided = _voids(cp, _approvals(cp), data, reviewer)
    events = [*took_over, audit.event(cp.run, AuditAction.EDITED, checkpoint=cp, actor=reviewer, data=changes), *voided]
    fields = {"override_data": {**cp.override_data, **data}, **(_CLEAR_CLAIM if took_over else {})}
    write_checkpoint(cp, fields, events, void=void)
    return cp


@decision("approve")
def approve(
    checkpoint: CheckpointRef,
    by: User,
    override_data: Mapping[str, Any] | None = None,
    comment: str = "",
    expected_version: int | None = None,
    *,
    choice: choices.Choice = None,
) -> Checkpoint:
    """Record ``by``'s approval of the data as it will then be; with the last required approval, resume the run.

    Edits given with the approval that change a value void the approvals given
    before (they attested to other data): the quorum is then counted again. A review
    with choices needs ``choice`` (a key, or keys with ``multiple=True``), written into
    the resumed context at its ``choice_key``; see :mod:`stepkit_django.choices`. With a per-group
    quorum, the approval counts toward one of ``by``'s groups whose count is still open (see
    :mod:`stepkit_django.quorum`), and the run resumes once every group's count is met.
    """
    cp, reviewer, took_over = _open(checkpoint, by, expected_version)
    required = cp.approvals_required
    by_group = quorum.applies(cp.review)
    if cp.assigned:  # only a checkpoint that has assignees can have been reassigned
        reassigners = AuditEvent.objects.filter(checkpoint=cp, action=AuditAction.REASSIGNED, actor__isnull=False)
        permissions.check_approver(cp, reviewer, reassigners.values_list("actor_id", flat=True))
    # A pending checkpoint that needs one approval has none yet (the first one decides it).
    given = _approvals(cp) if required > 1 else []
    approvers = [user_id for _pk, user_id, _name, _group in given]
    if reviewer.pk in approvers:
        raise ReviewConflict(gettext("You have already approved this checkpoint."))
    data = _validated(cp, override_data) if override_data else {}
    void, voided = _voids(cp, given, data, reviewer)
    kept = [(user_id, group) for pk, user_id, _name, group in given if pk not in void]
    # An edit that voids the approvals opens the counts again, so the group is chosen after the voiding.
    group = quorum.group_for(cp.review, reviewer, [g for _uid, g in kept]) if by_group else ""
    picked = choices.chosen(cp, choice, [user_id for user_id, _group in kept])
    count = len(kept) + 1
    if by_group:
        decided = quorum.is_met(quorum.progress(cp.review, [*(g for _uid, g in kept), group]))
    else:
        decided = count >= required
    override = {**cp.override_data, **data}
    now = timezone.now()
    approved_with = revisions.with_decision(
        cp, {**override, **picked}, CheckpointStatus.APPROVED, reviewer, comment, now
    )
    run_fields = _resume_state(cp, approved_with)[0] if decided else None
    changes: dict[str, Any] = {"override_data": override} if data else {}
    if decided:
        changes.update(status=CheckpointStatus.APPROVED, decided_by=reviewer, decided_at=now, comment=comment)
    elif took_over:
        changes.update(_CLEAR_CLAIM)
    events = list(took_over)
    if data:
        edited = {"changes": diff(cp.effective_context, data)}
        events += [audit.event(cp.run, AuditAction.EDITED, checkpoint=cp, actor=reviewer, data=edited), *voided]
    approved: dict[str, Any] = {"approvals": count, "required": required, "version": cp.version}  # attested to
    if by_group:
        approved["group"] = group
    approved.update(choices.recorded(cp, picked))
    events.append(audit.event(cp.run, AuditAction.APPROVED, checkpoint=cp, actor=reviewer, data=approved, note=comment))
    move, held = None, {}
    if run_fields is not None:
        held = held_fields(cp.run)  # inline: the run is written running, held by this process (no lease statement)
        move = (RunStatus.PAUSED, held.get("status", RunStatus.QUEUED), {**run_fields, **held})
        events.append(audit.event(cp.run, AuditAction.RESUMED, checkpoint=cp, actor=reviewer, data={"after": cp.step}))
    approval = Approval(checkpoint=cp, user=reviewer, group=group, created_at=now)
    try:
        write_checkpoint(cp, changes, events, run=move, approvals=[approval], void=void)
    except IntegrityError:
        raise ReviewConflict(gettext("You have already approved this checkpoint.")) from None
    if decided:
        checkpoint_decided.send(
            sender=Checkpoint, checkpoint=cp, run=cp.run, decision=CheckpointStatus.APPROVED, user=reviewer
        )
        dispatch(cp.run, held=bool(held))  # inline: runs here now; otherwise queued for a worker
    return cp


@decision("reject")
def reject(checkpoint: CheckpointRef, by: User, comment: str = "", expected_version: int | None = None) -> Checkpoint:
    """Reject ``checkpoint``: the run ends as ``rejected`` and runs nothing more.

    Raises :class:`InvalidDecision` without a ``comment`` when the review was declared
    with ``require_reject_reason=True``.
    """
    cp, reviewer, took_over = _open(checkpoint, by, expected_version)
    comment = (comment or "").strip()
    if cp.review.get("require_reject_reason") and not comment:
        raise InvalidDecision({"comment": [gettext("Say why you reject this: the reason is required.")]})
    now = timezone.now()
    decided = {"status": CheckpointStatus.REJECTED, "decided_by": reviewer, "decided_at": now, "comment": comment}
    event = audit.event(cp.run, AuditAction.REJECTED, checkpoint=cp, actor=reviewer, note=comment)
    write_checkpoint(cp, decided, [*took_over, event], run=(RunStatus.PAUSED, RunStatus.REJECTED, {"finished_at": now}))
    checkpoint_decided.send(
        sender=Checkpoint, checkpoint=cp, run=cp.run, decision=CheckpointStatus.REJECTED, user=reviewer
    )
    run_finished.send(sender=PipelineRun, run=cp.run, status=cp.run.status)
    return cp


@decision("request_changes")
def request_changes(
    checkpoint: CheckpointRef,
    by: User,
    comment: str,
    *,
    to_step: str | None = None,
    override_data: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> Checkpoint:
    """Send the work back with ``comment``: the checkpoint ends as ``changes_requested`` and the run runs
    ``to_step`` (default: the reviewed step; or an earlier one of its level) and the steps after it again,
    reading the comment under the review's decision key; the reviewed step then pauses for a new revision.

    Who may request changes is who may approve. Raises :class:`InvalidDecision` without a comment or for a
    ``to_step`` the run cannot go back to, and :class:`ReviewConflict` once ``Review(max_revisions=...)``
    requests were made on this step (see :mod:`stepkit_django.revisions`).
    """
    cp, reviewer, took_over = _open(checkpoint, by, expected_version)
    if cp.assigned:  # the rules of an approval: who reassigned it chose its reviewers
        reassigners = AuditEvent.objects.filter(checkpoint=cp, action=AuditAction.REASSIGNED, actor__isnull=False)
        permissions.check_approver(cp, reviewer, reassigners.values_list("actor_id", flat=True))
    comment = revisions.check_request(cp, comment)
    data = _validated(cp, override_data) if override_data else {}
    now = timezone.now()
    override = revisions.with_decision(
        cp, {**cp.override_data, **data}, CheckpointStatus.CHANGES_REQUESTED, reviewer, comment, now
    )
    step, run_fields = revisions.rerun_fields(cp, _resume_state(cp, override)[0], to_step)
    changes: dict[str, Any] = {"override_data": {**cp.override_data, **data}} if data else {}
    changes.update(status=CheckpointStatus.CHANGES_REQUESTED, decided_by=reviewer, decided_at=now, comment=comment)
    events = list(took_over)
    if data:
        edited = {"changes": diff(cp.effective_context, data)}
        events.append(audit.event(cp.run, AuditAction.EDITED, checkpoint=cp, actor=reviewer, data=edited))
    requested = {"to_step": step, "revision": cp.revision}
    events.append(
        audit.event(cp.run, AuditAction.CHANGES_REQUESTED, checkpoint=cp, actor=reviewer, data=requested, note=comment)
    )
    write_checkpoint(cp, changes, events, run=(RunStatus.PAUSED, RunStatus.QUEUED, run_fields))
    checkpoint_decided.send(
        sender=Checkpoint, checkpoint=cp, run=cp.run, decision=CheckpointStatus.CHANGES_REQUESTED, user=reviewer
    )
    dispatch(cp.run)  # inline: the steps run again here now; otherwise queued for a worker
    return cp


# -- runs ---------------------------------------------------------------------------------


def cancel_run(run: PipelineRun, by: User) -> PipelineRun:
    """Cancel a run that has not ended; its pending checkpoints are cancelled too.

    A run that a worker is executing stops at the next step boundary: the step in
    flight completes, and the worker records it in the trail before it stops.
    """
    run = PipelineRun.objects.get(pk=run.pk)
    actor = permissions.check_run_manager(run, by)
    if run.is_finished:
        raise ReviewConflict(
            gettext("Run %(run)s already ended (%(status)s).") % {"run": run.pk, "status": run_status_word(run.status)}
        )
    now = timezone.now()
    # A running run keeps its lease owner, so that its worker can still record the step in flight.
    lease = (
        {"lease_expires_at": None} if run.status == RunStatus.RUNNING else {"lease_owner": "", "lease_expires_at": None}
    )
    with transaction.atomic():
        move_run(run, run.status, RunStatus.CANCELLED, finished_at=now, **lease)  # the run first: the lock order
        pending = cancel_checkpoints(run, actor, now)
        audit.record(run, AuditAction.RUN_CANCELLED, actor=actor, data={"checkpoints": [str(pk) for pk in pending]})
    for cp in Checkpoint.objects.filter(pk__in=pending):
        checkpoint_decided.send(sender=Checkpoint, checkpoint=cp, run=run, decision=cp.status, user=actor)
    run_finished.send(sender=PipelineRun, run=run, status=run.status)
    return run


def retry_run(run: PipelineRun, by: User) -> PipelineRun:
    """Resume a failed run from its last completed step.

    A run that failed because its review deadline passed (``on_timeout="fail"``) is
    not resumed past the review: the review is opened again, with a new pending
    checkpoint for the same step (same review settings and assignees, a new deadline).
    """
    run = PipelineRun.objects.get(pk=run.pk)
    actor = permissions.check_run_manager(run, by)
    if run.status != RunStatus.FAILED:
        raise ReviewConflict(
            gettext("Only failed runs can be retried; run %(run)s is %(status)s.")
            % {"run": run.pk, "status": run_status_word(run.status)}
        )
    timed_out = run.checkpoints.order_by("-created_at").first()
    if timed_out is not None and timed_out.status == CheckpointStatus.EXPIRED:
        return _reopen_review(run, timed_out, actor)
    with transaction.atomic():
        previous = run.error
        move_run(run, RunStatus.FAILED, RunStatus.QUEUED, error="", traceback="", finished_at=None)
        audit.record(
            run, AuditAction.RUN_RETRIED, actor=actor, data={"previous_error": previous, "from": run.current_step}
        )
    if not dispatch(run):
        run.refresh_from_db()
    return run


def _reopen_review(run: PipelineRun, expired: Checkpoint, actor: Any) -> PipelineRun:
    with transaction.atomic():
        previous = run.error
        move_run(run, RunStatus.FAILED, RunStatus.PAUSED, error="", traceback="", finished_at=None)
        audit.record(
            run,
            AuditAction.RUN_RETRIED,
            actor=actor,
            data={"previous_error": previous, "from": run.current_step, "review_reopened": expired.step},
        )
        reopen_checkpoint(run, expired, {"reopened_from": str(expired.pk)}, same_revision=True)
    return run


# -- deadlines ----------------------------------------------------------------------------


def expire_due(now: datetime | None = None) -> int:
    """Apply ``on_timeout`` to pending checkpoints past ``expires_at``; return how many were handled.

    Safe to run from several processes at once, and alongside reviewers: each
    checkpoint is handled on its own, by exactly one of them, and a conflict on one
    does not stop the others.
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
            continue  # another sweeper (or a cancellation) got there first
        except Exception:  # one checkpoint that cannot be handled must not stop the others
            logger.exception("Could not apply on_timeout to checkpoint %s; it stays pending", pk)
    return handled


def _expire_one(pk: Any, now: datetime) -> int:
    # The decision's span opens once the checkpoint is locked and still due: an expiry another sweeper
    # (or a decision) got to first is no decision of this process's, and has no span.
    with ExitStack() as traced:
        with transaction.atomic():
            run_id = Checkpoint.objects.filter(pk=pk).values_list("run_id", flat=True).first()
            if run_id is None:
                return 0
            lock_run(run_id)  # the run first, then the checkpoint: the lock order of every decision
            rows = Checkpoint.objects.filter(pk=pk, status=CheckpointStatus.PENDING, expires_at__lte=now)
            if not list(rows.select_for_update(no_key=True).values_list("pk", flat=True)):
                return 0  # decided meanwhile, or another sweeper handled it
            traced.enter_context(tracing.deciding("expire", pk))
            cp = _load(pk)
            action = _apply_timeout(cp, now)
        if action == "escalate":
            tracing.decided(cp, "escalated")  # not decided: sent to another group, with a new deadline
            return 1
        decision = CheckpointStatus.APPROVED if action == "approve" else CheckpointStatus.EXPIRED
        checkpoint_decided.send(sender=Checkpoint, checkpoint=cp, run=cp.run, decision=decision, user=None)
        if action == "approve":
            dispatch(cp.run)
        else:
            run_finished.send(sender=PipelineRun, run=cp.run, status=cp.run.status)
    return 1


def _apply_timeout(cp: Checkpoint, now: datetime) -> str:
    """Write the checkpoint's ``on_timeout`` rule (inside the caller's transaction); the rule applied."""
    action = str(cp.review.get("on_timeout", "reject"))
    if action == "escalate" and cp.escalated:
        action = "reject"  # escalated once already: the second deadline ends it
    data = {"on_timeout": action, "expires_at": cp.expires_at.isoformat() if cp.expires_at else None}
    if action == "escalate":
        group_name = cp.review["escalate_to_group"]
        groups = resolve_groups(group_name, cp.context, cp.step)
        timeout = cp.review.get("timeout_seconds")
        event = audit.event(cp.run, AuditAction.ESCALATED, checkpoint=cp, data={**data, "to_group": group_name})
        deadline = now + timedelta(seconds=timeout) if timeout else None
        write_checkpoint(cp, {**_CLEAR_CLAIM, "escalated": True, "assigned": True, "expires_at": deadline}, [event])
        audiences.assign(cp, [], groups)
        return action
    expired = audit.event(cp.run, AuditAction.EXPIRED, checkpoint=cp, data=data)
    if action == "approve":
        # An automatic approval applies only edits an approval attests to: any edit voids the approvals
        # given before it, so the edits stand if someone approved after the last of them.
        attested = cp.approvals.exists()
        override = cp.override_data if attested else {}
        run_fields = _resume_state(cp, revisions.with_decision(cp, override, CheckpointStatus.APPROVED, None, "", now))[
            0
        ]
        approved = {"automatic": True, "edits_applied": sorted(override)}
        if cp.override_data and not attested:
            approved["edits_not_applied"] = sorted(cp.override_data)
        # Stored in English; the trail translates system notes when it shows them (admin/trail.py).
        note = (
            APPROVED_ON_TIMEOUT
            if attested or not cp.override_data
            else gettext_noop("Approved on timeout, without the unapproved edits")
        )
        events = [
            expired,
            audit.event(cp.run, AuditAction.APPROVED, checkpoint=cp, data=approved, note=note),
            audit.event(cp.run, AuditAction.RESUMED, checkpoint=cp, data={"after": cp.step}),
        ]
        move = (RunStatus.PAUSED, RunStatus.QUEUED, run_fields)
        write_checkpoint(cp, {"status": CheckpointStatus.APPROVED, "decided_at": now}, events, run=move)
        return action
    if action == "fail":
        error = f"Review of step {cp.step!r} timed out"
        failed = audit.event(cp.run, AuditAction.RUN_FAILED, checkpoint=cp, data={"step": cp.step, "error": error})
        move = (RunStatus.PAUSED, RunStatus.FAILED, {"finished_at": now, "error": error})
        write_checkpoint(cp, {"status": CheckpointStatus.EXPIRED, "decided_at": now}, [expired, failed], run=move)
        return action
    move = (RunStatus.PAUSED, RunStatus.REJECTED, {"finished_at": now})
    write_checkpoint(cp, {"status": CheckpointStatus.EXPIRED, "decided_at": now}, [expired], run=move)
    return action
