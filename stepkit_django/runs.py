"""Starting runs: :func:`start` creates a run of a registered pipeline and hands it to the executor."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from . import audit
from .engine import Pipeline
from .engine.context import to_json_ready
from .exceptions import CheckpointError, StepkitError
from .execution.executors import dispatch, hold
from .execution.progress import insert_run
from .inputs import validate_input
from .jsonchecks import UnsafeJSON, check_json_value
from .models import PipelineRun
from .registry import get_pipeline, get_registration
from .revisions import check_input
from .signals import run_started
from .status import AuditAction, RunStatus
from .telemetry import metrics

__all__ = ["start", "start_or_replay"]

User = AbstractBaseUser | AnonymousUser | None


def _user_or_none(user: User) -> Any:
    """The user to store on a row: None for anonymous (typed Any: AUTH_USER_MODEL may be custom)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def _resolve(pipeline_or_name: Pipeline | str) -> Pipeline:
    if isinstance(pipeline_or_name, str):
        return get_pipeline(pipeline_or_name)
    if not isinstance(pipeline_or_name, Pipeline):
        raise TypeError(f"start() takes a Pipeline or a registered name, got {pipeline_or_name!r}")
    if not pipeline_or_name.name or get_pipeline(pipeline_or_name.name) is not pipeline_or_name:
        raise StepkitError(
            f"Pipeline {pipeline_or_name.name!r} is not the registered one: register it with "
            "stepkit_django.register() so its runs can be resumed later"
        )
    return pipeline_or_name


def _json(value: Any) -> Any:
    # Raises CheckpointError naming the key path of anything that cannot be stored.
    return to_json_ready(value)


def start(
    pipeline_or_name: Pipeline | str,
    input: Mapping[str, Any] | None = None,
    *,
    user: User = None,
    idempotency_key: str | None = None,
) -> PipelineRun:
    """Create a run of a registered pipeline and hand it to the executor.

    With the ``"inline"`` executor (the default) the run executes now, in this
    process, until it pauses or ends; with ``"tasks"`` or ``"celery"`` it is queued
    and a worker advances it once the current transaction commits. Input that does not
    match the pipeline's ``input_schema`` raises :class:`InvalidInput` (``errors`` per
    field) and writes nothing. A second call
    with the same ``idempotency_key`` returns the first run and starts nothing
    (:class:`StepkitError` if that run is of another pipeline).
    """
    run, created = start_or_replay(pipeline_or_name, input, user=user, idempotency_key=idempotency_key)
    if not created:
        _same_pipeline(run, _resolve(pipeline_or_name))
    return run


def start_or_replay(
    pipeline_or_name: Pipeline | str,
    input: Mapping[str, Any] | None = None,
    *,
    user: User = None,
    idempotency_key: str | None = None,
) -> tuple[PipelineRun, bool]:
    """:func:`start`, returning ``(run, created)``: ``created`` is False when ``idempotency_key`` was
    used already (by anyone, for any pipeline), and ``run`` is then that earlier run, unchecked.

    Concurrent calls with one key create one run; the others get it back.
    """
    pipeline = _resolve(pipeline_or_name)
    if input is not None and not isinstance(input, Mapping):
        raise TypeError(f"Pipeline input must be a dict, got {type(input).__name__}")
    try:
        check_json_value(input or {})  # NUL characters, lone surrogates and deep nesting cannot be stored
    except UnsafeJSON as exc:
        message = gettext("Pipeline input cannot be stored: %(problem)s") % {"problem": exc.message}
        raise CheckpointError(message) from None
    data = _json(dict(input or {}))
    schema = get_registration(pipeline.name or "").input_schema
    if schema is not None:
        validate_input(schema, data)  # InvalidInput, per field; before anything is written
    check_input(pipeline, data)  # a review's decision key is reserved (DecisionKeyCollision)
    if idempotency_key is not None:
        existing = PipelineRun.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    run = PipelineRun(
        pipeline_name=pipeline.name or "",
        pipeline_version=pipeline.version,
        status=RunStatus.QUEUED,
        input=data,
        context=data,
        started_by=_user_or_none(user),
        idempotency_key=idempotency_key,
        created_at=timezone.now(),
    )
    held = hold(run)  # inline: the run is written running, held by this process
    started = audit.event(run, AuditAction.RUN_STARTED, actor=user, data={"version": pipeline.version})
    listeners = run_started.has_listeners(PipelineRun)
    try:
        # One statement on PostgreSQL; a transaction (a savepoint inside the caller's) for the receivers,
        # and so that a duplicate idempotency key leaves the caller's transaction usable.
        with transaction.atomic() if listeners or connection.in_atomic_block else nullcontext():
            insert_run(run, started)
            if listeners:
                run_started.send(sender=PipelineRun, run=run, user=_user_or_none(user))
            metrics.run_started(run)  # not a receiver of run_started: that would cost a transaction
    except IntegrityError as exc:
        if idempotency_key is None:
            raise
        try:
            return PipelineRun.objects.get(idempotency_key=idempotency_key), False
        except PipelineRun.DoesNotExist:  # the other insert was rolled back meanwhile
            raise exc from None
    if not dispatch(run, held=held):
        run.refresh_from_db()
    return run, True


def _same_pipeline(run: PipelineRun, pipeline: Pipeline) -> PipelineRun:
    if run.pipeline_name != pipeline.name:
        raise StepkitError(
            f"Idempotency key already used by a run of pipeline {run.pipeline_name!r}, not {pipeline.name!r}"
        )
    return run
