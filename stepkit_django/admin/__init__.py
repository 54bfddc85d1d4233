"""The admin: the review queue (checkpoints), runs, the audit trail, notifications and the queue overview."""

from .checkpoints import CheckpointAdmin
from .notifications import NotificationAdmin
from .runs import AuditEventAdmin, PipelineRunAdmin, QueueOverviewAdmin

__all__ = ["AuditEventAdmin", "CheckpointAdmin", "NotificationAdmin", "PipelineRunAdmin", "QueueOverviewAdmin"]
