"""stepkit_django: human-in-the-loop pipelines for Django.

The engine API (``stepkit``, ``when``, ``otherwise``) has no database
dependency; the review queue lives in the Django app's models and services.
"""

from .engine import Pipeline, StepCompleteEvent, decode_checkpoint, otherwise, stepkit, when
from .exceptions import (
    CheckpointError,
    ContextKeyCollision,
    InvalidCheckpoint,
    PipelineAborted,
    StepkitError,
    StepTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ContextKeyCollision",
    "InvalidCheckpoint",
    "Pipeline",
    "PipelineAborted",
    "StepCompleteEvent",
    "StepTimeout",
    "StepkitError",
    "__version__",
    "decode_checkpoint",
    "otherwise",
    "stepkit",
    "when",
]
