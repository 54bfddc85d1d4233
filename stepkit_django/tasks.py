"""Tasks for Django's tasks framework: the ``"tasks"`` executor's task and the periodic jobs.

Uses ``django.tasks`` on Django 6 and the ``django-tasks`` backport on Django 5.2.
Any configured backend works; ``django-tasks-db`` (``manage.py db_worker``) needs
nothing but the database. Each task wraps the function of :mod:`stepkit_django.jobs`.
"""

from __future__ import annotations

from importlib.util import find_spec

from .execution import jobs

if find_spec("django.tasks") is not None:
    from django.tasks import task
else:  # Django 5.2: the backport
    try:
        from django_tasks import task  # type: ignore[no-redef,unused-ignore]
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            'The "tasks" executor needs Django 6, or the django-tasks backport on Django 5.2 (pip install django-tasks)'
        ) from exc

__all__ = ["advance_run", "deliver_notification", "expire_due", "purge", "recover", "send_digests", "sweep"]


@task()
def advance_run(run_id: str, trace_context: dict[str, str] | None = None) -> None:
    """Take the run's lease and execute it until it pauses or ends (only the id travels, and with
    tracing on, the W3C trace context of the span that enqueued it)."""
    jobs.advance_run(run_id, trace_context)


@task()
def expire_due() -> int:
    """Apply ``on_timeout`` to checkpoints past their deadline (run it periodically)."""
    return jobs.expire_due()


@task()
def recover() -> int:
    """Re-queue runs whose worker stopped (run it periodically)."""
    return jobs.recover()


@task()
def deliver_notification(notification_id: int) -> bool:
    """Make one attempt at sending the notification (a re-delivered task sends nothing twice)."""
    return jobs.deliver_notification(notification_id)


@task()
def sweep() -> dict[str, int]:
    """The periodic job: deadlines, stopped workers' runs, notifications due (run it every minute)."""
    return jobs.sweep()


@task()
def purge() -> dict[str, int]:
    """Retention: redact the ended runs of pipelines registered with a ``retention`` (run it daily)."""
    return jobs.purge()


@task()
def send_digests() -> int:
    """The daily digest: one email per reviewer listing what waits for them (run it once a day)."""
    return jobs.send_digests()
