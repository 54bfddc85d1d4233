"""Retention and erasure: remove the personal data of ended runs, keep who decided what and when.

:func:`purge` redacts, in batches, the runs that ended before a cutoff (``manage.py stepkit_purge``, the
``purge`` periodic task); :func:`erase` redacts one run now (an erasure request; the admin's "Erase the
data of selected runs"). Redacting a run empties its input, contexts, error and traceback, its
checkpoints' contexts, edits, signed tokens, titles and summaries, and its notifications' data, and
rewrites the data of its audit events to what :func:`redacted_data` keeps: each event keeps its action,
actor, time, step and the keys that changed, never their values. Each redacted run gets a ``purged`` event.

The audit trail stays append-only for everyone else: this module is its one sanctioned writer. Its
UPDATE of the events' ``data`` runs in a transaction that first says so to the database — ``SET LOCAL
stepkit.purge = 'on'`` on PostgreSQL, a row of the ``stepkit_django_audit_purge`` table on SQLite —
and the triggers of migration 0015 let nothing else through, nor any change of another column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from django.utils.translation import gettext

from . import audit
from .exceptions import RunNotEnded
from .models import AuditEvent, Checkpoint, Notification, PipelineRun, StepkitJSONEncoder, seal_events
from .redaction import KEPT, redacted_data
from .registry import get_registration, registered
from .status import AuditAction, RunStatus, run_status_word

__all__ = ["BATCH_SIZE", "KEPT", "REMOVED", "erase", "purge", "redacted_data"]

#: How many runs one batch (one transaction) of :func:`purge` redacts.
BATCH_SIZE = 500

#: What a redaction empties (named in the ``purged`` event).
REMOVED = (
    "run.input",
    "run.context",
    "run.outer_contexts",
    "run.error",
    "run.traceback",
    "checkpoint.context",
    "checkpoint.override_data",
    "checkpoint.token",
    "checkpoint.title",
    "checkpoint.summary",
    "notification.data",
    "event.data values",
)

_SQLITE_FLAG = "stepkit_django_audit_purge"


def _ended(cutoff: datetime) -> Any:
    return PipelineRun.objects.filter(status__in=RunStatus.finished(), finished_at__lt=cutoff, purged_at__isnull=True)


def _targets(cutoff: datetime | None, pipeline: str | None, now: datetime) -> list[tuple[Any, datetime]]:
    """(runs to purge, their cutoff) per pipeline: the given cutoff, else each registration's ``retention``."""
    if cutoff is not None:
        runs = _ended(cutoff)
        return [(runs.filter(pipeline_name=pipeline) if pipeline else runs, cutoff)]
    names = [pipeline] if pipeline else list(registered())
    found = []
    for name in names:
        retention = get_registration(name).retention
        if retention is not None:
            at = now - retention
            found.append((_ended(at).filter(pipeline_name=name), at))
    return found


