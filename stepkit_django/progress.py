"""The per-step write: save a run's progress and its ``step_completed`` event.

This is the hot path of every run (once per step), so it skips the ORM's query
building: the statements are compiled once per database vendor from the models'
own table and column names, and each value is prepared by its model field
(``get_db_prep_save``), exactly as the ORM would. On PostgreSQL the UPDATE and the
INSERT are one statement (a data-modifying CTE), atomic without a transaction
block; elsewhere the caller wraps the two in one transaction. ``post_save`` is
not sent for these audit events (listen to ``step_completed`` instead).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from .models import AuditEvent, PipelineRun
from .status import AuditAction, RunStatus

__all__ = ["insert_events", "save_step"]

_SET = ("context", "outer_contexts", "position", "current_step", "updated_at")
_LEASE = ("lease_expires_at",)
_INSERT = ("run", "pipeline_name", "action", "timestamp", "data", "note")


@cache
def _statements(vendor: str, quote: Any, rows: int = 1, renew: bool = True, merge: bool = False) -> tuple[str, str]:
    columns_set = (*_SET, *_LEASE) if renew else _SET
    run_fields = {name: PipelineRun._meta.get_field(name) for name in (*columns_set, "id", "status", "lease_owner")}
    event_fields = [AuditEvent._meta.get_field(name) for name in _INSERT]

    def assign(name: str) -> str:
        column = quote(run_fields[name].column)  # type: ignore[union-attr]
        # PostgreSQL: merge the changed keys into the stored context instead of sending it whole
        return f"{column} = {column} || %s" if merge and name == "context" else f"{column} = %s"

    assignments = ", ".join(assign(name) for name in columns_set)
    where = " AND ".join(f"{quote(run_fields[n].column)} = %s" for n in ("id", "status", "lease_owner"))  # type: ignore[union-attr]
    update = f"UPDATE {quote(PipelineRun._meta.db_table)} SET {assignments} WHERE {where}"
    columns = ", ".join(quote(f.column) for f in event_fields)  # type: ignore[union-attr]
    placeholders = "(" + ", ".join("%s" for _ in event_fields) + ")"
    values = ", ".join(placeholders for _ in range(rows))
    insert = f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES {values}"
    return update, insert


@cache
def _combined(quote: Any, renew: bool, merge: bool) -> str:
    """PostgreSQL: the UPDATE and the event's INSERT as one statement (the event is written only if the run was)."""
    update, _ = _statements("postgresql", quote, 1, renew, merge)
    event_columns = [AuditEvent._meta.get_field(name).column for name in _INSERT]  # type: ignore[union-attr]
    pk = quote(PipelineRun._meta.get_field("id").column)
    values = ", ".join(["saved." + pk] + ["%s"] * (len(event_columns) - 1))
    columns = ", ".join(quote(c) for c in event_columns)
    return (
        f"WITH saved AS ({update} RETURNING {pk}) "
        f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) SELECT {values} FROM saved"
    )


def _prep(model: Any, name: str, value: Any, conn: BaseDatabaseWrapper) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, conn)


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

    Call inside atomic(), except for one event on PostgreSQL (:func:`single_statement`),
    where the UPDATE and the INSERT are one statement.

    ``events`` are ``(step, duration in ms, completed at)``: one per step, or several
    when steps were buffered (``durability="pause"``). ``lease_until`` renews the
    lease in the same UPDATE; None leaves it (no indexed column changes then, so
    PostgreSQL can update the row in place, without new index entries). With
    ``merge`` (PostgreSQL only), ``context`` holds only the top-level keys that
    changed since the last save, merged into the stored context with ``||``.
    """
    renew = lease_until is not None
    if merge and not single_statement():
        raise ValueError("merge=True needs PostgreSQL's jsonb")
    update, insert = _statements(connection.vendor, connection.ops.quote_name, len(events), renew, merge)
    combined = single_statement() and len(events) == 1
    values = {
        "context": context,
        "outer_contexts": outer_contexts,
        "position": position,
        "current_step": step,
        "lease_expires_at": lease_until,
        "updated_at": now,
    }
    names = (*_SET, *_LEASE) if renew else _SET
    params = [_prep(PipelineRun, name, values[name], connection) for name in names]
    params += [
        _prep(PipelineRun, "id", run.pk, connection),
        RunStatus.RUNNING.value,
        owner,
    ]
    with connection.cursor() as cursor:
        if combined:  # one round trip: the event row exists only if the run's row was updated
            statement = _combined(connection.ops.quote_name, renew, merge)
            cursor.execute(statement, params + _event_params(run, events)[1:])
            return bool(cursor.rowcount == 1)
        cursor.execute(update, params)
        if cursor.rowcount != 1:
            return False
        if events:
            cursor.execute(insert, _event_params(run, events))
    return True


def single_statement() -> bool:
    """Whether a step's save is one statement here (PostgreSQL), atomic without a transaction block."""
    return connection.vendor == "postgresql"


def insert_events(run: PipelineRun, events: list[tuple[str, float, datetime]]) -> None:
    """Write buffered ``step_completed`` events (one multi-row INSERT). Call inside atomic()."""
    if not events:
        return
    _, insert = _statements(connection.vendor, connection.ops.quote_name, len(events))
    with connection.cursor() as cursor:
        cursor.execute(insert, _event_params(run, events))


def _event_params(run: PipelineRun, events: list[tuple[str, float, datetime]]) -> list[Any]:
    run_id = _prep(PipelineRun, "id", run.pk, connection)
    params: list[Any] = []
    for step, duration_ms, at in events:
        params += [
            run_id,
            run.pipeline_name,
            AuditAction.STEP_COMPLETED.value,
            _prep(AuditEvent, "timestamp", at, connection),
            _prep(AuditEvent, "data", {"step": step, "duration_ms": duration_ms}, connection),
            "",
        ]
    return params
