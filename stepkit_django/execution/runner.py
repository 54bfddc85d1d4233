"""The Django runner: executes registered pipelines as durable ``PipelineRun`` rows.

After every step the run's context and position are saved, an audit event is
written, the run pauses if the step was declared with ``review=Review(...)``, and
``step_completed`` is sent, all in one transaction (on PostgreSQL, a step with no
review and no receivers is saved by one statement, atomic without a transaction
block). A receiver may pause the run there too. A run whose process died resumes from its last
completed step with :func:`resume_run`; completed steps do not run again.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from .. import audit
from ..audit import step_rows, system_row
from ..conf import settings
from ..current import CURRENT_RUN
from ..engine import Pipeline, StepCompleteEvent
from ..engine.context import changed_keys, to_json_ready
from ..engine.executor import Resume, display_path, first_of, run_sync
from ..exceptions import PipelineChanged, PipelineNotFound, StepkitError
from ..models import AuditEvent, PipelineRun
from ..pausing import create_checkpoint
from ..registry import get_registration
from ..review_spec import Review
from ..revisions import check_step_output, decision_keys
from ..signals import run_finished, step_completed
from ..status import AuditAction, RunStatus
from ..telemetry import metrics, tracing
from ..transitions import move_run
from .leases import HEARTBEAT, lease_duration, new_owner, take
from .progress import save_run, save_step, single_statement

__all__ = ["RunNotResumable", "advance", "execute_held", "pause", "resume_run"]

User = AbstractBaseUser | AnonymousUser | None
logger = logging.getLogger("stepkit_django")

#: The progress of the run this context is executing (what :func:`pause` writes before pausing).
_PROGRESS: ContextVar[Progress | None] = ContextVar("stepkit_progress", default=None)


class RunNotResumable(StepkitError):
    """The run is not running, or another process holds its lease."""


class _RunInterrupted(Exception):
    """The run's status changed under the runner (cancelled, or paused): stop executing."""


def resume_run(run: PipelineRun, *, force: bool = False) -> PipelineRun:
    """Continue a run whose process died, from its last completed step, in this process.

    The run must be queued, or running with an expired lease (``manage.py
    stepkit_recover`` finds those). ``force=True`` also takes a running run whose
    lease is still valid: use it only when you know that process is gone.
    """
    advanced = advance(run.pk, force=force)
    if advanced is None:
        current = PipelineRun.objects.get(pk=run.pk)
        if current.status == RunStatus.RUNNING:
            raise RunNotResumable(
                f"Run {current.pk} is being executed by {current.lease_owner!r} (lease until "
                f"{current.lease_expires_at}); wait for the lease to expire, or pass force=True"
            )
        raise RunNotResumable(
            f"Run {current.pk} is {current.status}; only queued or running runs resume "
            "(approve its checkpoint, or retry it if it failed)"
        )
    return advanced


def advance(
    run_id: Any,
    *,
    force: bool = False,
    run: PipelineRun | None = None,
    trace_context: Mapping[str, str] | None = None,
) -> PipelineRun | None:
    """Take the run's lease and execute it until it pauses or ends; None if it cannot be taken.

    This is what every worker calls (through :func:`stepkit_django.jobs.advance_run`). A run
    that another process holds, or that is not queued, is left alone, so a duplicated message
    does nothing. ``force`` takes a running run whose lease is still valid. ``run`` (the
    caller's current instance of it, e.g. just created) saves reading it back; it is then
    updated in place and returned. ``trace_context`` (W3C headers sent with the run's id) is the
    span that enqueued the run: the advance's span links to it (:mod:`stepkit_django.telemetry.tracing`).
    """
    owner = new_owner()
    taken = take(run_id, owner, force=force)
    if not taken:
        return None
    if run is None:
        run = PipelineRun.objects.get(pk=run_id)
    else:
        run.status, run.lease_owner, run.lease_expires_at, run.updated_at = RunStatus.RUNNING, owner, *taken
        run.started_at = run.started_at or taken[1]
    return execute_held(run, trace_context)


def execute_held(run: PipelineRun, trace_context: Mapping[str, str] | None = None) -> PipelineRun:
    """Execute ``run``, which this process holds already (running, under ``run.lease_owner``).

    :func:`advance` calls it once it took the lease; the inline executor calls it directly
    for a run whose own write took the lease (``executors.hold()``). The ``stepkit.advance`` span
    wraps it (a child of the current span, linked to ``trace_context`` when one came with the run).
    """
    with tracing.advancing(run, trace_context):
        return _execute_held(run)


