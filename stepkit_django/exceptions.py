"""Named exceptions raised by stepkit_django.

Every exception the project raises on purpose derives from :class:`StepkitError`,
so ``except StepkitError`` catches all of them.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext

__all__ = [
    "ActionLinkInvalid",
    "CheckpointError",
    "ContextKeyCollision",
    "DecisionKeyCollision",
    "IllegalTransition",
    "InvalidAssignment",
    "InvalidCheckpoint",
    "InvalidDecision",
    "InvalidInput",
    "InvalidOverride",
    "NotificationFailed",
    "NotifierMisconfigured",
    "PipelineAborted",
    "PipelineAlreadyRegistered",
    "PipelineChanged",
    "PipelineNotFound",
    "ReviewConflict",
    "ReviewError",
    "ReviewExpired",
    "ReviewMisconfigured",
    "ReviewPermissionDenied",
    "RunNotEnded",
    "StepTimeout",
    "StepkitError",
]


# The engine's errors are defined by the engine (it depends on nothing of the app); re-exported here.
from .engine.errors import (
    CheckpointError,
    ContextKeyCollision,
    InvalidCheckpoint,
    PipelineAborted,
    StepkitError,
    StepTimeout,
)


class PipelineNotFound(StepkitError, LookupError):
    """No pipeline is registered under that name; the message lists the registered names."""


class PipelineAlreadyRegistered(StepkitError):
    """Another pipeline is registered under that name already.

    Runs and checkpoints refer to their pipeline by name, so silently replacing it
    would make them resume with other steps. Use another name, ``unregister()`` the
    old one first, or pass ``register(..., replace=True)`` to replace it on purpose.
    """


class PipelineChanged(StepkitError):
    """The pipeline changed (version bumped, or the paused step removed) since the checkpoint was made.

    Declare a migration for the old version with ``register(pipeline, migrations={old_version: fn})``.
    """


class ReviewError(StepkitError):
    """Base class of the errors the review services raise; nothing was changed."""


class ReviewConflict(ReviewError):
    """The checkpoint changed under the caller: already decided, claimed by someone else, or a stale version."""


class ReviewExpired(ReviewConflict):
    """The checkpoint's deadline passed: no one may decide it any more; its ``on_timeout`` rule applies."""


class IllegalTransition(StepkitError):
    """A status change that the state machine does not allow (a bug, or a row changed by hand)."""


class ReviewPermissionDenied(ReviewError, PermissionError):
    """The user may not perform this review action on this checkpoint or run."""


class InvalidOverride(ReviewError, ValueError):
    """Edited data was refused. ``errors`` maps each offending key (or ``"__all__"``) to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        details = "; ".join(f"{key}: {' '.join(messages)}" for key, messages in errors.items())
        super().__init__(gettext("Invalid override data: %(details)s") % {"details": details})


class InvalidAssignment(ReviewError, ValueError):
    """A reassignment was refused. ``errors`` maps ``"to_users"`` / ``"to_groups"`` to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        details = "; ".join(f"{key}: {' '.join(messages)}" for key, messages in errors.items())
        super().__init__(gettext("Invalid assignment: %(details)s") % {"details": details})


class InvalidDecision(ReviewError, ValueError):
    """A decision was refused as given (e.g. a rejection without the reason its review requires).

    ``errors`` maps each offending field (``"comment"``) to messages.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        details = "; ".join(f"{key}: {' '.join(messages)}" for key, messages in errors.items())
        super().__init__(gettext("Invalid decision: %(details)s") % {"details": details})


class InvalidInput(StepkitError, ValueError):
    """A run's input does not match its pipeline's ``input_schema``; nothing was written.

    ``errors`` maps each offending input key (or ``"__all__"``) to messages.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        details = "; ".join(f"{key}: {' '.join(messages)}" for key, messages in errors.items())
        super().__init__(gettext("Invalid input: %(details)s") % {"details": details})


class ReviewMisconfigured(StepkitError, ImproperlyConfigured):
    """A ``Review`` names a group, user or permission that does not exist."""

    def __init__(self, message: str, *args: Any) -> None:
        super().__init__(message, *args)


class DecisionKeyCollision(InvalidInput):
    """A run's input or a step's output holds the key under which a review's decision is given to the steps
    (``Review(decision_key=...)``, ``"review"`` by default); rename the key, or choose another decision key.

    ``errors`` maps the key to messages.
    """


class NotifierMisconfigured(StepkitError, ImproperlyConfigured):
    """A notifier named by ``STEPKIT["NOTIFIERS"]`` or ``Review(notify=...)`` cannot be loaded or is invalid."""


class NotificationFailed(StepkitError):
    """A notifier could not deliver a notification (it is retried until ``STEPKIT["NOTIFY_MAX_ATTEMPTS"]``)."""


class ActionLinkInvalid(StepkitError):
    """A signed action link (:func:`stepkit_django.review.action_url`) was refused; nothing was changed.

    ``reason`` says why, one of :data:`REASONS`: ``"tampered"`` (not a link this site signed, or changed on
    the way), ``"expired"`` (older than its ``max_age``), ``"foreign_user"`` (made for another user than the
    one logged in), ``"used"`` (its user already decided with it), ``"stale"`` (the item changed or was decided
    since the link was made), ``"not_allowed"`` (its user may no longer review the item, or is inactive).
    The first three are found before the item is looked up, so they tell nothing of it.
    """

    REASONS = ("tampered", "expired", "foreign_user", "used", "stale", "not_allowed")

    def __init__(self, reason: str, message: str = "") -> None:
        if reason not in self.REASONS:
            raise ValueError(f"Unknown reason {reason!r}; one of {', '.join(self.REASONS)}")
        self.reason = reason
        super().__init__(message or gettext("This action link cannot be used (%(reason)s).") % {"reason": reason})


class RunNotEnded(StepkitError, ValueError):
    """Only a run that ended (completed, failed, rejected or cancelled) can be erased
    (:func:`stepkit_django.retention.erase`); nothing was changed."""
