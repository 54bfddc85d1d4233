"""Reminders: ``due_soon`` to the reviewers of an item that still waits (``Review(remind_before=...)``).

A checkpoint's ``next_reminder_at`` is set when it is created: ``remind_before`` ahead of its deadline, or,
without it, ``remind_every`` after the pause. The sweep (:func:`send_reminders`) tells the reviewers of
each pending checkpoint whose time has come and moves it on by ``remind_every`` (or clears it); no reminder
is sent at or after the deadline. Moving it is a compare-and-set, in the transaction that writes the
reminder's notifications, so that two sweeps send one reminder.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ..models import Checkpoint
from ..status import CheckpointStatus, NotificationEvent
from .events import notify
from .schedule import next_reminder

__all__ = ["send_reminders"]

logger = logging.getLogger("stepkit_django")


def send_reminders(now: datetime | None = None, limit: int = 500) -> int:
    """Write the ``due_soon`` notifications of the pending checkpoints whose reminder is due; how many were reminded.

    Safe to run from several processes at once: each reminder is written by one of them.
    """
    now = now or timezone.now()
    due = list(
        Checkpoint.objects.filter(status=CheckpointStatus.PENDING, next_reminder_at__lte=now)
        .order_by("next_reminder_at", "pk")
        .values_list("pk", "next_reminder_at")[:limit]
    )
    reminded = 0
    for pk, at in due:
        if at is None:  # the filter leaves none out: for the type checker
            continue
        try:
            with transaction.atomic():
                cp = Checkpoint.objects.select_related("run").get(pk=pk)
                if cp.expires_at is not None and cp.expires_at <= now:
                    Checkpoint.objects.filter(pk=pk, next_reminder_at=at).update(next_reminder_at=None)
                    continue  # the deadline passed: the sweep applies on_timeout instead
                following = next_reminder(cp.review, max(at, now), cp.expires_at)
                moved = Checkpoint.objects.filter(pk=pk, status=CheckpointStatus.PENDING, next_reminder_at=at)
                if not moved.update(next_reminder_at=following):
                    continue  # another sweep reminded it, or it was decided meanwhile
                notify(NotificationEvent.DUE_SOON, run=cp.run, checkpoint=cp, occurrence=f"{pk}@{at.isoformat()}")
                reminded += 1
        except Exception:  # one checkpoint that cannot be reminded must not stop the others
            logger.exception("Could not remind the reviewers of checkpoint %s", pk)
    return reminded