def _execute_held(run: PipelineRun) -> PipelineRun:
    owner = run.lease_owner
    HEARTBEAT.hold(run.pk, owner)
    token = CURRENT_RUN.set(str(run.pk))
    try:
        try:
            pipeline = get_registration(run.pipeline_name).pipeline
            resume = saved_resume_point(run, pipeline)
        except PipelineNotFound as exc:
            if not _wait_for_pipeline(run, owner, exc):
                _finish_failed(run, owner, exc, run.current_step)
            return run
        except StepkitError as exc:
            _finish_failed(run, owner, exc, run.current_step)
            return run
        return _execute(run, owner, pipeline, resume)
    finally:
        CURRENT_RUN.reset(token)
        HEARTBEAT.release(run.pk)


#: The events after which a run waits in the queue: how long it has been waiting is counted from the last.
_QUEUED_BY = (
    AuditAction.RUN_STARTED,
    AuditAction.RESUMED,
    AuditAction.CHANGES_REQUESTED,
    AuditAction.RUN_RETRIED,
    AuditAction.RUN_RECOVERED,
)


def _wait_for_pipeline(run: PipelineRun, owner: str, exc: PipelineNotFound) -> bool:
    """Put back in the queue a run whose pipeline this process does not know, within the grace period.

    During a rolling deploy a worker may not have the new ``pipelines.py`` yet: the run
    stays queued (``recover()`` sends it again after ``LEASE_SECONDS``), until
    ``STEPKIT["UNKNOWN_PIPELINE_GRACE"]`` has passed since it was queued; False then,
    and the caller fails it.
    """
    queued_at = (
        AuditEvent.objects.filter(run_id=run.pk, action__in=_QUEUED_BY)
        .order_by("-timestamp")
        .values_list("timestamp", flat=True)
        .first()
    ) or run.created_at
    grace = settings.UNKNOWN_PIPELINE_GRACE
    if timezone.now() - queued_at >= grace:
        return False
    try:
        move_run(
            run,
            RunStatus.RUNNING,
            RunStatus.QUEUED,
            where={"lease_owner": owner},
            lease_owner="",
            lease_expires_at=None,
        )
    except StepkitError:
        return True  # cancelled or taken meanwhile: nothing to do here
    logger.warning(
        "Run %s: this process does not know pipeline %r (a deploy in progress?). The run stays queued and is "
        "retried; it fails if the pipeline is still unknown %s after it was queued. %s",
        run.pk,
        run.pipeline_name,
        grace,
        exc,
    )
    return True


def saved_resume_point(run: PipelineRun, pipeline: Pipeline) -> Resume | None:
    """Where ``run`` continues: after its last saved step, or from the start."""
    if not run.position:
        return None
    position = tuple(run.position)
    try:
        # A run sent back to the first step of a level (a request for changes) names that step.
        still_there = display_path(pipeline, first_of(position)) == run.current_step
    except KeyError:
        still_there = False
    if not still_there:
        raise PipelineChanged(
            f"Step {run.current_step!r} is no longer at the same place in pipeline {pipeline.name!r} "
            f"(version {pipeline.version}); the run cannot resume safely"
        )
    return Resume(position, (*run.outer_contexts, run.context))


def _execute(run: PipelineRun, owner: str, pipeline: Pipeline, resume: Resume | None) -> PipelineRun:
    progress = Progress(run, owner, pipeline, buffered=get_registration(run.pipeline_name).durability == "pause")
    failed_step: list[str] = []
    # With metrics on, the handlers count steps and their duration too (the same handlers otherwise).
    on_complete, on_error = metrics.step_handlers(
        run, progress.step_completed, lambda step, exc: failed_step.append(step)
    )
    config: dict[str, Any] = {
        "on_step_complete": on_complete,
        "on_error": on_error,
        # The next step sees each output as the database gives it back (as after a pause or a crash).
        "prepare_output": to_json_ready,
    }
    around_step = tracing.step_spans(run)
    if around_step is not None:  # a span around each call of a step function
        config["around_step"] = around_step
    current = _PROGRESS.set(progress)
    try:
        context = run_sync(pipeline, run.input if resume is None else None, resume, config)
        if run.status != RunStatus.PAUSED:
            _finish_completed(run, owner, context, progress)
    except _RunInterrupted:
        progress.record_cancelled(run.context)  # outside the step's transaction, which rolled back
        run.refresh_from_db()
    except DatabaseError as exc:
        if _connection_lost():
            # The database went away (a restart, a failover): this is not the step's failure.
            # Leave the run running; its lease expires and recover() queues it again.
            raise
        _finish_failed(run, owner, exc, failed_step[-1] if failed_step else run.current_step, progress)
    except Exception as exc:
        _finish_failed(run, owner, exc, failed_step[-1] if failed_step else run.current_step, progress)
    finally:
        _PROGRESS.reset(current)
    return run


