"""``Review``: the declaration that a step pauses for a person.

``.step("generate", fn, review=Review(...))`` means: after this step completes
(and ``when`` holds), store a checkpoint and pause the run until it is decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .engine.builder import register_step_option

__all__ = ["ON_TIMEOUT_CHOICES", "Review"]

ON_TIMEOUT_CHOICES = ("reject", "approve", "escalate", "fail")

# A group name, or a callable(ctx) returning users and/or groups (objects, names or ids).
Assignee = str | Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Review:
    """How a checkpoint is reviewed. Every argument is optional."""

    #: Keys a reviewer may change; ``None`` means any key.
    editable: Sequence[str] | None = None
    #: JSON Schema the context must satisfy after the edits (checked with ``jsonschema``).
    schema: dict[str, Any] | None = None
    #: Pause only when this returns true, e.g. ``lambda ctx: ctx["amount"] > 1000``.
    when: Callable[[dict[str, Any]], Any] | None = None
    #: Group name(s) the checkpoint is assigned to, or callables(ctx) returning users/groups.
    assign_to_group: Assignee | Sequence[Assignee] | None = None
    #: User(s) the checkpoint is assigned to: usernames, or callables(ctx) returning users.
    assign_to_user: Assignee | Sequence[Assignee] | None = None
    #: Permission a reviewer needs (``"app_label.codename"``); default: ``STEPKIT["DEFAULT_REVIEW_PERMISSION"]``.
    permission: str | None = None
    #: Quorum: this many distinct users must approve.
    approvals_required: int = 1
    #: Four-eyes: unless true, the user who started the run may not review it.
    allow_self_approval: bool = False
    #: Response deadline, counted from the pause.
    timeout: timedelta | None = None
    #: What ``expire_due()`` does after the deadline: reject, approve (current data), escalate or fail.
    on_timeout: str = "reject"
    #: Group that receives the checkpoint when ``on_timeout="escalate"``.
    escalate_to_group: str | None = None
    #: Free-form label shown to reviewers.
    title: str = ""
    #: A rejection must give a reason (the comment), which the run's starter and the trail then show.
    require_reject_reason: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.editable is not None and (
            isinstance(self.editable, str) or not all(isinstance(k, str) for k in self.editable)
        ):
            raise TypeError("Review(editable=...) must be a list of key names")
        if isinstance(self.approvals_required, bool) or not isinstance(self.approvals_required, int):
            raise TypeError("Review(approvals_required=...) must be an integer")
        if self.approvals_required < 1:
            raise ValueError("Review(approvals_required=...) must be at least 1")
        if self.on_timeout not in ON_TIMEOUT_CHOICES:
            raise ValueError(f"Review(on_timeout=...) must be one of {', '.join(ON_TIMEOUT_CHOICES)}")
        if self.on_timeout == "escalate" and not self.escalate_to_group:
            raise ValueError('Review(on_timeout="escalate") needs escalate_to_group')
        if self.timeout is not None and (not isinstance(self.timeout, timedelta) or self.timeout.total_seconds() <= 0):
            raise ValueError("Review(timeout=...) must be a positive timedelta")
        if self.when is not None and not callable(self.when):
            raise TypeError("Review(when=...) must be callable")
        if self.permission is not None and (not isinstance(self.permission, str) or "." not in self.permission):
            raise ValueError('Review(permission=...) must look like "app_label.codename"')
        if not isinstance(self.require_reject_reason, bool):
            raise TypeError("Review(require_reject_reason=...) must be True or False")
        if self.schema is not None:
            from jsonschema.validators import validator_for

            validator_for(self.schema).check_schema(self.schema)

    def snapshot(self) -> dict[str, Any]:
        """The settings stored on each checkpoint, so a decision follows the rules it was created under."""
        from .conf import settings

        return {
            "editable": list(self.editable) if self.editable is not None else None,
            "schema": self.schema,
            "permission": self.permission or settings.DEFAULT_REVIEW_PERMISSION,
            "approvals_required": self.approvals_required,
            "allow_self_approval": self.allow_self_approval,
            "timeout_seconds": self.timeout.total_seconds() if self.timeout else None,
            "on_timeout": self.on_timeout,
            "escalate_to_group": self.escalate_to_group,
            "title": self.title,
            "require_reject_reason": self.require_reject_reason,
        }


def _validate(value: Any) -> Review | None:
    if value is not None and not isinstance(value, Review):
        raise TypeError(f"review= takes a Review(...), got {value!r}")
    return value


register_step_option("review", _validate)
