"""Celery tasks for the ``"celery"`` executor (``STEPKIT = {"EXECUTOR": "celery"}``).

Import this module in your Celery app (``app.autodiscover_tasks()`` finds it when
``stepkit_django.contrib.celery`` is listed in ``include``, or add it with
``app.conf.include``). Schedule ``sweep`` (or ``expire_due`` and ``recover``) with Celery beat, and
``send_digests`` once a day for the daily digest.
Each task wraps the function of :mod:`stepkit_django.jobs`.
"""

from __future__ import annotations

from celery import shared_task

from ..execution import jobs

__all__ = ["advance_run", "deliver_notification", "expire_due", "purge", "recover", "send_digests", "sweep"]


@shared_task(name="stepkit_django.advance_run", ignore_result=True)
def advance_run(run_id: str, trace_context: dict[str, str] | None = None) -> None:
    """Take the run's lease and execute it until it pauses or ends (only the id travels, and with
    tracing on, the W3C trace context of the span that enqueued it)."""
    jobs.advance_run(run_id, trace_context)


@shared_task(name="stepkit_django.expire_due")
def expire_due() -> int:
    return jobs.expire_due()


@shared_task(name="stepkit_django.recover")
def recover() -> int:
    return jobs.recover()


@shared_task(name="stepkit_django.deliver_notification", ignore_result=True)
def deliver_notification(notification_id: int) -> bool:
    """Make one attempt at sending the notification (a re-delivered task sends nothing twice)."""
    return jobs.deliver_notification(notification_id)


@shared_task(name="stepkit_django.sweep")
def sweep() -> dict[str, int]:
    """The periodic job: deadlines, stopped workers' runs, notifications due (run it every minute)."""
    return jobs.sweep()


@shared_task(name="stepkit_django.purge")
def purge() -> dict[str, int]:
    """Retention: redact the ended runs of pipelines registered with a ``retention`` (run it daily)."""
    return jobs.purge()


@shared_task(name="stepkit_django.send_digests")
def send_digests() -> int:
    """The daily digest: one email per reviewer listing what waits for them (run it once a day)."""
    return jobs.send_digests()
