"""Metrics: counters and histograms of runs, steps, checkpoints, decisions and notifications, and the
gauges of what waits for review (the names, units and attributes are listed in
``docs/how-to/prometheus-and-tracing.md``).

The counters and histograms are made on first use from the provider :func:`stepkit_django.telemetry.api.meter_provider`
answers, once per provider. Every function here does nothing when it answers None. The two gauges are made
up front (:func:`register_gauges`: from the app's ``ready()`` on OpenTelemetry's global provider, which
hands them on to the SDK provider set later, and from :func:`stepkit_django.telemetry.use`), so that a
process that has recorded nothing yet (a web process just restarted, one that only serves metrics)
reports them from its first collection. Attributes are
names only (pipeline, step, outcome, notification event and channel), never a context value, and few
enough for Prometheus: a pipeline's steps are declared in code.

The two gauges are observed when the metrics are collected (a Prometheus scrape, an export period),
in whatever thread collects: the first of the two callbacks of a collection runs both aggregate queries,
``GROUP BY`` pipeline and step over the pending checkpoints (``stepkit_cp_queue`` serves the pending
count from the index alone; ``stepkit_cp_expiry`` the overdue ones), on one connection, which is closed
again if the collection opened it, and in a savepoint inside a transaction (a failed query then leaves
the caller's transaction usable); the second callback reports what the first counted.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import api
from .api import OUTCOME, PIPELINE, STEP

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, MeterProvider, Observation

    from ..engine.events import StepCompleteEvent
    from ..models import Checkpoint, Notification, PipelineRun

__all__ = [
    "Instruments",
    "checkpoint_created",
    "checkpoint_decided",
    "instruments",
    "notification_failed",
    "register_gauges",
    "run_finished",
    "run_started",
    "step_handlers",
]

logger = logging.getLogger("stepkit_django")

#: Bucket boundaries of ``stepkit.step.duration`` (seconds): a millisecond to a quarter of an hour.
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
#: Bucket boundaries of ``stepkit.checkpoint.time_to_decision`` (seconds): a minute to a week.
DECISION_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 2 * 86400, 7 * 86400)

_NO_SAVEPOINT = nullcontext()

#: The run counters by end state (``run_finished``'s ``status``).
_ENDS = ("completed", "failed", "rejected", "cancelled")


@dataclass(frozen=True, slots=True)
class Instruments:
    """The instruments made from one meter provider."""

    provider: Any
    runs_started: Counter
    runs_ended: dict[str, Counter]
    steps_failed: Counter
    step_duration: Histogram
    checkpoints_created: Counter
    checkpoints_decided: Counter
    time_to_decision: Histogram
    notifications_failed: Counter


_made: Instruments | None = None


def instruments() -> Instruments | None:
    """The instruments to record with; None when nothing would be recorded."""
    global _made
    provider = api.meter_provider()
    if provider is None:
        return None
    made = _made
    if made is None or made.provider is not provider:
        made = _made = _make(provider)
    return made


def _make(provider: MeterProvider) -> Instruments:
    from .. import __version__

    meter = provider.get_meter(api.NAME, __version__)
    runs = "{run}"
    ended = {
        end: meter.create_counter(f"stepkit.runs.{end}", runs, f"Runs that ended {end}, per pipeline") for end in _ENDS
    }
    _gauges_on(provider)  # a provider not seen before (neither by ready() nor by use())
    return Instruments(
        provider=provider,
        runs_started=meter.create_counter("stepkit.runs.started", runs, "Runs created, per pipeline"),
        runs_ended=ended,
        steps_failed=meter.create_counter("stepkit.steps.failed", "{step}", "Steps that failed, retries spent"),
        step_duration=meter.create_histogram(
            "stepkit.step.duration",
            "s",
            "How long a completed step took, its retries included (its count: the steps completed)",
            explicit_bucket_boundaries_advisory=STEP_BUCKETS,
        ),
        checkpoints_created=meter.create_counter(
            "stepkit.checkpoints.created", "{checkpoint}", "Checkpoints created: runs paused for review"
        ),
        checkpoints_decided=meter.create_counter(
            "stepkit.checkpoints.decided", "{checkpoint}", "Checkpoints decided, per outcome"
        ),
        time_to_decision=meter.create_histogram(
            "stepkit.checkpoint.time_to_decision",
            "s",
            "From a checkpoint's creation to its decision",
            explicit_bucket_boundaries_advisory=DECISION_BUCKETS,
        ),
        notifications_failed=meter.create_counter(
            "stepkit.notifications.failed", "{notification}", "Failed attempts at sending a notification"
        ),
    )


# -- runs and steps -------------------------------------------------------------------------------


def run_started(run: PipelineRun) -> None:
    """A run was created (``start()``, a re-run from a checkpoint): counted once its transaction commits."""
    made = instruments()
    if made is None:
        return
    from django.db import transaction

    attributes = {PIPELINE: run.pipeline_name}
    transaction.on_commit(lambda: made.runs_started.add(1, attributes), robust=True)


def run_finished(run: PipelineRun, status: str) -> None:
    """``run_finished``: a run ended (completed, failed, rejected, cancelled); counted once the transaction
    around it commits (a request's ``ATOMIC_REQUESTS`` transaction that rolls back counts nothing)."""
    made = instruments()
    counter = made.runs_ended.get(str(status)) if made is not None else None
    if counter is not None:
        from django.db import transaction

        attributes = {PIPELINE: run.pipeline_name}
        transaction.on_commit(lambda: counter.add(1, attributes), robust=True)


def step_handlers(
    run: PipelineRun, on_complete: Callable[[StepCompleteEvent], None], on_error: Callable[[str, Exception], None]
) -> tuple[Callable[[StepCompleteEvent], None], Callable[[str, Exception], None]]:
    """The engine's ``on_step_complete`` and ``on_error`` for ``run``, counting steps and their duration;
    the handlers themselves when nothing would be recorded (the hot path stays as it is)."""
    made = instruments()
    if made is None:
        return on_complete, on_error
    pipeline = run.pipeline_name
    failed, duration = made.steps_failed, made.step_duration
    # One attribute dict per step name for the whole run, rather than one per step completed.
    by_step: dict[str, dict[str, str]] = {}

    def completed_step(event: StepCompleteEvent) -> None:
        name = event.step_name
        attributes = by_step.get(name) or by_step.setdefault(name, {PIPELINE: pipeline, STEP: name})
        duration.record(event.duration, attributes)  # its count is the number of completed steps
        on_complete(event)

    def failed_step(step: str, exc: Exception) -> None:
        failed.add(1, {PIPELINE: pipeline, STEP: step})
        on_error(step, exc)

    return completed_step, failed_step


# -- checkpoints ----------------------------------------------------------------------------------


def checkpoint_created(checkpoint: Checkpoint) -> None:
    """``checkpoint_created`` (inside the pause's transaction): counted once that commits."""
    made = instruments()
    if made is None:
        return
    from django.db import transaction

    attributes = {PIPELINE: checkpoint.pipeline_name, STEP: checkpoint.step}
    transaction.on_commit(lambda: made.checkpoints_created.add(1, attributes), robust=True)


def checkpoint_decided(checkpoint: Checkpoint, decision: str, now: datetime | None = None) -> None:
    """``checkpoint_decided``: count the decision by outcome, and the time it took since the checkpoint;
    recorded once the transaction around it commits (``checkpoint_decided`` is sent after the decision's
    own transaction, but a caller's, a request's ``ATOMIC_REQUESTS`` one, may still roll it back)."""
    made = instruments()
    if made is None:
        return
    from django.db import transaction
    from django.utils import timezone

    attributes = {PIPELINE: checkpoint.pipeline_name, STEP: checkpoint.step, OUTCOME: str(decision)}
    decided_at = checkpoint.decided_at or now or timezone.now()
    waited = max((decided_at - checkpoint.created_at).total_seconds(), 0.0)

    def record() -> None:
        made.checkpoints_decided.add(1, attributes)
        made.time_to_decision.record(waited, attributes)

    transaction.on_commit(record, robust=True)


def notification_failed(notification: Notification, *, final: bool) -> None:
    """An attempt at sending ``notification`` failed; ``final``: it will not be tried again."""
    made = instruments()
    if made is not None:
        attributes: dict[str, str | bool] = {
            "stepkit.notification.event": notification.event,
            "stepkit.notification.channel": notification.channel,
            "stepkit.notification.final": final,
        }
        made.notifications_failed.add(1, attributes)


# -- the gauges -----------------------------------------------------------------------------------

#: The providers the gauges were made on (weakly: a test's provider goes away with the test).
_gauged: weakref.WeakSet[Any] = weakref.WeakSet()
#: True once they were made on OpenTelemetry's global proxy: it hands them on to the provider set later.
_on_global = False
_gauges_lock = threading.Lock()


def register_gauges() -> None:
    """Make ``stepkit.checkpoints.pending`` and ``.overdue`` on the meter provider in use (the one handed to
    :func:`stepkit_django.telemetry.use`, else OpenTelemetry's global one), once per provider.

    Called by the app's ``ready()`` and by ``use()``: the gauges are then reported from a process's first
    collection, whether or not anything happened in it. Before the host sets its global provider, they are
    made on the API's proxy provider, which makes them on the real one when it is set (in a gunicorn
    ``post_fork`` hook, in the project's ``AppConfig.ready()``…). Nothing without the API.
    """
    global _on_global
    if not api.AVAILABLE:
        return
    provider = api.configured_meter_provider()
    if provider is None:  # the API's no-op provider: nothing would ever be recorded
        return
    if api.is_global_proxy(provider):
        with _gauges_lock:
            if _on_global:
                return
            _on_global = True
        _create_gauges(provider)
        return
    _gauges_on(provider)


def _gauges_on(provider: MeterProvider) -> None:
    """Make the gauges on ``provider`` unless they are there already (directly, or through the proxy)."""
    with _gauges_lock:
        if provider in _gauged or (_on_global and api.is_global(provider)):
            return
        _gauged.add(provider)
    _create_gauges(provider)


def _create_gauges(provider: MeterProvider) -> None:
    from .. import __version__

    meter = provider.get_meter(api.NAME, __version__)
    meter.create_observable_gauge(
        "stepkit.checkpoints.pending",
        [_observe_pending],
        "{checkpoint}",
        "Checkpoints waiting for review, per pipeline and step",
    )
    meter.create_observable_gauge(
        "stepkit.checkpoints.overdue",
        [_observe_overdue],
        "{checkpoint}",
        "Checkpoints waiting for review past their deadline, per pipeline and step",
    )


#: Per collecting thread: what the first gauge callback of a collection counted for the other one.
_counted = threading.local()
#: Seconds within which the second callback takes the first one's counts (they run one after the other).
_SAME_COLLECTION = 1.0


def _observe_pending(options: CallbackOptions) -> Iterable[Observation]:
    return _observed("pending")


def _observe_overdue(options: CallbackOptions) -> Iterable[Observation]:
    return _observed("overdue")


def _observed(gauge: str) -> list[Observation]:
    """``gauge``'s observations: counted by the other gauge's callback just before in this thread (a
    collection calls both, one after the other), else counted now with the other's, which it leaves here."""
    kept: tuple[float, dict[str, list[Observation]]] = getattr(_counted, "left", None) or (0.0, {})
    when, left = kept
    if gauge in left and time.monotonic() - when < _SAME_COLLECTION:
        return left.pop(gauge)
    counts = _count()
    _counted.left = (time.monotonic(), {name: found for name, found in counts.items() if name != gauge})
    return counts[gauge]


def _count() -> dict[str, list[Observation]]:
    """The pending and the overdue checkpoints per pipeline and step, one ``GROUP BY`` each, on one connection;
    nothing if the setting is off or the database cannot answer (a collection must not fail because of it)."""
    from django.db import connection, transaction
    from django.db.models import Count
    from django.utils import timezone
    from opentelemetry.metrics import Observation

    from ..conf import settings
    from ..models import Checkpoint
    from ..status import CheckpointStatus

    nothing: dict[str, list[Observation]] = {"pending": [], "overdue": []}
    if not settings.TELEMETRY:
        return nothing
    pending = Checkpoint.objects.filter(status=CheckpointStatus.PENDING).order_by()

    def by_step(rows: Any) -> list[Observation]:
        counts = rows.values_list("pipeline_name", "step").annotate(n=Count("pk"))
        return [Observation(n, {PIPELINE: pipeline, STEP: step}) for pipeline, step, n in counts]

    # A thread of the exporter's (no request around it) opens a connection here: close it when done.
    opened = connection.connection is None and not connection.in_atomic_block
    try:
        # Inside the caller's transaction, a savepoint: a failed query (PostgreSQL aborts the whole
        # transaction) is rolled back to it, and the caller's transaction goes on.
        with transaction.atomic() if connection.in_atomic_block else _NO_SAVEPOINT:
            return {
                "pending": by_step(pending),
                "overdue": by_step(pending.filter(expires_at__lt=timezone.now())),
            }
    except Exception:
        logger.exception("Could not count the pending checkpoints for the metrics")
        return nothing
    finally:
        if opened:
            connection.close()