def purge(
    cutoff: datetime | None = None,
    *,
    pipeline: str | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
) -> dict[str, int]:
    """Redact the runs that ended before ``cutoff`` (of ``pipeline`` only, if given); counts of what was
    (for a dry run: would be) redacted: ``runs``, ``checkpoints``, ``events``, ``batches``.

    Without ``cutoff``, each registered pipeline with a ``retention`` (``register(..., retention=...)``) is
    purged of its runs that ended more than that long before ``now``; the others are left alone. Runs
    that are queued, running or paused are never touched. Each batch of ``batch_size`` runs is one short
    transaction: an interrupted purge keeps the batches done and resumes with the next run left.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size!r}")
    now = now or timezone.now()
    counts = {"runs": 0, "checkpoints": 0, "events": 0, "batches": 0}
    for runs, at in _targets(cutoff, pipeline, now):
        if dry_run:
            ids = runs.values("pk")
            counts["runs"] += runs.count()
            counts["checkpoints"] += Checkpoint.objects.filter(run__in=ids).count()
            counts["events"] += AuditEvent.objects.filter(run__in=ids).count()
            continue
        while True:
            batch = list(runs.order_by("finished_at", "pk").values_list("pk", flat=True)[:batch_size])
            if not batch:
                break
            done = _redact(batch, None, {"why": "retention", "cutoff": at.isoformat()}, now)
            counts["batches"] += 1
            for key in ("runs", "checkpoints", "events"):
                counts[key] += done[key]
    return counts


def erase(run: PipelineRun, by: Any = None) -> dict[str, int]:
    """Redact ``run`` now, as a purge would (an erasure request), with a ``purged`` event by ``by``;
    what was redacted, as :func:`purge` counts it. Raises :class:`RunNotEnded` for a run not ended."""
    if run.status not in RunStatus.finished():
        raise RunNotEnded(
            gettext("Run %(run)s is %(status)s: only an ended run can be erased; cancel it first, then erase it.")
            % {"run": str(run.pk)[:8], "status": run_status_word(run.status)}
        )
    return _redact([run.pk], by, {"why": "erasure"}, timezone.now())


def _redact(run_ids: list[Any], by: Any, why: dict[str, Any], now: datetime) -> dict[str, int]:
    """Redact these runs in one transaction (skipping those redacted meanwhile), with their ``purged`` events.

    A batch costs the same few statements whatever its size (:func:`_purged_events`, :func:`_rewrite`,
    :func:`_insert_sealed`).
    """
    with transaction.atomic():
        runs = list(
            PipelineRun.objects.select_for_update()
            .filter(pk__in=run_ids, status__in=RunStatus.finished(), purged_at__isnull=True)
            .order_by("pk")
        )
        ids = [run.pk for run in runs]
        if not ids:
            return {"runs": 0, "checkpoints": 0, "events": 0}
        checkpoints = Checkpoint.objects.filter(run__in=ids).update(
            context={}, override_data={}, token="", title="", summary={}
        )
        Notification.objects.filter(run__in=ids).update(data={})
        per_run = {
            "checkpoints": _count_by_run(Checkpoint.objects.filter(run__in=ids)),
            "events": _redact_events(ids),
        }
        events, heads = _purged_events(runs, by, why, per_run)
        # The runs emptied and their heads moved in one UPDATE, before their events are written: a receiver of
        # the events' signals sees each run emptied, and an event it appends follows the purged one.
        emptied = {"input": {}, "context": {}, "outer_contexts": [], "error": "", "traceback": "", "purged_at": now}
        _rewrite(PipelineRun, "audit_head", heads, **emptied)
        _insert_sealed(events)
        return {"runs": len(ids), "checkpoints": checkpoints, "events": sum(per_run["events"].values())}


def _count_by_run(queryset: Any) -> dict[Any, int]:
    """How many rows of ``queryset`` each run has."""
    return {row["run"]: row["n"] for row in queryset.order_by().values("run").annotate(n=Count("pk"))}


def _purged_events(
    runs: list[PipelineRun], by: Any, why: dict[str, Any], per_run: dict[str, dict[Any, int]]
) -> tuple[list[AuditEvent], list[tuple[Any, bytes | None]]]:
    """Each run's ``purged`` event, as :func:`audit.record` would make it, chained; and each run's new head,
    as ``(key, head)``, for the caller to write with the runs' UPDATE before :func:`_insert_sealed`.

    The runs' rows are this transaction's (``select_for_update()`` in :func:`_redact`), so the heads read with
    them are still their trails' last links: each event is chained here from its run's head
    (:func:`~stepkit_django.models.seal_events`), and :meth:`AuditEventQuerySet.bulk_create` leaves the
    events sealed already as they are. On SQLite, which has no row locks, a writer that committed since the
    runs were read makes this transaction fail when it writes, rather than fork a chain (as
    :func:`~stepkit_django.models.chain_events`).
    """
    events, heads = [], []
    for run in runs:
        counted = {key: counts.get(run.pk, 0) for key, counts in per_run.items()}
        event = audit.event(run, AuditAction.PURGED, actor=by, data={**why, "removed": list(REMOVED), **counted})
        head = seal_events([event], bytes(run.audit_head) if run.audit_head is not None else None)
        run.audit_head = head
        events.append(event)
        heads.append((run.pk, head))
    return events, heads


def _insert_sealed(events: list[AuditEvent]) -> None:
    """Insert the sealed ``events`` in one INSERT, sending ``pre_save`` and ``post_save`` for each."""
    if not connection.features.can_return_rows_from_bulk_insert:
        for event in events:
            event.save(force_insert=True)  # sealed: save() leaves the chain and the head alone
    else:
        for event in events:
            pre_save.send(sender=AuditEvent, instance=event, raw=False, using=connection.alias, update_fields=None)
        AuditEvent.objects.bulk_create(events)
        for event in events:
            post_save.send(
                sender=AuditEvent, instance=event, created=True, update_fields=None, raw=False, using=connection.alias
            )


def _redact_events(run_ids: Iterable[Any]) -> dict[Any, int]:
    """Rewrite the data of the runs' events to :func:`redacted_data`; how many events each run has."""
    rows = list(AuditEvent.objects.filter(run__in=list(run_ids)).values_list("pk", "run", "action", "data"))
    changes = []
    counts: dict[Any, int] = {}
    for pk, run, action, data in rows:
        counts[run] = counts.get(run, 0) + 1
        new = redacted_data(action, data or {})
        if new != data:
            changes.append((pk, json.dumps(new, cls=StepkitJSONEncoder)))
    if changes:
        with connection.cursor() as cursor:
            _allow(cursor, True)
            # Cleared on success only: on failure the transaction (or savepoint) is rolled back, the flag with it,
            # and clearing it in an aborted PostgreSQL transaction would hide the error.
            _rewrite(AuditEvent, "data", changes)
            _allow(cursor, False)
    return counts


