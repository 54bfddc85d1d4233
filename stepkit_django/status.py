"""Statuses, audit actions and the legal transitions between statuses, in one place."""

from django.db import models
from django.utils.translation import pgettext_lazy

__all__ = [
    "RUN_TRANSITIONS",
    "AuditAction",
    "CheckpointStatus",
    "NotificationEvent",
    "NotificationStatus",
    "RunStatus",
    "run_status_word",
]


# Labels have a context: "Rejected" is said of a run, of a review item and of an audit event, which a
# language may need three words for.
class RunStatus(models.TextChoices):
    QUEUED = "queued", pgettext_lazy("run status", "Queued")
    RUNNING = "running", pgettext_lazy("run status", "Running")
    PAUSED = "paused", pgettext_lazy("run status", "Paused for review")
    COMPLETED = "completed", pgettext_lazy("run status", "Completed")
    FAILED = "failed", pgettext_lazy("run status", "Failed")
    REJECTED = "rejected", pgettext_lazy("run status", "Rejected")
    CANCELLED = "cancelled", pgettext_lazy("run status", "Cancelled")

    @classmethod
    def finished(cls) -> frozenset[str]:
        return frozenset({cls.COMPLETED, cls.FAILED, cls.REJECTED, cls.CANCELLED})


class CheckpointStatus(models.TextChoices):
    PENDING = "pending", pgettext_lazy("review item status", "Pending")
    APPROVED = "approved", pgettext_lazy("review item status", "Approved")
    REJECTED = "rejected", pgettext_lazy("review item status", "Rejected")
    EXPIRED = "expired", pgettext_lazy("review item status", "Expired")
    CANCELLED = "cancelled", pgettext_lazy("review item status", "Cancelled")
    #: The reviewer sent the work back with notes: the run ran the step again, and a new revision waits.
    CHANGES_REQUESTED = "changes_requested", pgettext_lazy("review item status", "Changes requested")


class AuditAction(models.TextChoices):
    RUN_STARTED = "run_started", pgettext_lazy("audit action", "Run started")
    STEP_COMPLETED = "step_completed", pgettext_lazy("audit action", "Step completed")
    PAUSED = "paused", pgettext_lazy("audit action", "Paused for review")
    CLAIMED = "claimed", pgettext_lazy("audit action", "Claimed")
    RELEASED = "released", pgettext_lazy("audit action", "Released")
    REASSIGNED = "reassigned", pgettext_lazy("audit action", "Reassigned")
    EDITED = "edited", pgettext_lazy("audit action", "Edited")
    APPROVED = "approved", pgettext_lazy("audit action", "Approved")
    REJECTED = "rejected", pgettext_lazy("audit action", "Rejected")
    EXPIRED = "expired", pgettext_lazy("audit action", "Expired")
    ESCALATED = "escalated", pgettext_lazy("audit action", "Escalated")
    RESUMED = "resumed", pgettext_lazy("audit action", "Resumed")
    RUN_COMPLETED = "run_completed", pgettext_lazy("audit action", "Run completed")
    RUN_FAILED = "run_failed", pgettext_lazy("audit action", "Run failed")
    RUN_CANCELLED = "run_cancelled", pgettext_lazy("audit action", "Run cancelled")
    RUN_RETRIED = "run_retried", pgettext_lazy("audit action", "Run retried")
    RUN_RECOVERED = "run_recovered", pgettext_lazy("audit action", "Run recovered after its worker stopped")
    APPROVALS_VOIDED = "approvals_voided", pgettext_lazy("audit action", "Approvals voided by a change of the data")
    RUN_FORKED = "run_forked", pgettext_lazy("audit action", "Re-run from a checkpoint")
    CHANGES_REQUESTED = "changes_requested", pgettext_lazy("audit action", "Changes requested")
    #: The run's personal data was removed (a retention purge or an erasure): see stepkit_django.retention.
    PURGED = "purged", pgettext_lazy("audit action", "Data purged")


class NotificationStatus(models.TextChoices):
    #: Waiting to be sent: for the first time, for a retry after ``next_attempt_at``, or being sent now (a
    #: worker's claim then holds ``next_attempt_at`` until its lease ends).
    PENDING = "pending", pgettext_lazy("notification status", "Pending")
    SENT = "sent", pgettext_lazy("notification status", "Sent")
    #: Every attempt failed (``STEPKIT["NOTIFY_MAX_ATTEMPTS"]``); ``last_error`` says why.
    FAILED = "failed", pgettext_lazy("notification status", "Failed")


class NotificationEvent(models.TextChoices):
    """What a notification tells its recipient (also the name of its email templates)."""

    REVIEW_REQUESTED = "review_requested", pgettext_lazy("notification event", "Review requested")
    REASSIGNED = "reassigned", pgettext_lazy("notification event", "Reassigned to you")
    ESCALATED = "escalated", pgettext_lazy("notification event", "Escalated to you")
    DUE_SOON = "due_soon", pgettext_lazy("notification event", "Review due soon")
    EXPIRED = "expired", pgettext_lazy("notification event", "Review expired")
    APPROVED = "approved", pgettext_lazy("notification event", "Approved")
    REJECTED = "rejected", pgettext_lazy("notification event", "Rejected")
    CHANGES_REQUESTED = "changes_requested", pgettext_lazy("notification event", "Changes requested")
    RUN_FAILED = "run_failed", pgettext_lazy("notification event", "Run failed")
    DIGEST = "digest", pgettext_lazy("notification event", "Daily digest")


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


#: A run's status as a word inside a sentence ("run 1a2b3c4d is completed"): the labels are capitalised.
_RUN_STATUS_WORDS = {
    RunStatus.QUEUED: pgettext_lazy("run status in a sentence", "queued"),
    RunStatus.RUNNING: pgettext_lazy("run status in a sentence", "running"),
    RunStatus.PAUSED: pgettext_lazy("run status in a sentence", "paused"),
    RunStatus.COMPLETED: pgettext_lazy("run status in a sentence", "completed"),
    RunStatus.FAILED: pgettext_lazy("run status in a sentence", "failed"),
    RunStatus.REJECTED: pgettext_lazy("run status in a sentence", "rejected"),
    RunStatus.CANCELLED: pgettext_lazy("run status in a sentence", "cancelled"),
}


def run_status_word(status: str) -> str:
    """``status`` as a lower-case word for a sentence, in the current language (an unknown one as it is)."""
    word = _RUN_STATUS_WORDS.get(status)  # type: ignore[call-overload]
    return str(word) if word is not None else str(status)
