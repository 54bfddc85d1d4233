"""The state machines of runs and checkpoints, enforced where statuses are written.

Every change of a run's or a checkpoint's ``status`` is built here: the move is
checked against :data:`~stepkit_django.status.RUN_TRANSITIONS` or
:data:`CHECKPOINT_TRANSITIONS` (an illegal one raises :class:`IllegalTransition`
before anything is sent) and written with compare-and-set, a conditional UPDATE
on the status read (and, for a checkpoint, its version), so that of concurrent
writers exactly one wins and the others get :class:`ReviewConflict`.

**Lock order.** A change that touches several rows locks them in this order: the
run, then its checkpoints (by id), then the checkpoint's approvals and assignments.
:func:`write_checkpoint` updates the run before the checkpoint, ``cancel_run`` and the
deadline sweeper lock the run first (``SELECT … FOR NO KEY UPDATE``, which does not
wait for the key-share locks that inserting audit events takes), so no two
transactions wait for each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import sql
from .exceptions import IllegalTransition, ReviewConflict
from .models import Approval, AuditEvent, Checkpoint, PipelineRun
from .status import RUN_TRANSITIONS, CheckpointStatus

__all__ = [
    "CHECKPOINT_TRANSITIONS",
    "cancel_checkpoints",
    "check_checkpoint",
    "check_run",
    "lock_run",
    "move_run",
    "run_update",
    "write_checkpoint",
]

#: status -> statuses a checkpoint may move to: a decision is final.
CHECKPOINT_TRANSITIONS: dict[str, frozenset[str]] = {
    CheckpointStatus.PENDING: frozenset(
        {CheckpointStatus.APPROVED, CheckpointStatus.REJECTED, CheckpointStatus.EXPIRED, CheckpointStatus.CANCELLED}
    ),
    CheckpointStatus.APPROVED: frozenset(),
    CheckpointStatus.REJECTED: frozenset(),
    CheckpointStatus.EXPIRED: frozenset(),
    CheckpointStatus.CANCELLED: frozenset(),
}


def check_run(source: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless a run may move from ``source`` to ``target``."""
    if target not in RUN_TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(f"A run cannot move from {source!r} to {target!r}.")


def check_checkpoint(source: str, target: str) -> None:
    """Raise :class:`IllegalTransition` unless a checkpoint may move from ``source`` to ``target``."""
    if target not in CHECKPOINT_TRANSITIONS.get(source, frozenset()):
        raise IllegalTransition(f"A checkpoint cannot move from {source!r} to {target!r}.")


def run_update(
    pk: Any,
    source: str,
    target: str,
    fields: Mapping[str, Any],
    where: Mapping[str, Any] | None = None,
    *,
    merge: tuple[str, ...] = (),
) -> sql.Update:
    """The checked, conditional UPDATE that moves run ``pk`` from ``source`` to ``target`` with ``fields``.

    ``merge`` names JSON fields merged into the stored value (see :class:`stepkit_django.sql.Update`).
    """
    check_run(source, target)
    return sql.Update(PipelineRun, pk, {"status": target, **fields}, {"status": source, **(where or {})}, merge=merge)


def cancel_checkpoints(run: PipelineRun, actor: Any, now: Any) -> list[Any]:
    """Cancel the pending checkpoints of ``run`` (call after moving the run: the lock order); their keys."""
    check_checkpoint(CheckpointStatus.PENDING, CheckpointStatus.CANCELLED)
    pending = Checkpoint.objects.filter(run=run, status=CheckpointStatus.PENDING).order_by("pk")
    keys = list(pending.values_list("pk", flat=True))
    Checkpoint.objects.filter(pk__in=keys, status=CheckpointStatus.PENDING).update(
        status=CheckpointStatus.CANCELLED, decided_by=actor, decided_at=now, version=F("version") + 1
    )
    return keys


def move_run(
    run: PipelineRun, source: str, target: str, *, where: Mapping[str, Any] | None = None, **fields: Any
) -> None:
    """Move ``run`` from ``source`` to ``target`` (compare-and-set); ReviewConflict if it is no longer ``source``.

    ``where`` adds conditions (e.g. the lease owner); ``fields`` are written with the status.
    The instance is updated in place.
    """
    now = timezone.now()
    update = run_update(run.pk, source, target, {"updated_at": now, **fields}, where)
    if sql.write([update]) is not None:
        raise ReviewConflict(f"Run {run.pk} is no longer {source}.")
    run.status, run.updated_at = target, now
    for name, value in fields.items():
        setattr(run, name, value)


def lock_run(run_id: Any) -> None:
    """Lock the run's row for this transaction (first, by the lock order above); no-op where rows are not locked."""
    list(PipelineRun.objects.select_for_update(no_key=True).filter(pk=run_id).values_list("pk", flat=True))


def _conflict(checkpoint: Checkpoint, run_source: str | None) -> ReviewConflict:
    """Why a conditional write of ``checkpoint`` (pending, at the version read) changed nothing."""
    current = Checkpoint.objects.filter(pk=checkpoint.pk).values_list("status", flat=True).first()
    if current != CheckpointStatus.PENDING:
        return ReviewConflict(f"This checkpoint was already {current}.")
    if run_source is not None:
        status = PipelineRun.objects.filter(pk=checkpoint.run_id).values_list("status", flat=True).first()
        if status != run_source:
            return ReviewConflict(f"Run {checkpoint.run_id} is no longer {run_source} (it is {status}).")
    return ReviewConflict("Someone else changed this checkpoint at the same time; reload it and try again.")


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

    One statement on PostgreSQL when nothing is voided. The run's row is updated
    before the checkpoint's (the lock order). Raises ReviewConflict when the
    checkpoint or the run changed meanwhile; then nothing is written.
    """
    if "status" in changes:
        check_checkpoint(CheckpointStatus.PENDING, changes["status"])
    now = timezone.now()
    updates = []
    if run is not None:
        source, target, fields = run
        updates.append(run_update(checkpoint.run_id, source, target, {"updated_at": now, **fields}))
    updates.append(
        sql.Update(
            Checkpoint,
            checkpoint.pk,
            {"updated_at": now, **changes},
            where={"status": CheckpointStatus.PENDING, "version": checkpoint.version},
            increment=("version",),
        )
    )
    inserts = [sql.Insert.of(batch) for batch in (events, approvals) if batch]
    if void:
        with transaction.atomic():
            failed = sql.write(updates, inserts)
            if failed is None:
                Approval.objects.filter(pk__in=list(void), checkpoint_id=checkpoint.pk).delete()
    else:
        failed = sql.write(updates, inserts)
    if failed is not None:
        raise _conflict(checkpoint, run[0] if run is not None else None)
    for name, value in changes.items():
        setattr(checkpoint, name, value)
    checkpoint.version += 1
    checkpoint.updated_at = now
    if run is not None:
        checkpoint.run.status, checkpoint.run.updated_at = run[1], now
        for name, value in run[2].items():
            setattr(checkpoint.run, name, value)
