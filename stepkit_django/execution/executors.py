"""Executors: how a queued run gets advanced, as backends chosen by ``STEPKIT["EXECUTOR"]``.

Like Django's task backends: a small base class, :class:`BaseExecutor`, and three
implementations, picked by dotted path (the short names are aliases):

* ``"inline"`` (:class:`InlineExecutor`): in the calling process, right away (tests,
  scripts, the simplest setup);
* ``"tasks"`` (:class:`TasksExecutor`): a task of Django's tasks framework
  (``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2), for example
  ``django-tasks-db``'s ``db_worker``;
* ``"celery"`` (:class:`CeleryExecutor`): a Celery task (``stepkit_django.contrib.celery``).

Only the run's id travels in a message; the state lives in the database. A queued
executor sends the message after the current transaction commits, so a worker never
looks for a run that is not there yet. With tracing on (:mod:`stepkit_django.telemetry`),
the message also carries ``trace_context``: the W3C trace context current when the run was
dispatched (a decision, a request), which the worker's span links to. Whatever the executor, a worker ends up in
:func:`stepkit_django.execution.jobs.advance_run`.
"""

from __future__ import annotations

import inspect
import logging
from functools import cache
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from ..conf import settings
from ..models import PipelineRun
from ..status import RunStatus
from ..telemetry import tracing

__all__ = [
    "ALIASES",
    "BaseExecutor",
    "CeleryExecutor",
    "InlineExecutor",
    "TasksExecutor",
    "accepts_trace_context",
    "dispatch",
    "get_executor",
    "held_fields",
    "hold",
    "load_executor",
]

logger = logging.getLogger("stepkit_django")

#: The short names ``STEPKIT["EXECUTOR"]`` accepts, and the backends they stand for.
ALIASES = {
    "inline": "stepkit_django.execution.executors.InlineExecutor",
    "tasks": "stepkit_django.execution.executors.TasksExecutor",
    "celery": "stepkit_django.execution.executors.CeleryExecutor",
}


class BaseExecutor:
    """How runs get advanced. Subclasses must override :meth:`enqueue`."""

    #: True when the run is executed in the calling process: then the caller's own write of the run
    #: may take its lease (:func:`hold`), which saves the statement that would take it.
    runs_here: ClassVar[bool] = False

    def enqueue(self, run_id: str) -> None:
        """Hand run ``run_id`` (queued) to whatever advances it; called after the transaction commits."""
        raise NotImplementedError("subclasses of BaseExecutor must provide an enqueue() method")

    def enqueue_notification(self, notification_id: int) -> None:
        """Have notification ``notification_id`` sent; called after the transaction that wrote it committed.

        The default sends it here and now (:func:`stepkit_django.notifications.delivery.deliver`).
        """
        from ..notifications.delivery import deliver

        deliver(notification_id)

    def dispatch(self, run: PipelineRun, *, held: bool = False) -> bool:
        """Have ``run`` advanced; True when it was executed here and ``run`` holds its state afterwards."""
        run_id = str(run.pk)
        # Sent in the trace context current now, even if the commit comes after its span ended.
        transaction.on_commit(tracing.in_current_context(lambda: self.enqueue(run_id)))
        return False


class InlineExecutor(BaseExecutor):
    """Executes the run in the calling process, until it pauses or ends."""

    runs_here = True

    def enqueue(self, run_id: str) -> None:
        from .runner import advance

        advance(run_id)

    def dispatch(self, run: PipelineRun, *, held: bool = False) -> bool:
        from .runner import advance, execute_held

        if held:  # the caller's own write took the lease for this process
            return execute_held(run) is run
        return advance(str(run.pk), run=run) is run


class TasksExecutor(BaseExecutor):
    """Enqueues :data:`task` with Django's tasks framework (``TASKS_BACKEND``, ``TASKS_QUEUE``)."""

    #: The task that advances a run, by dotted path (it calls :func:`stepkit_django.execution.jobs.advance_run`).
    task = "stepkit_django.tasks.advance_run"
    #: The task that sends a notification (it calls :func:`stepkit_django.execution.jobs.deliver_notification`).
    notification_task = "stepkit_django.tasks.deliver_notification"

    def enqueue(self, run_id: str) -> None:
        task = import_string(self.task)
        trace = _trace_for(self.task)  # empty unless tracing is on: then the message is the same as ever
        queued = task.using(backend=settings.TASKS_BACKEND, queue_name=settings.TASKS_QUEUE)
        queued.enqueue(run_id, **({"trace_context": trace} if trace else {}))

    def enqueue_notification(self, notification_id: int) -> None:
        task = import_string(self.notification_task)
        task.using(backend=settings.TASKS_BACKEND, queue_name=settings.TASKS_QUEUE).enqueue(notification_id)


