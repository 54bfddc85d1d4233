"""The admin: the review queue (checkpoints), runs, the audit trail and the queue overview."""

from .checkpoints import CheckpointAdmin
from .runs import AuditEventAdmin, PipelineRunAdmin, QueueOverviewAdmin

__all__ = ["AuditEventAdmin", "CheckpointAdmin", "PipelineRunAdmin", "QueueOverviewAdmin"]
