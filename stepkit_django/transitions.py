"""The state machines of runs and checkpoints, enforced where statuses are written.

Every change of a run's or a checkpoint's ``status`` by a person or a periodic
job (a decision, a claim, a reassignment, an expiry, a cancellation, a retry) is
written here, through the ORM, inside ``transaction.atomic()``: the move is
checked against :data:`~stepkit_django.status.RUN_TRANSITIONS` or
:data:`CHECKPOINT_TRANSITIONS` (an illegal one raises :class:`IllegalTransition`
before anything is sent), then claimed with compare-and-set, a conditional
UPDATE on the status read (and, for a checkpoint, its version), so that of
concurrent writers exactly one wins and the others get :class:`ReviewConflict`.
The winner then writes its rows with ``Model.save()`` and creates the approvals
and audit events with it, so ``pre_save``, ``post_save`` and ``post_delete`` are
sent for them as for any model. The writes of a run's execution (its start, each
step, its end, taking a lease) are the hot path and live in
:mod:`stepkit_django.execution`.

**Lock order.** A change that touches several rows locks them in this order: the
run, then its checkpoints (by id), then the checkpoint's approvals and assignments.
:func:`write_checkpoint` claims the run before the checkpoint, ``cancel_run`` and the
deadline sweeper lock the run first (``SELECT … FOR NO KEY UPDATE``, which does not
wait for the key-share locks that inserting audit events takes), so no two
transactions wait for each other in a cycle. Claiming with an UPDATE first (rather
than reading with ``select_for_update()``) also serialises writers on SQLite, which
has no row locks: the first UPDATE takes the database's write lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from .exceptions import IllegalTransition, ReviewConflict
from .models import Approval, AuditEvent, Checkpoint, PipelineRun
from .status import RUN_TRANSITIONS, CheckpointStatus, run_status_word

__all__ = [
    "CHECKPOINT_TRANSITIONS",
    "already_decided",
    "cancel_checkpoints",
    "check_checkpoint",
    "check_run",
    "lock_run",
    "move_run",
    "write_checkpoint",
]

#: status -> statuses a checkpoint may move to: a decision is final (a request for changes too: the
#: revision that follows is a new checkpoint, linked to this one by ``revision_of``).
CHECKPOINT_TRANSITIONS: dict[str, frozenset[str]] = {
    CheckpointStatus.PENDING: frozenset(
        {
            CheckpointStatus.APPROVED,
            CheckpointStatus.REJECTED,
            CheckpointStatus.EXPIRED,
            CheckpointStatus.CANCELLED,
            CheckpointStatus.CHANGES_REQUESTED,
        }
    ),
    CheckpointStatus.APPROVED: frozenset(),
    CheckpointStatus.REJECTED: frozenset(),
    CheckpointStatus.EXPIRED: frozenset(),
    CheckpointStatus.CANCELLED: frozenset(),
    CheckpointStatus.CHANGES_REQUESTED: frozenset(),
}


def check_run(source: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless a run may move from ``source`` to ``target``."""
    if target not in RUN_TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(f"A run cannot move from {source!r} to {target!r}.")