def _connection_lost() -> bool:
    """Whether the default database connection broke; it is closed so that the next use reconnects.

    Django drops a connection it could not roll back; an open one is probed unless a
    caller's transaction is in progress (a failed statement there is the caller's to handle).
    """
    if connection.connection is not None and (connection.in_atomic_block or connection.is_usable()):
        return False
    connection.close()
    return True


class Progress:
    """Writes a run's progress: after every step (durability ``"step"``), or, with
    ``"pause"``, only when the run pauses, fails or ends (the step events are kept
    in memory until then and written together)."""

    def __init__(self, run: PipelineRun, owner: str, pipeline: Pipeline, *, buffered: bool) -> None:
        self.run, self.owner, self.buffered = run, owner, buffered
        self.last = len(pipeline.steps) - 1  # the last top-level step is saved with the run's end
        self.lease_until = run.lease_expires_at  # as acquired; the heartbeat renews it too
        # The top-level context as last written (None: unknown, or nested): the next save on
        # PostgreSQL sends only the keys that changed since. Contexts are never mutated in place
        # by the engine, so unchanged values are the very same objects.
        self.written: dict[str, Any] | None = None
        self.pending: list[tuple[str, float, Any]] = []  # step events not written yet
        self.decision_keys = decision_keys(pipeline)  # reserved: a step may not set them

    def step_completed(self, event: StepCompleteEvent) -> None:
        """The engine's ``on_step_complete``: record the step, save it (or not), send ``step_completed``."""
        run, contexts = self.run, event.contexts
        if self.decision_keys:
            check_step_output(self.decision_keys, run.context, contexts[-1], event.step_name)
        run.context, run.outer_contexts = contexts[-1], list(contexts[:-1])
        run.position, run.current_step = list(event.position), event.step_name
        self.pending.append((event.step_name, round(event.duration * 1000, 3), timezone.now()))
        review = review_to_pause(event)
        listeners = step_completed.has_listeners(PipelineRun)
        if not (review or listeners):
            if self.buffered or event.position == (self.last,):
                # Buffered: nothing to write until the run pauses, fails or ends. The last step:
                # no code of the pipeline runs after it, so the run's end writes it (one statement less).
                return
            self.save()  # nothing else to write with it: atomic by itself
            return
        try:
            with transaction.atomic():
                if not self.buffered:
                    self.save()
                if review is not None:
                    self.pause(event, review)
                if listeners:
                    stop = partial(self.pause, event)
                    step_completed.send(sender=PipelineRun, run=run, event=event, stop_pipeline=stop)
        except BaseException:
            self.written = None  # rolled back: the stored context is not known any more
            raise

    def context_to_send(self, context: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """``(value, merge)``: on PostgreSQL, once the top-level context was written, only the keys
        that changed since (merged with ``||``), unless a key was removed; else the whole context."""
        written = self.written
        if written is not None and single_statement() and written.keys() <= context.keys():
            return changed_keys(written, context), True
        return context, False

    def save(self) -> None:
        """Write the progress and the pending step events; the UPDATE renews the lease when due.

        Atomic by itself (one statement on PostgreSQL, a transaction elsewhere).
        Raises _RunInterrupted if the run was cancelled or taken over by another process.
        """
        if not self.pending:
            return
        run, now = self.run, timezone.now()
        # Renew the lease with the step once half of it is gone; until then the row is
        # updated without touching an indexed column.
        duration = lease_duration()
        renew = self.lease_until is None or self.lease_until - now < duration / 2
        lease_until = now + duration if renew else None
        context, merge = self.context_to_send(run.context) if not run.outer_contexts else (run.context, False)
        try:
            saved = save_step(
                run,
                self.owner,
                context=context,
                outer_contexts=run.outer_contexts,
                position=run.position,
                step=run.current_step,
                events=self.pending,
                now=now,
                lease_until=lease_until,
                merge=merge,
            )
        except (TypeError, ValueError) as exc:
            if not isinstance(exc, StepkitError):
                for ctx in (*run.outer_contexts, run.context):
                    to_json_ready(ctx)  # name the key that cannot be stored
            raise
        if not saved:
            self.written = None
            raise _RunInterrupted  # _execute() records the steps that ran if the run was cancelled
        self.written = None if run.outer_contexts else run.context
        run.updated_at = now
        if lease_until is not None:
            self.lease_until = run.lease_expires_at = lease_until
        self.pending = []

    def pause(self, event: StepCompleteEvent, review: Review | None = None) -> None:
        """Pause the run after ``event``'s step: write the steps not saved yet (``durability="pause"``),
        create the pending checkpoint, stop the pipeline. Again for the same step: nothing."""
        if self.run.status == RunStatus.PAUSED:
            return
        self.save()
        create_checkpoint(self.run, event, review or Review())
        event.stop_pipeline()

    def record_cancelled(self, context: dict[str, Any]) -> None:
        """The run was cancelled while this process executed it: record the steps that ran.

        Written only if the run is cancelled and still names this process as its lease owner
        (``cancel_run`` keeps it for that), which also gives the lease up; a run that another
        process took over is left alone.
        """
        if not self.pending:
            return
        run = self.run
        values = {
            "context": context,
            "outer_contexts": run.outer_contexts,
            "position": run.position,
            "current_step": run.current_step,
            "updated_at": timezone.now(),
            "lease_owner": "",
        }
        save_run(run, self.owner, values, step_rows(run, self.pending), status=RunStatus.CANCELLED)
        self.pending = []


def review_to_pause(event: StepCompleteEvent) -> Review | None:
    """The ``Review`` to pause with after ``event``'s step: declared with ``review=Review(...)`` and ``when`` holds."""
    spec = event.step.options.extra.get("review")
    if not isinstance(spec, Review):
        return None
    if spec.when is not None and not spec.when(event.context) and not _sent_back(event.context, spec):
        return None
    return spec


def _sent_back(context: dict[str, Any], spec: Review) -> bool:
    """Whether the run is redoing work a reviewer asked to change: then a review pauses whatever ``when`` says
    (an edit sent back with the request could otherwise make ``when`` false and skip the review)."""
    decision = context.get(spec.decision_key)
    return isinstance(decision, dict) and decision.get("outcome") == "changes_requested"


def pause(run: PipelineRun, event: StepCompleteEvent, review: Review | None = None) -> None:
    """Pause ``run`` after ``event``'s step for review (what ``stop_pipeline`` of ``step_completed`` does).

    Creates a pending checkpoint with ``review``'s settings (default: ``Review()``)
    and stops the pipeline. Calling it again for the same step does nothing.
    """
    progress = _PROGRESS.get(None)
    if progress is not None and progress.run is run:
        progress.pause(event, review)  # writes the steps not saved yet first
        return
    if run.status != RunStatus.PAUSED:
        create_checkpoint(run, event, review or Review())
        event.stop_pipeline()


def _finish_completed(run: PipelineRun, owner: str, context: dict[str, Any], progress: Progress) -> None:
    """End ``run`` as completed, with the steps not written yet and its ``run_completed`` event: one statement
    on PostgreSQL."""
    now = timezone.now()
    values: dict[str, Any] = {
        "finished_at": now,
        "updated_at": now,
        "lease_owner": "",
        "lease_expires_at": None,
    }
    merge = False
    if progress.pending or context is not progress.written:
        # Not stored as it is (the last step, buffered steps, a change after the last save): write it.
        sent, merge = progress.context_to_send(context)
        values.update(context=sent, outer_contexts=[], position=run.position, current_step=run.current_step)
    rows = [*step_rows(run, progress.pending), system_row(run, AuditAction.RUN_COMPLETED, now)]
    try:
        done = save_run(run, owner, values, rows, merge=merge, target=RunStatus.COMPLETED)
    except (TypeError, ValueError) as exc:
        if not isinstance(exc, StepkitError):
            to_json_ready(context)  # name the key that cannot be stored
        raise
    if done:
        progress.pending = []
        run.status, run.context, run.outer_contexts, run.finished_at = RunStatus.COMPLETED, context, [], now
        run.updated_at, run.lease_owner, run.lease_expires_at = now, "", None
        run_finished.send(sender=PipelineRun, run=run, status=run.status)
    else:
        progress.record_cancelled(context)
        run.refresh_from_db()


def _finish_failed(
    run: PipelineRun, owner: str, exc: BaseException, step: str, progress: Progress | None = None
) -> None:
    now = timezone.now()
    error = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))
    if progress is not None and progress.pending:
        try:
            with transaction.atomic():
                progress.save()  # keep the steps that did complete, so a retry does not repeat them
        except (
            Exception
        ):  # the save itself failed (the same unstorable value, or the run was taken): record the failure
            progress.pending = []
    with transaction.atomic():
        fields = {"error": error, "traceback": trace, "finished_at": now, "updated_at": now}
        fields.update(lease_owner="", lease_expires_at=None)
        failed = save_run(run, owner, fields, [], target=RunStatus.FAILED)
        if failed:
            run.status, run.error, run.traceback, run.finished_at = RunStatus.FAILED, error, trace, now
            run.updated_at, run.lease_owner, run.lease_expires_at = now, "", None
            audit.record(run, AuditAction.RUN_FAILED, data={"step": step, "error": error})
    if failed:
        run_finished.send(sender=PipelineRun, run=run, status=run.status)
    else:
        run.refresh_from_db()
