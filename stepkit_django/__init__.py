"""stepkit_django: human-in-the-loop pipelines for Django.

The engine (``stepkit``, ``when``, ``otherwise``) and the declarations
(``Review``, ``register``) import no models, so ``pipelines.py`` modules can
use them at import time. ``start``, ``resume_run`` and ``pause`` load the
models on first use.
"""

from typing import TYPE_CHECKING, Any

from . import conf as _conf  # noqa: F401  (passes the STEPKIT setting to the engine)
from .engine import Pipeline, StepCompleteEvent, decode_checkpoint, otherwise, stepkit, when
from .exceptions import (
    ActionLinkInvalid,
    CheckpointError,
    ContextKeyCollision,
    IllegalTransition,
    InvalidAssignment,
    InvalidCheckpoint,
    InvalidDecision,
    InvalidInput,
    InvalidOverride,
    PipelineAborted,
    PipelineAlreadyRegistered,
    PipelineChanged,
    PipelineNotFound,
    ReviewConflict,
    ReviewError,
    ReviewExpired,
    ReviewMisconfigured,
    ReviewPermissionDenied,
    RunNotEnded,
    StepkitError,
    StepTimeout,
)
from .registry import get_pipeline, register, registered, unregister
from .review_spec import Review

if TYPE_CHECKING:
    from .current import CurrentStep, current_step
    from .execution.runner import pause, resume_run
    from .runs import start

__version__ = "0.1.0"

__all__ = [
    "ActionLinkInvalid",
    "CheckpointError",
    "ContextKeyCollision",
    "CurrentStep",
    "IllegalTransition",
    "InvalidAssignment",
    "InvalidCheckpoint",
    "InvalidDecision",
    "InvalidInput",
    "InvalidOverride",
    "Pipeline",
    "PipelineAborted",
    "PipelineAlreadyRegistered",
    "PipelineChanged",
    "PipelineNotFound",
    "Review",
    "ReviewConflict",
    "ReviewError",
    "ReviewExpired",
    "ReviewMisconfigured",
    "ReviewPermissionDenied",
    "RunNotEnded",
    "StepCompleteEvent",
    "StepTimeout",
    "StepkitError",
    "__version__",
    "current_step",
    "decode_checkpoint",
    "get_pipeline",
    "otherwise",
    "pause",
    "register",
    "registered",
    "resume_run",
    "start",
    "stepkit",
    "unregister",
    "when",
]

#: Names that load the models, imported on first use: name -> module.
_LAZY = {
    "start": "runs",
    "resume_run": "execution.runner",
    "pause": "execution.runner",
    "current_step": "current",
    "CurrentStep": "current",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'stepkit_django' has no attribute {name!r}")