def check_checkpoint(source: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless a checkpoint may move from ``source`` to ``target``."""
    if target not in CHECKPOINT_TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(f"A checkpoint cannot move from {source!r} to {target!r}.")


class _Restored:
    """Put the instances' fields back as they were if the block raises (the database rolled back)."""

    def __init__(self, *instances: models.Model | None) -> None:
        self.saved = [(i, dict(i.__dict__)) for i in instances if i is not None]

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is not None:
            for instance, fields in self.saved:
                instance.__dict__.clear()
                instance.__dict__.update(fields)


def _save(instance: models.Model, fields: Mapping[str, Any]) -> None:
    """Set ``fields`` on ``instance`` and save them (``pre_save`` and ``post_save`` are sent)."""
    for name, value in fields.items():
        setattr(instance, name, value)
    instance.save(update_fields=list(fields))


def _claim_run(pk: Any, source: str, target: str, where: Mapping[str, Any] | None = None) -> bool:
    """Compare-and-set the run's status (its row is this transaction's afterwards); whether it was ``source``."""
    check_run(source, target)
    return bool(PipelineRun.objects.filter(pk=pk, status=source, **(where or {})).update(status=target))


def _claim_checkpoint(checkpoint: Checkpoint) -> bool:
    """Compare-and-set the checkpoint's version; whether it was pending at the version read."""
    claimed = Checkpoint.objects.filter(pk=checkpoint.pk, status=CheckpointStatus.PENDING, version=checkpoint.version)
    return bool(claimed.update(version=F("version") + 1))


def cancel_checkpoints(run: PipelineRun, actor: Any, now: Any) -> list[Any]:
    """Cancel the pending checkpoints of ``run`` (call after moving the run: the lock order); their keys."""
    check_checkpoint(CheckpointStatus.PENDING, CheckpointStatus.CANCELLED)
    keys = []
    with transaction.atomic():
        for checkpoint in Checkpoint.objects.filter(run=run, status=CheckpointStatus.PENDING).order_by("pk"):
            if _claim_checkpoint(checkpoint):
                fields = {"status": CheckpointStatus.CANCELLED, "decided_by": actor, "decided_at": now}
                _save(checkpoint, {**fields, "version": checkpoint.version + 1, "updated_at": now})
                keys.append(checkpoint.pk)
    return keys


# One sentence per status, so that each language can say it its own way (marked here, translated when said).
_DECIDED = {
    CheckpointStatus.APPROVED: gettext_noop("This checkpoint was already approved."),
    CheckpointStatus.REJECTED: gettext_noop("This checkpoint was already rejected."),
    CheckpointStatus.EXPIRED: gettext_noop("This checkpoint was already expired."),
    CheckpointStatus.CANCELLED: gettext_noop("This checkpoint was already cancelled."),
    CheckpointStatus.CHANGES_REQUESTED: gettext_noop("Changes were already requested on this checkpoint."),
}
_DECIDED_OTHER = gettext_noop("This checkpoint was already %(status)s.")
_DECIDED_BY = {
    CheckpointStatus.APPROVED: gettext_noop("This checkpoint was already approved by %(user)s."),
    CheckpointStatus.REJECTED: gettext_noop("This checkpoint was already rejected by %(user)s."),
    CheckpointStatus.EXPIRED: gettext_noop("This checkpoint was already expired by %(user)s."),
    CheckpointStatus.CANCELLED: gettext_noop("This checkpoint was already cancelled by %(user)s."),
    CheckpointStatus.CHANGES_REQUESTED: gettext_noop("%(user)s already requested changes on this checkpoint."),
}
_DECIDED_BY_OTHER = gettext_noop("This checkpoint was already %(status)s by %(user)s.")


def already_decided(status: str, by: Any = None) -> str:
    """Why a checkpoint that is no longer pending cannot be acted on, in the current language."""
    if by is not None:
        return gettext(_DECIDED_BY.get(status, _DECIDED_BY_OTHER)) % {"status": status, "user": by}  # type: ignore[call-overload]
    return gettext(_DECIDED.get(status, _DECIDED_OTHER)) % {"status": status}  # type: ignore[call-overload]


def move_run(
    run: PipelineRun, source: str, target: str, *, where: Mapping[str, Any] | None = None, **fields: Any
) -> None:
    """Move ``run`` from ``source`` to ``target`` (compare-and-set); ReviewConflict if it is no longer ``source``.

    ``where`` adds conditions (e.g. the lease owner); ``fields`` are written with the status.
    The instance is updated in place.
    """
    with transaction.atomic(), _Restored(run):
        if not _claim_run(run.pk, source, target, where):
            raise ReviewConflict(
                gettext("Run %(run)s is no longer %(status)s.") % {"run": run.pk, "status": run_status_word(source)}
            )
        _save(run, {"status": target, "updated_at": timezone.now(), **fields})


def lock_run(run_id: Any) -> None:
    """Lock the run's row for this transaction (first, by the lock order above); no-op where rows are not locked."""
    list(PipelineRun.objects.select_for_update(no_key=True).filter(pk=run_id).values_list("pk", flat=True))


def _conflict(checkpoint: Checkpoint, run_source: str | None) -> ReviewConflict:
    """Why a conditional write of ``checkpoint`` (pending, at the version read) changed nothing."""
    current = Checkpoint.objects.filter(pk=checkpoint.pk).values_list("status", flat=True).first()
    if current != CheckpointStatus.PENDING:
        return ReviewConflict(already_decided(str(current)))
    if run_source is not None:
        status = PipelineRun.objects.filter(pk=checkpoint.run_id).values_list("status", flat=True).first()
        if status != run_source:
            return ReviewConflict(
                gettext("Run %(run)s is no longer %(source)s (it is %(status)s).")
                % {
                    "run": checkpoint.run_id,
                    "source": run_status_word(run_source),
                    "status": run_status_word(str(status)),
                }
            )
    return ReviewConflict(gettext("Someone else changed this checkpoint at the same time; reload it and try again."))


def write_checkpoint(
    checkpoint: Checkpoint,
    changes: Mapping[str, Any],
    events: Sequence[AuditEvent],
    *,
    run: tuple[str, str, Mapping[str, Any]] | None = None,
    approvals: Sequence[Approval] = (),
    void: Sequence[Any] = (),
) -> None:
    """Change the pending checkpoint at the version read, move its run ``(from, to, fields)``, append
    ``events`` and ``approvals`` and delete the approvals ``void`` (primary keys): all or nothing.

    The run is claimed before the checkpoint (the lock order). Raises
    ReviewConflict when the checkpoint or the run changed meanwhile; then nothing
    is written and the instances are as they were.
    """
    if "status" in changes:
        check_checkpoint(CheckpointStatus.PENDING, changes["status"])
    if run is not None:
        check_run(run[0], run[1])
    now = timezone.now()
    with transaction.atomic(), _Restored(checkpoint, checkpoint.run if run is not None else None):
        if run is not None and not _claim_run(checkpoint.run_id, run[0], run[1]):
            raise _conflict(checkpoint, run[0])
        if not _claim_checkpoint(checkpoint):
            raise _conflict(checkpoint, None)
        _save(checkpoint, {**changes, "version": checkpoint.version + 1, "updated_at": now})
        if run is not None:
            _save(checkpoint.run, {"status": run[1], "updated_at": now, **run[2]})
        if void:
            Approval.objects.filter(pk__in=list(void), checkpoint_id=checkpoint.pk).delete()
        for row in (*approvals, *events):
            row.save(force_insert=True)
