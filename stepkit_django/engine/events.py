"""The event passed to ``on_step_complete`` handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checkpoint import encode_checkpoint
from .context import clone

if TYPE_CHECKING:
    from .builder import Pipeline, StepDef

__all__ = ["StepCompleteEvent"]


class StepCompleteEvent:
    """What a handler learns about a completed step, and how it stops the pipeline.

    ``context`` and ``checkpoint`` are computed when read: a run whose handlers
    never read them pays for neither the copy nor the signing.
    """

    __slots__ = ("_checkpoint", "_contexts", "_pipeline", "duration", "position", "step", "step_name", "stopped")

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        step: StepDef,
        step_name: str,
        position: tuple[int, ...],
        duration: float,
        contexts: tuple[dict[str, Any], ...],
    ) -> None:
        self._pipeline = pipeline
        self.step = step
        #: Full display path of the step, e.g. ``"route/odd/odd-step"``.
        self.step_name = step_name
        #: Indices of the step in the pipeline tree (used to resume).
        self.position = position
        #: Seconds the step took, retries included.
        self.duration = duration
        self._contexts = contexts
        self._checkpoint: str | None = None
        self.stopped = False

    @property
    def context(self) -> dict[str, Any]:
        """A copy of the context after the step (the nested pipeline's own context for nested steps)."""
        return clone(self._contexts[-1])  # type: ignore[no-any-return]

    @property
    def contexts(self) -> tuple[dict[str, Any], ...]:
        """The enclosing pipelines' contexts, innermost last. Treat as read-only."""
        return self._contexts

    @property
    def checkpoint(self) -> str:
        """A signed token that :meth:`Pipeline.run_checkpoint` resumes from."""
        if self._checkpoint is None:
            self._checkpoint = encode_checkpoint(
                pipeline=self._pipeline.name,
                version=self._pipeline.version,
                step=self.step_name,
                position=self.position,
                steps=self._pipeline.describe(),
                contexts=self._contexts,
            )
        return self._checkpoint

    def stop_pipeline(self) -> None:
        """Run no further step once the handlers have returned."""
        self.stopped = True

    def __repr__(self) -> str:
        return f"<StepCompleteEvent {self.step_name} {self.duration * 1000:.2f} ms>"
