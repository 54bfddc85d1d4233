"""Re-running a run from one of its checkpoints, like LangGraph's time travel or DBOS's fork.

Every checkpoint keeps its signed token and the context of its step, so a new run
can take up the pipeline right after that step: :func:`rerun_from` creates it,
leaving the original run as it is. Also here, :func:`resume_state`: the run fields
that resume after a checkpoint, from its token, with the pipeline's migrations
(what an approval writes too).

**What the new run does first.** An approval attests to the data it saw. The new
run resumes right after the checkpoint's step only when that checkpoint was
approved and the new run's data is the data approved (no edits, or the same ones).
Otherwise (the checkpoint was rejected, expired, cancelled or is still pending, or
the rerun edits the data) the new run pauses at that step again, with a new
pending checkpoint: the same review settings and assignees, a new deadline, the
edits shown as the rerunner's. A rerun therefore never skips a review that has not
approved its data, whoever asks for it. Later review steps pause as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from . import audit, choices, permissions, revisions
from .engine import decode_checkpoint
from .engine.executor import resume_point
from .exceptions import InvalidCheckpoint, PipelineChanged
from .execution.executors import dispatch, hold
from .execution.progress import insert_run
from .models import Checkpoint, PipelineRun
from .overrides import diff, validate_override
from .pausing import reopen_checkpoint
from .registry import get_registration
from .signals import run_started
from .status import AuditAction, CheckpointStatus, RunStatus
from .telemetry import metrics

__all__ = ["rerun_from", "resume_state"]

User = AbstractBaseUser | AnonymousUser | None


def resume_state(cp: Checkpoint, override: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Run fields for resuming after ``cp`` with ``override`` merged in, from its stored, signed token
    (never a client's), and the pipeline's version; :class:`PipelineChanged` when it cannot resume."""
    payload = decode_checkpoint(cp.token, max_age=None)
    registration = get_registration(payload["pipeline"])
    pipeline = registration.pipeline
    if payload["version"] != pipeline.version:
        migration = registration.migrations.get(payload["version"])
        if migration is None:
            raise PipelineChanged(
                gettext(
                    "Pipeline %(pipeline)r changed from version %(old)s to %(new)s since this checkpoint was made; "
                    "register a migration for version %(old)s (register(pipeline, migrations={...})) to resume it"
                )
                % {"pipeline": pipeline.name, "old": payload["version"], "new": pipeline.version}
            )
        result = migration(dict(payload["context"]), payload["step"])
        context, step = result if isinstance(result, tuple) else (result, payload["step"])
        payload = {**payload, "context": context, "step": step, "position": []}
    try:
        point = resume_point(pipeline, payload, override)
    except InvalidCheckpoint as exc:
        raise PipelineChanged(
            gettext("Pipeline %(pipeline)r changed since this checkpoint was made: %(error)s")
            % {"pipeline": pipeline.name, "error": exc}
        ) from exc
    fields = {
        "context": point.contexts[-1],
        "outer_contexts": list(point.contexts[:-1]),
        "position": list(point.position),
        "current_step": payload["step"],
        "pipeline_version": pipeline.version,
    }
    return fields, pipeline.version


def _edits(cp: Checkpoint, override_data: object) -> dict[str, Any]:
    """The edits of ``override_data`` that change a value of the checkpoint's context, validated as a
    reviewer's edit of it is (its editable keys, its schema, the size limit)."""
    if override_data is None:
        return {}
    choices.refuse_edit(cp, override_data)  # what the reviewers decided is not the rerunner's to write
    revisions.refuse_edit(cp, override_data)
    data = validate_override(
        override_data, context=cp.context, editable=cp.editable_keys, schema=cp.review.get("schema")
    )
    return {key: data[key] for key in diff(cp.context, data)}


def _approved_as_is(cp: Checkpoint, edits: Mapping[str, Any]) -> bool:
    """Whether ``cp`` was approved with exactly the data the rerun would resume with.

    Never for a review with choices (the rerun would resume without the reviewer's choice,
    and the branch would follow whatever the context holds at the choice key). For an
    automatic approval (``on_timeout="approve"``, no approver) the data approved is the
    paused step's own context: edits it did not apply are not approved.
    """
    if cp.status != CheckpointStatus.APPROVED or cp.review.get("choices"):
        return False
    approved = cp.effective_context if cp.decided_by_id is not None else cp.context
    return {**cp.context, **edits} == approved


