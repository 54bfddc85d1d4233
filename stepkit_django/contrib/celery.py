"""Celery tasks for the ``"celery"`` executor (``STEPKIT = {"EXECUTOR": "celery"}``).

Import this module in your Celery app (``app.autodiscover_tasks()`` finds it when
``stepkit_django.contrib.celery`` is listed in ``include``, or add it with
``app.conf.include``). Schedule ``expire_due`` and ``recover`` with Celery beat.
"""

from __future__ import annotations

from celery import shared_task

__all__ = ["advance_run", "expire_due", "recover"]


@shared_task(name="stepkit_django.advance_run", ignore_result=True)
def advance_run(run_id: str) -> None:
    """Take the run's lease and execute it until it pauses or ends (only the id travels)."""
    from ..runner import advance

    advance(run_id)


@shared_task(name="stepkit_django.expire_due")
def expire_due() -> int:
    from ..review import expire_due as expire

    return expire()


@shared_task(name="stepkit_django.recover")
def recover() -> int:
    from ..leases import recover as recover_runs

    return recover_runs()
