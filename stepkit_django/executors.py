"""Executors: how a queued run gets advanced (``STEPKIT["EXECUTOR"]``).

* ``"inline"``: in the calling process, right away (tests, scripts, the simplest setup);
* ``"tasks"``: a task of Django's tasks framework (``django.tasks`` on Django 6, the
  ``django-tasks`` backport on 5.2), for example ``django-tasks-db``'s ``db_worker``;
* ``"celery"``: a Celery task (``stepkit_django.contrib.celery``).

Only the run's id travels in a message; the state lives in the database. The
message is sent after the current transaction commits, so a worker never looks
for a run that is not there yet.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from .conf import settings
from .models import PipelineRun

__all__ = ["EXECUTORS", "dispatch", "held_here"]

EXECUTORS = ("inline", "tasks", "celery")


def executor_name() -> str:
    name = settings.EXECUTOR
    if name not in EXECUTORS:
        raise ImproperlyConfigured(f"STEPKIT['EXECUTOR'] must be one of {', '.join(EXECUTORS)}; got {name!r}")
    return str(name)


def held_here() -> dict[str, Any] | None:
    """With the ``"inline"`` executor, the lease fields that hand a run straight to this process.

    Written with ``status="running"`` by the caller's own UPDATE or INSERT of the
    run (it is then held here under a fresh lease), they save the separate statement
    that would take the lease; pass ``held=True`` to :func:`dispatch` after the
    write commits. None with a queued executor: the run is queued for a worker.
    """
    if executor_name() != "inline":
        return None
    from .leases import lease_duration, new_owner

    return {"lease_owner": new_owner(), "lease_expires_at": timezone.now() + lease_duration()}


def dispatch(run: PipelineRun, *, held: bool = False) -> bool:
    """Have ``run`` (queued, or with ``held``, taken by :func:`held_here`) advanced by the executor.

    True when it was executed here and then (``"inline"``) and ``run`` holds its
    state afterwards; False when a worker will take it.
    """
    name = executor_name()
    run_id = str(run.pk)
    if name == "inline":
        from .runner import advance

        return advance(run_id, run=run, held_by=run.lease_owner if held else None) is run
    transaction.on_commit(lambda: _send(name, run_id))
    return False


def _send(name: str, run_id: str) -> None:
    if name == "tasks":
        from .tasks import advance_run

        _task_with_options(advance_run).enqueue(run_id)
    else:
        from .contrib.celery import advance_run as celery_advance_run

        queue = settings.CELERY_QUEUE
        celery_advance_run.apply_async(args=[run_id], **({"queue": queue} if queue else {}))


def _task_with_options(task: Any) -> Any:
    return task.using(backend=settings.TASKS_BACKEND, queue_name=settings.TASKS_QUEUE)
