"""What workers call: the one entry point that advances a run, and the periodic jobs.

The tasks framework (:mod:`stepkit_django.tasks`), Celery (:mod:`stepkit_django.contrib.celery`)
and the management commands wrap these same functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .. import retention, review
from ..notifications import delivery, digest, reminders
from . import leases
from .executors import dispatch
from .runner import advance

__all__ = [
    "advance_run",
    "deliver_due",
    "deliver_notification",
    "expire_due",
    "purge",
    "recover",
    "send_digests",
    "sweep",
]


def advance_run(run_id: str, trace_context: Mapping[str, str] | None = None) -> None:
    """Take the run's lease and execute it until it pauses or ends; a run that another process
    holds, or that is not queued, is left alone (so a duplicated message does nothing).

    ``trace_context``: the W3C trace context the executor sent with the id (when tracing is on),
    which the advance's span links to."""
    advance(run_id, trace_context=trace_context)


def expire_due(now: datetime | None = None) -> int:
    """Apply ``on_timeout`` to checkpoints past their deadline; how many were handled (run it every minute)."""
    return review.expire_due(now)


def recover(now: datetime | None = None) -> int:
    """Re-queue runs whose worker stopped and send queued runs nobody picked up again; how many.

    Safe to run from several processes at once: a duplicate message is harmless, only
    one execution can take a run's lease.
    """
    now = now or timezone.now()
    runs = [*leases.requeue_expired(now), *leases.stale_queued(now)]
    for run in runs:
        with transaction.atomic():
            dispatch(run)
    return len(runs)


def deliver_notification(notification_id: int) -> bool:
    """Make one attempt at sending the notification (claimed first: a duplicated message sends nothing twice);
    True when this call sent it."""
    return delivery.deliver(notification_id)


def deliver_due(now: datetime | None = None) -> int:
    """Send the notifications due for a retry, and those whose sender stopped mid-send; how many were sent."""
    return delivery.deliver_due(now)


def send_digests(now: datetime | None = None) -> int:
    """Write today's digest of every reviewer who has items waiting and send them; how many were written
    (run it once a day: a second run on the same day sends nothing)."""
    return digest.send_digests(now)


def purge(now: datetime | None = None) -> dict[str, int]:
    """Redact the runs of each pipeline registered with a ``retention`` that ended longer ago than it (run it
    once a day, or every hour); counts of runs, checkpoints, events and batches (see :func:`retention.purge`)."""
    return retention.purge(now=now)


def sweep(now: datetime | None = None) -> dict[str, int]:
    """The periodic job (run it every minute): apply deadlines, remind reviewers, re-queue runs whose worker
    stopped, and send the notifications due; how many of each."""
    now = now or timezone.now()
    expired = expire_due(now)
    reminded = reminders.send_reminders(now)
    recovered = recover(now)
    return {"expired": expired, "reminded": reminded, "recovered": recovered, "notifications": deliver_due(now)}
