"""Audit events as rows for the admin: who did what, with edits shown as before → after."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from ..models import AuditEvent


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)
    return text if len(text) <= 300 else text[:297] + "..."


def describe_event(event: AuditEvent) -> dict[str, Any]:
    """A row: time, action, actor, note, a summary of ``data``, and the changes of an edit."""
    data = event.data or {}
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


def trail_rows(events: Iterable[AuditEvent]) -> list[dict[str, Any]]:
    return [describe_event(e) for e in events]
