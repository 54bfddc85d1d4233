"""Audit events as rows for the admin: who did what, with edits shown as before → after."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from .. import permissions
from ..audit import redacted
from ..models import AuditEvent


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)
    return text if len(text) <= 300 else text[:297] + "..."


def describe_event(event: AuditEvent, *, full: bool) -> dict[str, Any]:
    """A row: time, action, actor, note, a summary of ``data`` (failure messages only if ``full``), and the
    changes of an edit."""
    data = redacted(event.data or {}, full=full)
    changes = [
        {"key": key, "before": _short(change.get("before")), "after": _short(change.get("after"))}
        for key, change in (data.get("changes") or {}).items()
    ]
    summary = ", ".join(f"{k}: {_short(v)}" for k, v in data.items() if k != "changes")
    return {
        "event": event,
        "actor": event.actor.get_username() if event.actor else "system",
        "summary": summary,
        "changes": changes,
    }


def trail_rows(events: Iterable[AuditEvent], user: Any) -> list[dict[str, Any]]:
    """The rows of ``events`` as ``user`` may read them."""
    full = permissions.can_see_failure_details(user)
    return [describe_event(e, full=full) for e in events]
