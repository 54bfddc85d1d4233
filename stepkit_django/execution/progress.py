"""The hot path's writes: a run's start, its progress after each step with its
``step_completed`` events, and its end.

They happen once per step of every run, so they go through the statements of
:mod:`stepkit_django.execution._sql`, compiled once, instead of the ORM's query
building (the measurements are in ``benchmarks/results.md``); each status they
write is checked by :func:`stepkit_django.transitions.check_run`. On PostgreSQL
the UPDATE of the run and the INSERT of its events
are one statement (a data-modifying ``WITH``), atomic without a transaction
block; elsewhere they are two, in a transaction. ``post_save`` is not sent for
these audit events (listen to ``step_completed`` instead).

The events extend the run's hash chain (:mod:`stepkit_django.chain`) in the same statement. Their links
are computed here from the head this process last wrote (``run.audit_head``), and the UPDATE moves the
head only if the run's head is still that one: a condition checked under the row's lock, so a decision
written meanwhile through the ORM is never forked off. When it is not (another writer appended an event),
a transaction locks the run's row (:func:`~stepkit_django.models.locked_head`), links the events here
from the head it reads and writes them on the same condition. The key never leaves this process: no
statement carries it or anything derived from it but the links themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction

from .. import chain
from ..audit import EVENT_FIELDS, step_rows
from ..models import AuditEvent, PipelineRun, locked_head
from ..status import RunStatus
from ..transitions import check_run
from . import _sql as sql

__all__ = ["insert_run", "save_run", "save_step", "single_statement"]

single_statement = sql.single_statement

#: The columns of the hot path's event rows: :data:`~stepkit_django.audit.EVENT_FIELDS` and the data's digest.
_SEALED_FIELDS = (*EVENT_FIELDS, "data_digest")
_LINKED_FIELDS = (*_SEALED_FIELDS, "chain")


def insert_run(run: PipelineRun, started: AuditEvent) -> None:
    """Insert the new ``run`` and its ``run_started`` event (one statement on PostgreSQL).

    Call it inside ``atomic()`` where statements are not one (:func:`single_statement`). The run is new,
    so its chain starts here: the event's link is computed here, and is the run's ``audit_head``.
    """
    key = chain.signing_key()
    started.data_digest, text = chain.seal(
        key,
        run=run.pk,
        checkpoint=started.checkpoint_id,
        pipeline_name=started.pipeline_name,
        action=started.action,
        actor=started.actor_id,
        timestamp=started.timestamp,
        note=started.note,
        data=started.data or {},
    )
    started.chain = run.audit_head = chain.link(key, None, text)
    sql.write([], [sql.Insert.of([run]), sql.Insert.of([started])])
    run._state.adding, run._state.db = False, sql.alias()


def save_run(
    run: PipelineRun,
    owner: str,
    values: Mapping[str, Any],
    rows: list[tuple[Any, ...]],
    *,
    merge: bool = False,
    status: str = RunStatus.RUNNING,
    target: str | None = None,
) -> bool:
    """Write ``values`` to ``run`` if ``owner`` still holds it ``status`` (running), and then the event ``rows``;
    with ``target``, move it to that status (checked by :mod:`stepkit_django.transitions`).

    One statement on PostgreSQL (atomic by itself); elsewhere call it inside
    atomic(). With ``merge`` (PostgreSQL only), ``values["context"]`` holds only
    the top-level keys that changed since the last save, merged into the stored
    context with ``||``.
    """
    merged = ("context",) if merge else ()
    if target is None:  # progress only: the status stays
        saving = sql.Update(PipelineRun, run.pk, values, {"status": status, "lease_owner": owner}, merge=merged)
    else:
        check_run(status, target)
        moved = {"status": target, **values}
        saving = sql.Update(PipelineRun, run.pk, moved, {"status": status, "lease_owner": owner}, merge=merged)
    if not rows:
        return sql.write([saving]) is None
    key = chain.signing_key()
    sealed, messages = [], []
    for run_id, checkpoint, pipeline_name, action, actor, at, data, note in rows:
        data_digest, text = chain.seal(
            key,
            run=run_id,
            checkpoint=checkpoint,
            pipeline_name=pipeline_name,
            action=action,
            actor=actor,
            timestamp=at,
            note=note,
            data=data,
        )
        sealed.append((run_id, checkpoint, pipeline_name, action, actor, at, data, note, data_digest))
        messages.append(text)
    # Linked here from the head this process last wrote or read, on condition (in the same UPDATE, under the
    # row's lock) that the run's head is still that one: the usual case, the cheapest statement.
    known = bytes(run.audit_head) if run.audit_head is not None else None
    if _linked_write(run, key, saving, sealed, messages, known):
        return True
    # Another writer appended an event meanwhile (or the run is no longer ours): lock the run's row, read
    # its head and link from it, in a transaction; under the lock the head cannot move again, so a failed
    # write means the run is no longer ours (the bounded retries only guard against a database without
    # row locks).
    for _attempt in range(_RETRIES):
        with transaction.atomic():
            head = locked_head(run.pk, sql.alias())
            if _linked_write(run, key, saving, sealed, messages, head):
                return True
        if head == known:  # the head did not move: the status or the owner did
            return False
        known = head
    return False


#: How many times the locked fallback of :func:`save_run` tries its conditional write.
_RETRIES = 3


def _linked_write(
    run: PipelineRun,
    key: bytes,
    saving: sql.Update,
    sealed: list[tuple[Any, ...]],
    messages: list[bytes],
    known: bytes | None,
) -> bool:
    """Write ``saving`` and the ``sealed`` events linked after ``known``, if the run's head is still ``known``."""
    found = chain.links(key, known, messages)
    expected = sql.Update(
        saving.model,
        saving.pk,
        {**saving.values, "audit_head": found[-1]},
        {**saving.where, "audit_head": known},
        merge=saving.merge,
    )
    linked = [(*row, link) for row, link in zip(sealed, found, strict=True)]
    if sql.write([expected], [sql.Insert(AuditEvent, _LINKED_FIELDS, linked)]) is None:
        run.audit_head = found[-1]
        return True
    return False


def save_step(
    run: PipelineRun,
    owner: str,
    *,
    context: dict[str, Any],
    outer_contexts: list[dict[str, Any]],
    position: list[int],
    step: str,
    events: list[tuple[str, float, datetime]],
    now: datetime,
    lease_until: datetime | None,
    merge: bool = False,
) -> bool:
    """Save the progress if ``owner`` still holds the running run; write its step events.

    ``events`` are ``(step, duration in ms, completed at)``: one per step, or several
    when steps were buffered (``durability="pause"``). ``lease_until`` renews the
    lease in the same UPDATE; None leaves it (no indexed column changes then, so
    PostgreSQL can update the row in place, without new index entries).
    """
    values: dict[str, Any] = {
        "context": context,
        "outer_contexts": outer_contexts,
        "position": position,
        "current_step": step,
        "updated_at": now,
    }
    if lease_until is not None:
        values["lease_expires_at"] = lease_until
    return save_run(run, owner, values, step_rows(run, events), merge=merge)
