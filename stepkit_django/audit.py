"""The audit trail's one writer: every event is built here, and appended with the change it records.

Two shapes, one set of columns:

* :func:`event` builds an unsaved :class:`~stepkit_django.models.AuditEvent` (a
  person's action, with an actor, a checkpoint, a note), which
  :func:`stepkit_django.transitions.write_checkpoint` saves with the change it
  records, in the same transaction (``post_save`` is sent for it);
* :func:`system_row` is an event of the runner itself (no actor, no checkpoint) as
  a row of :data:`EVENT_FIELDS`, which the per-step write (the hot path, in
  :mod:`stepkit_django.execution.progress`) inserts with the run's progress in one
  statement; ``post_save`` is not sent for those (listen to ``step_completed``).

:func:`record` appends one event now; call it inside the transaction of the change.

:func:`via` names the channel a person acts through (``"link"``: a signed action link) for the events built
inside it: each event with an actor then holds ``{"via": channel}`` in its data, without the services
taking a parameter for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from . import permissions
from .models import AuditEvent, PipelineRun
from .redaction import FAILURE_KEYS
from .status import AuditAction

__all__ = ["EVENT_FIELDS", "FAILURE_KEYS", "event", "record", "redacted", "step_rows", "system_row", "via"]

#: The columns of an audit event row, in the order of :func:`system_row`.
EVENT_FIELDS = ("run", "checkpoint", "pipeline_name", "action", "actor", "timestamp", "data", "note")


#: The channel of the person's actions under way (see :func:`via`); None: the admin, the API or code.
_channel: ContextVar[str | None] = ContextVar("stepkit_django_audit_channel", default=None)


@contextmanager
def via(channel: str) -> Iterator[None]:
    """Record ``{"via": channel}`` in the data of the events with an actor built inside the block.

    The inbox's action links decide inside ``via("link")``; an event that says its own ``via`` keeps it.
    Events of the system (no actor: the steps an inline executor runs after an approval, a new checkpoint)
    are left as they are.
    """
    token = _channel.set(str(channel))
    try:
        yield
    finally:
        _channel.reset(token)


def _actor(user: Any) -> Any:
    """The user to store: None for anonymous or no user."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def event(
    run: PipelineRun,
    action: str,
    *,
    checkpoint: Any = None,
    actor: Any = None,
    data: Mapping[str, Any] | None = None,
    note: str = "",
) -> AuditEvent:
    """An unsaved event of ``run``, for :func:`~stepkit_django.transitions.write_checkpoint` (or ``save()``)."""
    stored = _actor(actor)
    values = dict(data or {})
    channel = _channel.get()
    if channel is not None and stored is not None:
        values.setdefault("via", channel)
    return AuditEvent(
        run=run,
        checkpoint=checkpoint,
        pipeline_name=run.pipeline_name,
        action=action,
        actor=stored,
        data=values,
        note=note,
    )


def record(run: PipelineRun, action: str, **fields: Any) -> None:
    """Append one event now (inside the transaction of the change it records).

    ``fields``: ``checkpoint``, ``actor``, ``data``, ``note`` as for :func:`event`.
    """
    event(run, action, **fields).save(force_insert=True)


def system_row(run: PipelineRun, action: str, at: datetime, data: Mapping[str, Any] | None = None) -> tuple[Any, ...]:
    """An event of ``run`` by the system (no actor, no checkpoint), as a row of :data:`EVENT_FIELDS`."""
    return (run.pk, None, run.pipeline_name, action, None, at, data or {}, "")


def step_rows(run: PipelineRun, events: list[tuple[str, float, datetime]]) -> list[tuple[Any, ...]]:
    """``step_completed`` rows for ``(step, duration in ms, completed at)`` tuples."""
    return [
        system_row(run, AuditAction.STEP_COMPLETED, at, {"step": step, "duration_ms": duration_ms})
        for step, duration_ms, at in events
    ]


def redacted(data: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
    """``data`` with failure messages cut to the exception's type unless ``full``.

    Pass ``full=permissions.can_see_failure_details(user)`` for the user who reads it.
    """
    if full or not any(data.get(key) for key in FAILURE_KEYS):
        return dict(data)
    return {key: permissions.error_type(value) if key in FAILURE_KEYS else value for key, value in data.items()}
