"""Descriptions of registered pipelines, shared by the API and the admin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .engine import Pipeline
from .engine.executor import iter_positions
from .exceptions import PipelineNotFound
from .registry import get_pipeline
from .review_spec import Review


def _step_at(pipeline: Pipeline, position: tuple[int, ...]) -> Any:
    steps = pipeline.steps
    step = steps[position[0]]
    rest = position[1:]
    while rest:
        child = rest[0]
        sub = step.cases[child].pipeline if step.kind == "branch" else step.items[child]
        assert isinstance(sub, Pipeline)
        step = sub.steps[rest[1]]
        rest = rest[2:]
    return step


def describe_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    """Name, version, top-level steps and every step (nested too) with its review settings."""
    all_steps = []
    for path, position in iter_positions(pipeline):
        step = _step_at(pipeline, position)
        spec = step.options.extra.get("review")
        review = spec.snapshot() if isinstance(spec, Review) else None
        if isinstance(spec, Review) and review is not None:
            review["conditional"] = spec.when is not None
        all_steps.append({"name": path, "kind": step.kind, "review": review})
    return {"name": pipeline.name, "version": pipeline.version, "steps": pipeline.describe(), "all_steps": all_steps}


def remaining_steps(pipeline_name: str, position: Sequence[int]) -> list[str]:
    """Top-level steps that run after the checkpoint's step (its container's later steps)."""
    try:
        pipeline = get_pipeline(pipeline_name)
    except PipelineNotFound:
        return []
    if not position:
        return pipeline.describe()
    return pipeline.describe()[position[0] + 1 :]
