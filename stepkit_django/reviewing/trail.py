"""Audit events as the review pages show them: a time, a sentence, edits as word-level differences, the rest.

The sentences are :mod:`stepkit_django.sentences`'; one template,
``admin/stepkit_django/event.html``, renders an event wherever the admin shows one
(the review page, the run page, the audit events list).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from .. import permissions
from ..models import AuditEvent
from ..sentences import local_time, tell
from .display import Change, as_text, change

EVENT_TEMPLATE = "admin/stepkit_django/event.html"


@dataclass(frozen=True)
class TrailRow:
    """One event as a row of the trail."""

    event: AuditEvent
    #: The event's time in the current time zone, as text, and in ISO 8601 for ``<time datetime>``.
    time: str
    iso: str
    sentence: str
    changes: list[Change]
    #: The data the sentence does not tell, as ``(key, value as text)``.
    rest: list[tuple[str, str]]
    #: A reviewer's comment (an event with an actor), or the system's note.
    note: str
    note_is_comment: bool


def describe_event(event: AuditEvent, *, full: bool) -> TrailRow:
    """``event`` as a row; failure messages in full only if ``full``."""
    told = tell(event, full=full)
    changes = [change(key, diff.get("before"), diff.get("after")) for key, diff in told.changes.items()]
    return TrailRow(
        event=event,
        time=local_time(event.timestamp),
        iso=timezone.localtime(event.timestamp).isoformat(),
        sentence=told.sentence,
        changes=changes,
        rest=[(key, as_text(value)) for key, value in told.rest.items()],
        # A reviewer's comment is shown as written; the system's notes are stored in English, marked for
        # translation where they are written (review.py), and shown in the reader's language.
        note=event.note if event.actor_id or not event.note else gettext(event.note),
        note_is_comment=bool(event.note and event.actor_id),
    )


def trail_rows(events: Iterable[AuditEvent], user: Any) -> list[TrailRow]:
    """The rows of ``events`` as ``user`` may read them."""
    full = permissions.can_see_failure_details(user)
    return [describe_event(e, full=full) for e in events]


def event_html(row: TrailRow) -> SafeString:
    """The sentence, differences, note and details of one event, as HTML (escaped by the template)."""
    return SafeString(render_to_string(EVENT_TEMPLATE, {"row": row}).strip())