#: At most this many rows per UPDATE of :func:`_rewrite` on PostgreSQL (two array parameters each).
_CHUNK = 10_000


def _rewrite(model: Any, field: str, rows: list[tuple[Any, Any]], **same: Any) -> None:
    """Set ``field`` of the ``(key, value)`` rows of ``model``'s table, and the fields ``same`` to the same
    values on each: on PostgreSQL in one ``UPDATE … FROM unnest(keys, values)`` per :data:`_CHUNK`
    rows, elsewhere in one ``executemany()``. Values are as the column takes them (JSON as text, bytes), the
    ``same`` ones as the ORM writes them."""
    meta, quote = model._meta, connection.ops.quote_name
    column, pk = meta.get_field(field), meta.pk
    table, name, key = quote(meta.db_table), quote(column.column), quote(pk.column)
    fixed = [meta.get_field(other) for other in same]
    sets = "".join(f"{quote(other.column)} = %s, " for other in fixed)
    params = [other.get_db_prep_save(value, connection) for other, value in zip(fixed, same.values(), strict=True)]
    keys = [pk.get_db_prep_value(row[0], connection) for row in rows]  # a UUID: its 32 digits on SQLite
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            updates = [(*params, row[1], k) for row, k in zip(rows, keys, strict=True)]
            cursor.executemany(f"UPDATE {table} SET {sets}{name} = %s WHERE {key} = %s", updates)
            return
        types = f"%s::{pk.rel_db_type(connection)}[], %s::{column.db_type(connection)}[]"
        for start in range(0, len(rows), _CHUNK):
            chunk = [keys[start : start + _CHUNK], [row[1] for row in rows[start : start + _CHUNK]]]
            cursor.execute(
                f"UPDATE {table} AS t SET {sets}{name} = v.value FROM unnest({types}) AS v(key, value) "
                f"WHERE t.{key} = v.key",
                [*params, *chunk],
            )


def _allow(cursor: Any, on: bool) -> None:
    """Tell the audit triggers that the purge writes, for this transaction only (or no longer)."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT set_config('stepkit.purge', %s, true)", ["on" if on else "off"])
    elif connection.vendor == "sqlite":
        cursor.execute(f"INSERT INTO {_SQLITE_FLAG} (id) VALUES (1)" if on else f"DELETE FROM {_SQLITE_FLAG}")