def _with_approval(cp: Checkpoint, edits: Mapping[str, Any]) -> dict[str, Any]:
    """``edits`` with the approval the rerun resumes on under the decision key: the steps after it read that
    decision, as the original run's did (not an earlier request for changes left in the step's context)."""
    by = cp.decided_by if cp.decided_by_id is not None else None
    at = cp.decided_at or timezone.now()
    return revisions.with_decision(cp, edits, CheckpointStatus.APPROVED, by, cp.comment if by else "", at)


def rerun_from(
    checkpoint: Checkpoint | UUID | str, by: User, override_data: Mapping[str, Any] | None = None
) -> PipelineRun:
    """Start a new run that takes up the pipeline right after ``checkpoint``'s step, and return it.

    The new run has the checkpoint's context with ``override_data`` merged in
    (validated as a reviewer's edit of that checkpoint: :class:`InvalidOverride`),
    the original run's input, ``by`` as its starter and the checkpoint as its
    ``forked_from``. It resumes right after the step if the checkpoint was approved
    with the same data; otherwise it pauses at that step for review again (see the
    module's docstring). Allowed to the original run's starter and to run managers
    (:class:`ReviewPermissionDenied` otherwise), from a checkpoint in any status;
    the original run and its checkpoint do not change. A checkpoint of an older
    pipeline version needs a registered migration, as resuming it does
    (:class:`PipelineChanged`). Audited on both runs: ``run_forked`` on the original,
    ``run_started`` with ``forked_from`` on the new one.
    """
    pk = checkpoint.pk if isinstance(checkpoint, Checkpoint) else checkpoint
    cp = Checkpoint.objects.select_related("run").get(pk=pk)
    actor = permissions.check_rerun(cp.run, by)
    edits = _edits(cp, override_data)
    resume_now = _approved_as_is(cp, edits)
    resumed_with = _with_approval(cp, edits) if resume_now else edits
    fields, version = resume_state(cp, resumed_with)  # PipelineChanged before anything is written
    now = timezone.now()
    run = PipelineRun(
        pipeline_name=cp.run.pipeline_name,
        status=RunStatus.QUEUED if resume_now else RunStatus.PAUSED,
        input=cp.run.input,
        started_by=actor,
        forked_from=cp,
        created_at=now,
        started_at=now,
        **fields,
    )
    held = hold(run) if resume_now else False
    started = {"version": version, "forked_from": str(cp.pk), "step": cp.step, "run": str(cp.run_id)}
    listeners = run_started.has_listeners(PipelineRun)
    with transaction.atomic():
        insert_run(run, audit.event(run, AuditAction.RUN_STARTED, actor=actor, data=started))
        forked = {"run": str(run.pk), "checkpoint": str(cp.pk), "step": cp.step, "edited": sorted(edits)}
        audit.record(cp.run, AuditAction.RUN_FORKED, checkpoint=cp, actor=actor, data=forked)
        if not resume_now:
            _review_again(run, cp, edits, actor)
        if listeners:
            run_started.send(sender=PipelineRun, run=run, user=actor)
        metrics.run_started(run)
    if resume_now and not dispatch(run, held=held):
        run.refresh_from_db()
    return run


def _review_again(run: PipelineRun, cp: Checkpoint, edits: Mapping[str, Any], actor: Any) -> Checkpoint:
    """Pause the new ``run`` at ``cp``'s step with a new pending checkpoint, the rerun's edits saved on it."""
    pending = reopen_checkpoint(run, cp, {"rerun_of": str(cp.pk)})
    if edits:
        pending.override_data = dict(edits)
        pending.save(update_fields=["override_data", "updated_at"])
        changes = {"changes": diff(cp.context, edits)}
        audit.record(run, AuditAction.EDITED, checkpoint=pending, actor=actor, data=changes)
    return pending
