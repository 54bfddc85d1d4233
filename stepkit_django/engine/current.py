"""Which step is running: a context variable the drivers set around each step function call."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["CURRENT_STEP", "StepInfo", "current_step_info"]


@dataclass(frozen=True, slots=True)
class StepInfo:
    """The step whose function is running in this context."""

    #: Name of the top-level pipeline.
    pipeline: str | None
    #: Display path of the step, e.g. ``"route/odd/odd-step"``.
    step: str
    #: Index of the item within a parallel step, or None.
    item: int | None
    #: 1 for the first attempt, 2 for the first retry, ...
    attempt: int


CURRENT_STEP: ContextVar[StepInfo | None] = ContextVar("stepkit_current_step", default=None)


def current_step_info() -> StepInfo | None:
    """The step running in this context, or None outside step functions."""
    return CURRENT_STEP.get()