class CeleryExecutor(BaseExecutor):
    """Sends :data:`task` to Celery (``CELERY_QUEUE``; None: Celery's default queue)."""

    #: The Celery task that advances a run, by dotted path.
    task = "stepkit_django.contrib.celery.advance_run"
    #: The Celery task that sends a notification, by dotted path.
    notification_task = "stepkit_django.contrib.celery.deliver_notification"

    def enqueue(self, run_id: str) -> None:
        queue = settings.CELERY_QUEUE
        task = import_string(self.task)
        trace = _trace_for(self.task)  # empty unless tracing is on: then the message is the same as ever
        options: dict[str, Any] = {"queue": queue} if queue else {}
        if trace:
            options["kwargs"] = {"trace_context": trace}
        task.apply_async(args=[run_id], **options)

    def enqueue_notification(self, notification_id: int) -> None:
        queue = settings.CELERY_QUEUE
        import_string(self.notification_task).apply_async(args=[notification_id], **({"queue": queue} if queue else {}))


def _trace_for(path: str) -> dict[str, str]:
    """The trace context to send with a run's id to the task named ``path``: none when tracing is off, or
    when the task does not take ``trace_context`` (a custom task written before it existed)."""
    trace = tracing.carrier()
    return trace if trace and accepts_trace_context(path) else {}


@cache
def accepts_trace_context(path: str) -> bool:
    """Whether the task named ``path`` (of Django's tasks framework, of Celery, or a function) takes a
    ``trace_context`` keyword argument; checked once per task, with a warning when it does not (the run's
    id is then sent alone, and its worker's span links to nothing)."""
    task = import_string(path)
    function = getattr(task, "func", None) or getattr(task, "run", None) or task
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read: send what every task takes, the id alone
        accepted = False
    else:
        accepted = any(p.name == "trace_context" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    if not accepted:
        logger.warning(
            "The task %s does not accept trace_context: runs are sent to it without their trace context "
            "(add trace_context=None to it and pass it to jobs.advance_run to link its spans)",
            path,
        )
    return accepted


@cache
def load_executor(path: str) -> BaseExecutor:
    """The executor named by ``path`` (an alias or a dotted path); ImproperlyConfigured if there is none."""
    try:
        backend = import_string(ALIASES.get(path, path))
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"STEPKIT['EXECUTOR'] must be one of {', '.join(ALIASES)} or the dotted path of a BaseExecutor "
            f"subclass; could not import {path!r}: {exc}"
        ) from exc
    if not (isinstance(backend, type) and issubclass(backend, BaseExecutor)):
        raise ImproperlyConfigured(f"STEPKIT['EXECUTOR'] = {path!r} is not a subclass of BaseExecutor")
    return backend()


def get_executor() -> BaseExecutor:
    """The executor ``STEPKIT["EXECUTOR"]`` names (read each time, so ``override_settings`` works)."""
    return load_executor(str(settings.EXECUTOR))


def hold(run: PipelineRun) -> bool:
    """With an executor that runs here (``"inline"``), make the unsaved ``run`` running, held by this process.

    Its own INSERT then takes the lease (a fresh one), which saves the statement
    that would take it; pass ``held=True`` to :func:`dispatch` after the write
    commits. False with a queued executor: the run stays queued for a worker.
    """
    fields = held_fields(run)
    for name, value in fields.items():
        setattr(run, name, value)
    return bool(fields)


def held_fields(run: PipelineRun) -> dict[str, Any]:
    """With an executor that runs here (``"inline"``), the fields that make ``run`` running, held by this process
    under a fresh lease, for the caller's own write of the run (``status`` among them); empty otherwise.

    A decision that resumes a paused run writes them with its move of the run, which saves
    the statement that would take the lease; pass ``held=True`` to :func:`dispatch` after the
    write commits.
    """
    if not get_executor().runs_here:
        return {}
    from .leases import lease_duration, new_owner

    fields: dict[str, Any] = {
        "status": RunStatus.RUNNING,
        "lease_owner": new_owner(),
        "lease_expires_at": timezone.now() + lease_duration(),
    }
    if run.started_at is None:
        fields["started_at"] = run.created_at
    return fields


def dispatch(run: PipelineRun, *, held: bool = False) -> bool:
    """Have ``run`` (queued, or with ``held``, taken by :func:`hold`) advanced by the executor.

    True when it was executed here and then (``"inline"``) and ``run`` holds its
    state afterwards; False when a worker will take it.
    """
    return get_executor().dispatch(run, held=held)
