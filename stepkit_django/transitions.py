"""The state machines of runs and checkpoints, enforced where statuses are written.

Every change of a run's or a checkpoint's ``status`` by a person or a periodic
job (a decision, a claim, a reassignment, an expiry, a cancellation, a retry) is
written here, through the ORM, inside ``transaction.atomic()``: the move is
checked against :data:`~stepkit_django.status.RUN_TRANSITIONS` or
:data:`CHECKPOINT_TRANSITIONS` (an illegal one raises :class:`IllegalTransition`
before anything is sent), then written with compare-and-set: one conditional
UPDATE of the row's changed fields, on the status read (and, for a checkpoint,
its version), so that of concurrent writers exactly one wins and the others get
:class:`ReviewConflict`. That UPDATE is ``Model.save(update_fields=...)`` with a
condition (:func:`_update_if`): ``pre_save`` is sent before it, as ``save()``
sends it before its own UPDATE (a receiver may still change the instance, or
raise to refuse the change), and ``post_save`` once every row of the change is
claimed, so a writer that loses the race sends ``pre_save`` at most, never
``post_save``. The approvals and audit events are created with the change, and
``pre_save``/``post_save`` (``created=True``) are sent for each of them even where
several events go in one ``bulk_create()`` INSERT; the approvals a change voids are
deleted with ``post_delete``. The writes of a run's execution (its start, each
step, its end, taking a lease) are the hot path and live in
:mod:`stepkit_django.execution`.

**Lock order.** A change that touches several rows locks them in this order: the
run, then its checkpoints (by id), then the checkpoint's approvals and assignments.
:func:`write_checkpoint` claims the run before the checkpoint, ``cancel_run`` and the
deadline sweeper lock the run first (``SELECT … FOR NO KEY UPDATE``, which does not
wait for the key-share locks that inserting audit events takes), so no two
transactions wait for each other in a cycle. Claiming with an UPDATE first (rather
than reading with ``select_for_update()``) also serialises writers on SQLite, which
has no row locks: the first UPDATE takes the database's write lock. Appending audit
events locks the run too (they move its hash chain's head, :mod:`stepkit_django.chain`):
:func:`write_checkpoint` locks it first and chains its events, then moves the head with the run's
UPDATE, or with one of its own when the run does not move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connections, models, router, transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from .exceptions import IllegalTransition, ReviewConflict
from .models import Approval, AuditEvent, Checkpoint, PipelineRun, locked_head, seal_events
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


def _update_if(instance: models.Model, fields: Mapping[str, Any], where: Mapping[str, Any]) -> frozenset[str] | None:
    """Set ``fields`` on ``instance`` and write them where its row still matches ``where``: the fields written,
    or None when the row no longer matches (nothing written).

    ``Model.save(update_fields=fields)`` in one conditional UPDATE: ``pre_save`` is sent first, then the
    values are taken as ``save()`` takes them (``Field.pre_save()``: ``auto_now`` applies); send
    ``post_save`` with :func:`_saved` once the whole change is claimed.
    """
    for name, value in fields.items():
        setattr(instance, name, value)
    model = type(instance)
    using = router.db_for_write(model, instance=instance)
    update_fields = frozenset(fields)
    pre_save.send(sender=model, instance=instance, raw=False, using=using, update_fields=update_fields)
    meta = model._meta
    values = {}
    for name in fields:
        field = meta.get_field(name)
        values[field.attname] = field.pre_save(instance, False)  # type: ignore[union-attr]
    if not model._base_manager.using(using).filter(pk=instance.pk, **where).update(**values):
        return None
    instance._state.db, instance._state.adding = using, False
    return update_fields


def _saved(instance: models.Model, update_fields: frozenset[str]) -> None:
    """Send ``post_save`` for ``instance``, written by :func:`_update_if`."""
    using = instance._state.db or router.db_for_write(type(instance), instance=instance)
    post_save.send(
        sender=type(instance), instance=instance, created=False, update_fields=update_fields, raw=False, using=using
    )


def _insert(rows: Sequence[models.Model]) -> None:
    """Create the new ``rows`` (approvals, audit events), sending ``pre_save`` and ``post_save`` for each.

    Rows of one model go in one INSERT (``bulk_create()``) where the database returns their keys; the
    signals ``save()`` would send are sent around it, so receivers see each row as if saved alone.
    """
    for model in dict.fromkeys(type(row) for row in rows):
        same = [row for row in rows if type(row) is model]
        using = router.db_for_write(model, instance=same[0])
        if len(same) == 1 or not connections[using].features.can_return_rows_from_bulk_insert:
            for row in same:
                row.save(force_insert=True, using=using)
            continue
        for row in same:
            pre_save.send(sender=model, instance=row, raw=False, using=using, update_fields=None)
        model._base_manager.using(using).bulk_create(same)
        for row in same:
            post_save.send(sender=model, instance=row, created=True, update_fields=None, raw=False, using=using)


def _claim_run(
    run: PipelineRun, source: str, target: str, fields: Mapping[str, Any], where: Mapping[str, Any]
) -> frozenset[str] | None:
    """Move ``run`` from ``source`` to ``target`` with ``fields`` (compare-and-set: its row is this
    transaction's afterwards); the fields written, or None if it was no longer ``source``."""
    check_run(source, target)
    return _update_if(run, {"status": target, **fields}, {"status": source, **where})


def _claim_checkpoint(checkpoint: Checkpoint, fields: Mapping[str, Any]) -> frozenset[str] | None:
    """Write ``fields`` and the next version on the checkpoint if it is pending at the version read; the
    fields written, or None."""
    where = {"status": CheckpointStatus.PENDING, "version": checkpoint.version}
    return _update_if(checkpoint, {**fields, "version": checkpoint.version + 1}, where)


def cancel_checkpoints(run: PipelineRun, actor: Any, now: Any) -> list[Any]:
    """Cancel the pending checkpoints of ``run`` (call after moving the run: the lock order); their keys."""
    check_checkpoint(CheckpointStatus.PENDING, CheckpointStatus.CANCELLED)
    keys = []
    fields = {"status": CheckpointStatus.CANCELLED, "decided_by": actor, "decided_at": now, "updated_at": now}
    with transaction.atomic():
        for checkpoint in Checkpoint.objects.filter(run=run, status=CheckpointStatus.PENDING).order_by("pk"):
            written = _claim_checkpoint(checkpoint, fields)
            if written is not None:
                _saved(checkpoint, written)
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
        written = _claim_run(run, source, target, {"updated_at": timezone.now(), **fields}, where or {})
        if written is None:
            raise ReviewConflict(
                gettext("Run %(run)s is no longer %(status)s.") % {"run": run.pk, "status": run_status_word(source)}
            )
        _saved(run, written)


def lock_run(run_id: Any, *, skip_locked: bool = False) -> bool:
    """Lock the run's row for this transaction (first, by the lock order above); no-op where rows are not locked.

    With ``skip_locked``, do not wait: False if another transaction holds it (where rows are locked).
    """
    runs = PipelineRun.objects.select_for_update(no_key=True, skip_locked=skip_locked).filter(pk=run_id)
    return bool(list(runs.values_list("pk", flat=True)))


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
    # The events too: a caller that tries again after a conflict chains them anew.
    with transaction.atomic(), _Restored(checkpoint, checkpoint.run if run is not None else None, *events):
        run_written = None
        head = None
        if events:  # they move the run's chain head: the run is locked first (the lock order)
            if any(event.run_id != checkpoint.run_id for event in events):
                raise ValueError("write_checkpoint() appends events of the checkpoint's run only")
            head = {"audit_head": seal_events(events, locked_head(checkpoint.run_id))}
        if run is not None:
            fields = {"updated_at": now, **run[2], **(head or {})}  # the head moves with the run's one UPDATE
            run_written = _claim_run(checkpoint.run, run[0], run[1], fields, {})
            if run_written is None:
                raise _conflict(checkpoint, run[0])
        written = _claim_checkpoint(checkpoint, {**changes, "updated_at": now})
        if written is None:
            raise _conflict(checkpoint, None)
        _saved(checkpoint, written)
        if run_written is not None:
            _saved(checkpoint.run, run_written)
        if void:
            Approval.objects.filter(pk__in=list(void), checkpoint_id=checkpoint.pk).delete()
        if head is not None and run is None:
            PipelineRun.objects.filter(pk=checkpoint.run_id).update(**head)
            cached = checkpoint._state.fields_cache.get("run")
            if cached is not None:
                cached.audit_head = head["audit_head"]
        _insert([*approvals, *events])
