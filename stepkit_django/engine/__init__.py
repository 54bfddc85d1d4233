"""The pure pipeline engine: builder, execution, checkpoints and logging (no ORM)."""

from .builder import Case, Pipeline, StepDef, StepOptions, otherwise, stepkit, when
from .checkpoint import decode_checkpoint
from .events import StepCompleteEvent

__all__ = [
    "Case",
    "Pipeline",
    "StepCompleteEvent",
    "StepDef",
    "StepOptions",
    "decode_checkpoint",
    "otherwise",
    "stepkit",
    "when",
]
