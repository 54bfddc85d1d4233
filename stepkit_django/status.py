"""Statuses, audit actions and the legal transitions between statuses, in one place."""

from django.db import models
from django.utils.translation import gettext_lazy as _

__all__ = ["RUN_TRANSITIONS", "AuditAction", "CheckpointStatus", "RunStatus"]


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    PAUSED = "paused", _("Paused for review")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")

    @classmethod
    def finished(cls) -> frozenset[str]:
        return frozenset({cls.COMPLETED, cls.FAILED, cls.REJECTED, cls.CANCELLED})


class CheckpointStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    EXPIRED = "expired", _("Expired")
    CANCELLED = "cancelled", _("Cancelled")


class AuditAction(models.TextChoices):
    RUN_STARTED = "run_started", _("Run started")
    STEP_COMPLETED = "step_completed", _("Step completed")
    PAUSED = "paused", _("Paused for review")
    CLAIMED = "claimed", _("Claimed")
    RELEASED = "released", _("Released")
    REASSIGNED = "reassigned", _("Reassigned")
    EDITED = "edited", _("Edited")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    EXPIRED = "expired", _("Expired")
    ESCALATED = "escalated", _("Escalated")
    RESUMED = "resumed", _("Resumed")
    RUN_COMPLETED = "run_completed", _("Run completed")
    RUN_FAILED = "run_failed", _("Run failed")
    RUN_CANCELLED = "run_cancelled", _("Run cancelled")
    RUN_RETRIED = "run_retried", _("Run retried")
    RUN_RECOVERED = "run_recovered", _("Run recovered after its worker stopped")
    APPROVALS_VOIDED = "approvals_voided", _("Approvals voided by a change of the data")


# status -> statuses it may move to. Every change of a run's status is one conditional
# UPDATE from one of the allowed sources, checked by stepkit_django.transitions.
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.QUEUED,
            RunStatus.PAUSED,
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.REJECTED,
            RunStatus.CANCELLED,
        }
    ),
    RunStatus.PAUSED: frozenset(
        {RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.REJECTED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    # A retry queues the run again, or, when a review deadline failed it, re-opens the review.
    RunStatus.FAILED: frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.REJECTED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


def sources_of(target: str) -> list[str]:
    """The statuses a run may move to ``target`` from."""
    return [source for source, targets in RUN_TRANSITIONS.items() if target in targets]
