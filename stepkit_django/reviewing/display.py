"""Reviewed data as people read it: a key → value table, and edits as word-level differences."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext

from ..textdiff import render as render_diff
from ..textdiff import shorten, word_diff

#: Nested values are previewed on one line of at most this many characters.
PREVIEW_CHARS = 80
#: Unchanged tokens (words, spaces, punctuation marks) of its line kept around each change; the whole text
#: with its changes is one click away.
CONTEXT_TOKENS = 16


def duration(delta: timedelta) -> str:
    """A waiting time or a time left, short: "2d 3h", "4h 10m", "12m"."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return gettext("%(days)dd %(hours)dh") % {"days": days, "hours": hours}
    if hours:
        return gettext("%(hours)dh %(minutes)dm") % {"hours": hours, "minutes": minutes}
    return gettext("%(minutes)dm") % {"minutes": minutes}


def due_in(checkpoint: Any, now: datetime) -> str:
    """The time a pending checkpoint has left ("overdue 2h" past it); "" without a deadline or once decided."""
    if checkpoint.expires_at is None or not checkpoint.is_pending:
        return ""
    left = checkpoint.expires_at - now
    if left.total_seconds() < 0:
        return gettext("overdue %(duration)s") % {"duration": duration(left)}
    return duration(left)


def item_label(checkpoint: Any) -> str:
    """How an item is named to a person: its title, or its pipeline and step."""
    title = getattr(checkpoint, "title", "")
    return str(title) if title else f"{checkpoint.pipeline_name} · {checkpoint.step}"


def as_text(value: Any) -> str:
    """``value`` as the text a reader compares: a string as it is, anything else as (indented) JSON, keys sorted."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    indent = 2 if isinstance(value, (dict, list)) else None
    # Keys sorted: the same text on every database (jsonb reorders them), and a change of order is no change.
    return json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=True, cls=DjangoJSONEncoder)


@dataclass(frozen=True)
class Cell:
    """A value as the table shows it; ``kind`` is ``text``, ``scalar``, ``empty`` or ``nested``."""

    kind: str
    text: str
    #: For nested values: a one-line preview and the count of items or keys.
    preview: str = ""
    size: str = ""


def cell(value: Any) -> Cell:
    """How to show ``value``: text with its line breaks, a number or yes/no, or nested JSON to unfold."""
    if isinstance(value, str):
        return Cell("text", value) if value else Cell("empty", gettext("(empty text)"))
    if value is None:
        return Cell("empty", gettext("(no value)"))
    if isinstance(value, bool):
        return Cell("scalar", gettext("Yes") if value else gettext("No"))
    if isinstance(value, (int, float)):
        return Cell("scalar", as_text(value))
    if isinstance(value, (dict, list)):
        compact = json.dumps(value, ensure_ascii=False, sort_keys=True, cls=DjangoJSONEncoder)
        preview = compact if len(compact) <= PREVIEW_CHARS else compact[: PREVIEW_CHARS - 1] + "…"
        if isinstance(value, dict):
            size = ngettext("%(count)d key", "%(count)d keys", len(value)) % {"count": len(value)}
        else:
            size = ngettext("%(count)d item", "%(count)d items", len(value)) % {"count": len(value)}
        return Cell("nested", as_text(value), preview=preview, size=size)
    return Cell("scalar", as_text(value))


@dataclass(frozen=True)
class Change:
    """A change of one key, word by word: around each change only (``diff``), and whole when that left some out."""

    key: str
    diff: SafeString
    full: SafeString | None


def change(key: str, before: Any, after: Any, *, context: int = CONTEXT_TOKENS) -> Change:
    """The change of ``key`` from ``before`` to ``after`` (non-text values compared as JSON)."""
    chunks = word_diff(as_text(before), as_text(after))
    short = shorten(chunks, context)
    whole = render_diff(chunks)
    if short == chunks:
        return Change(str(key), whole, None)
    return Change(str(key), render_diff(short), whole)


@dataclass(frozen=True)
class DataRow:
    """One key of the reviewed data: its label, its value, and, when edited, its change from the context."""

    key: str
    label: str
    cell: Cell
    edited: bool
    change: Change | None


def data_rows(
    context: Mapping[str, Any],
    edits: Mapping[str, Any],
    schema: Mapping[str, Any] | None = None,
    editable: list[str] | None = None,
) -> list[DataRow]:
    """The effective data (``context`` with ``edits``), key by key; edited keys carry their change.

    The keys a reviewer may not edit come first, alphabetically (what the draft answers), then the
    editable ones in the order the Review lists them (as in the form): the same order on every
    database (PostgreSQL's ``jsonb`` does not keep the keys' order).
    """
    effective = {**context, **edits}
    listed = [key for key in (editable or []) if key in effective]
    order = sorted((key for key in effective if key not in listed), key=str) + listed
    rows = []
    for key in order:
        value = effective[key]
        edited = key in edits and (key not in context or context[key] != value)
        edit = change(key, context.get(key), value) if edited else None
        rows.append(DataRow(str(key), label_of(str(key), schema), cell(value), edited, edit))
    return rows


@dataclass(frozen=True)
class RevisionChange:
    """One key that changed from an earlier revision to the next: its label and its word-level change."""

    key: str
    label: str
    change: Change


def label_of(key: str, schema: Mapping[str, Any] | None) -> str:
    """What a reader calls ``key``: its title in the review's JSON Schema, else the key itself."""
    properties = (schema or {}).get("properties") or {}
    spec = properties.get(key) if isinstance(properties, Mapping) else None
    title = spec.get("title") if isinstance(spec, Mapping) else None
    return str(title or key)


def revision_changes(
    changes: Mapping[str, Mapping[str, Any]], schema: Mapping[str, Any] | None
) -> list[RevisionChange]:
    """``changes`` (from :func:`stepkit_django.revisions.changes_between`) as word-level differences, in order."""
    return [
        RevisionChange(str(key), label_of(str(key), schema), change(str(key), values["before"], values["after"]))
        for key, values in changes.items()
    ]
