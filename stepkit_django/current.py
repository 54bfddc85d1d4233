"""``current_step()``: what a step function can learn about its own execution."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from .engine.current import current_step_info

__all__ = ["CURRENT_RUN", "CurrentStep", "current_step"]

#: Id of the PipelineRun whose steps run in this context (set by the runner).
CURRENT_RUN: ContextVar[str | None] = ContextVar("stepkit_current_run", default=None)


@dataclass(frozen=True)
class CurrentStep:
    run_id: str | None
    #: Display path of the step.
    step: str
    #: Index of the item in a parallel step, or None.
    item: int | None
    #: 1 for the first attempt, 2 for the first retry within this execution, ...
    attempt: int

    @property
    def idempotency_key(self) -> str | None:
        """Stable for this run and step across retries, recoveries and re-executions; None outside runs.

        Pass it to external services (payment providers, email APIs) so that a step
        executed twice after a crash has its effect once.
        """
        if self.run_id is None:
            return None
        suffix = f"#{self.item}" if self.item is not None else ""
        return f"stepkit:{self.run_id}:{self.step}{suffix}"


def current_step() -> CurrentStep | None:
    """The step running in this context (inside a step function), or None."""
    info = current_step_info()
    if info is None:
        return None
    return CurrentStep(run_id=CURRENT_RUN.get(), step=info.step, item=info.item, attempt=info.attempt)
