"""Sending notifications: one attempt of one notification, and the sweep of those due for a retry.

An attempt first **claims** the row with one conditional UPDATE (pending, due now): it counts the
attempt and moves ``next_attempt_at`` to the end of a lease (``STEPKIT["NOTIFY_LEASE"]``). Of two
processes given the same notification (a re-delivered task, a sweep), one claims it and the other
does nothing; once a success is recorded, nothing claims it again. A sender that dies mid-send
leaves the row pending: its lease runs out and the sweep (:func:`deliver_due`) tries it again, so a
notification is never lost, and is sent twice at most when the sender died after the receiver had it.

A failed attempt is retried after ``STEPKIT["NOTIFY_RETRY_DELAY"]``, doubled after each failure
(at most ``NOTIFY_RETRY_MAX_DELAY``), until ``NOTIFY_MAX_ATTEMPTS``; then the row is ``failed``.
Sending happens outside any transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from ..conf import settings
from ..models import Notification
from ..status import NotificationStatus
from ..telemetry import metrics
from .messages import build
from .notifiers import get_notifier

__all__ = ["backoff", "claim", "deliver", "deliver_due"]

logger = logging.getLogger("stepkit_django")

#: The longest error kept in ``last_error``.
MAX_ERROR_LENGTH = 2000


def backoff(attempts: int) -> timedelta:
    """The wait after ``attempts`` failed attempts: ``NOTIFY_RETRY_DELAY`` doubled each time, capped."""
    delay: timedelta = settings.NOTIFY_RETRY_DELAY * (2 ** max(attempts - 1, 0))
    cap: timedelta = settings.NOTIFY_RETRY_MAX_DELAY
    return min(delay, cap)


def claim(pk: Any, now: datetime) -> int | None:
    """Take notification ``pk`` for one attempt if it is pending and due at ``now``; the attempt's number."""
    lease: timedelta = settings.NOTIFY_LEASE
    due = Notification.objects.filter(pk=pk, status=NotificationStatus.PENDING, next_attempt_at__lte=now)
    if not due.update(attempts=F("attempts") + 1, next_attempt_at=now + lease):
        return None
    return Notification.objects.filter(pk=pk).values_list("attempts", flat=True).first()


def deliver(pk: Any, now: datetime | None = None) -> bool:
    """Make one attempt at sending notification ``pk``; True when it was sent by this call.

    False, changing nothing, when it is not pending and due (sent already, failed for good, or being
    sent by another process). Never raises for a failed send: the failure is recorded on the row.
    """
    now = now or timezone.now()
    attempt = claim(pk, now)
    if attempt is None:
        return False
    notification = Notification.objects.select_related("run", "checkpoint", "recipient", "actor").get(pk=pk)
    try:
        notifier = get_notifier(notification.channel)
        notifier.send(notification, build(notification))
    except Exception as exc:
        _failed(notification, attempt, exc, now)
        return False
    Notification.objects.filter(pk=pk, status=NotificationStatus.PENDING).update(
        status=NotificationStatus.SENT, sent_at=timezone.now(), last_error=""
    )
    return True


def _failed(notification: Notification, attempt: int, exc: BaseException, now: datetime) -> None:
    error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
    row = Notification.objects.filter(pk=notification.pk, status=NotificationStatus.PENDING, attempts=attempt)
    final = attempt >= int(settings.NOTIFY_MAX_ATTEMPTS)
    metrics.notification_failed(notification, final=final)
    if final:
        row.update(status=NotificationStatus.FAILED, last_error=error)
        logger.warning("Notification %s failed for good after %s attempts: %s", notification.pk, attempt, error)
        return
    row.update(last_error=error, next_attempt_at=now + backoff(attempt))
    logger.info("Notification %s failed (attempt %s), retried later: %s", notification.pk, attempt, error)


def deliver_due(now: datetime | None = None, limit: int = 500) -> int:
    """Attempt the pending notifications due at ``now`` (retries, and sends whose sender's lease ran out),
    oldest first, at most ``limit``; how many were sent. Safe to run from several processes at once."""
    now = now or timezone.now()
    due = list(
        Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    # Each attempt's lease and backoff count from when it begins, not from the sweep's start: a long sweep
    # (slow receivers) would otherwise claim rows with a lease that runs out mid-send.
    return sum(deliver(pk, max(now, timezone.now())) for pk in due)
