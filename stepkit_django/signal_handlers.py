"""stepkit_django's own signal receivers (connected in ``apps.StepkitConfig.ready``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.dispatch import receiver

from .engine import StepCompleteEvent
from .models import PipelineRun
from .review_spec import Review
from .signals import step_completed


@receiver(step_completed, dispatch_uid="stepkit_django.pause_for_review")
def pause_for_review(
    sender: type[PipelineRun],
    run: PipelineRun,
    event: StepCompleteEvent,
    stop_pipeline: Callable[..., None],
    **kwargs: Any,
) -> None:
    """Pause the run after a step declared with ``review=Review(...)`` when its ``when`` holds."""
    spec = event.step.options.extra.get("review")
    if not isinstance(spec, Review):
        return
    if spec.when is not None and not spec.when(event.context):
        return
    stop_pipeline(review=spec)
