"""When a checkpoint's reviewers are reminded (``Review(remind_before=..., remind_every=...)``), from the
review settings stored with it: pure functions, which :mod:`stepkit_django.pausing` and
:mod:`stepkit_django.notifications.reminders` share.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

__all__ = ["first_reminder", "next_reminder"]


def _seconds(review: Mapping[str, Any], key: str) -> timedelta | None:
    value = review.get(key)
    return timedelta(seconds=float(value)) if value else None


def _before_deadline(at: datetime | None, expires_at: datetime | None) -> datetime | None:
    return at if at is not None and (expires_at is None or at < expires_at) else None


def first_reminder(review: Mapping[str, Any], created_at: datetime, expires_at: datetime | None) -> datetime | None:
    """When a checkpoint created at ``created_at`` with ``review``'s settings is first reminded; None: never."""
    before, every = _seconds(review, "remind_before_seconds"), _seconds(review, "remind_every_seconds")
    if before is not None and expires_at is not None:
        return max(expires_at - before, created_at)
    return _before_deadline(created_at + every if every is not None else None, expires_at)


def next_reminder(review: Mapping[str, Any], reminded_at: datetime, expires_at: datetime | None) -> datetime | None:
    """The reminder after the one of ``reminded_at``: ``remind_every`` later, before the deadline; None: no more."""
    every = _seconds(review, "remind_every_seconds")
    return _before_deadline(reminded_at + every if every is not None else None, expires_at)
