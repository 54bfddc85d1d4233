"""The engine's errors. ``stepkit_django.exceptions`` re-exports them with the app's own."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ContextKeyCollision",
    "InvalidCheckpoint",
    "PipelineAborted",
    "StepTimeout",
    "StepkitError",
]


class StepkitError(Exception):
    """Base class of every error raised by stepkit_django."""


class CheckpointError(StepkitError, ValueError):
    """A checkpoint cannot be made or used (for example a context value is not JSON)."""


class InvalidCheckpoint(CheckpointError):
    """A checkpoint token was refused: nothing ran.

    The message says which check failed: empty, not decodable, bad signature,
    another pipeline, unknown step or unsupported format version.
    """


class PipelineAborted(StepkitError):
    """The run's ``signal`` was set; the pipeline stopped before the next step."""


class StepTimeout(StepkitError, TimeoutError):
    """One attempt of a step took longer than its ``timeout``."""


class ContextKeyCollision(StepkitError, ValueError):
    """A step returned a key that already exists and its merge policy is ``"error"``."""
