"""Signals sent by stepkit_django (declarations only; its own receivers, of ``checkpoint_created``,
``checkpoint_decided`` and ``run_finished``, are in :mod:`stepkit_django.signal_handlers`).

Every signal is sent with keyword arguments only; connect with
``@receiver(signal)`` and accept ``**kwargs``.
"""

from django.dispatch import Signal

__all__ = ["checkpoint_created", "checkpoint_decided", "run_finished", "run_started", "step_completed"]

#: A run was created and is about to execute its first step.
#: sender: ``PipelineRun``; kwargs: ``run`` (PipelineRun), ``user`` (User or None).
#: Sent inside the transaction that created the run.
run_started = Signal()

#: A step completed and its progress was saved.
#: sender: ``PipelineRun``; kwargs: ``run`` (PipelineRun, with ``context``, ``position`` and
#: ``current_step`` already updated), ``event`` (the engine's StepCompleteEvent),
#: ``stop_pipeline`` (callable: pause the run after this step).
#: Sent inside the transaction that saved the step's progress, after a step declared with
#: ``review=Review(...)`` paused the run.
step_completed = Signal()

#: A checkpoint was created and the run paused for review.
#: sender: ``Checkpoint``; kwargs: ``checkpoint`` (Checkpoint, assignments set), ``run`` (PipelineRun).
#: Sent inside the transaction that created the checkpoint (use ``transaction.on_commit``
#: for notifications that must only go out once it is saved).
checkpoint_created = Signal()

#: A checkpoint was decided: approved (quorum reached), rejected, expired or cancelled.
#: sender: ``Checkpoint``; kwargs: ``checkpoint`` (Checkpoint), ``run`` (PipelineRun),
#: ``decision`` (the new CheckpointStatus value), ``user`` (User, or None for the system).
#: Sent after the transaction that recorded the decision committed, before the run resumes.
checkpoint_decided = Signal()

#: A run reached an end state: completed, failed, rejected or cancelled.
#: sender: ``PipelineRun``; kwargs: ``run`` (PipelineRun), ``status`` (the RunStatus value).
#: Sent after the transaction that recorded the end state committed.
run_finished = Signal()
