"""Descriptions of registered pipelines, shared by the API and the admin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from .engine import Pipeline, StepDef
from .engine.executor import iter_positions
from .exceptions import PipelineNotFound
from .registry import get_pipeline, get_registration
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


class StepInfo(NamedTuple):
    """One step of a pipeline as :func:`steps_of` lists it."""

    #: The display path checkpoints name it by, e.g. ``route/suspicious/hold``.
    path: str
    #: 0 for a top-level step, 1 inside a branch case or a sub-pipeline of one, and so on.
    depth: int
    step: StepDef
    review: Review | None


def steps_of(pipeline: Pipeline) -> list[StepInfo]:
    """Every step in the order it runs (nested ones too), with its ``Review`` if it pauses for one."""
    found = []
    for path, position in iter_positions(pipeline):
        step = _step_at(pipeline, position)
        spec = step.options.extra.get("review")
        found.append(StepInfo(path, len(position) // 2, step, spec if isinstance(spec, Review) else None))
    return found


def describe_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    """Name, version, top-level steps, every step (nested too) with its review settings, and the input schema."""
    all_steps = []
    for path, _depth, step, spec in steps_of(pipeline):
        review = spec.snapshot() if spec is not None else None
        if spec is not None and review is not None:
            review["conditional"] = spec.when is not None
        all_steps.append({"name": path, "kind": step.kind, "review": review})
    return {
        "name": pipeline.name,
        "version": pipeline.version,
        "steps": pipeline.describe(),
        "all_steps": all_steps,
        "input_schema": input_schema_of(pipeline),
    }


def input_schema_of(pipeline: Pipeline) -> dict[str, Any] | None:
    """The ``input_schema`` ``pipeline`` was registered with (None: none, or not registered)."""
    try:
        registration = get_registration(pipeline.name or "")
    except PipelineNotFound:
        return None
    return registration.input_schema if registration.pipeline is pipeline else None


def remaining_steps(pipeline_name: str, position: Sequence[int]) -> list[str]:
    """Top-level steps that run after the checkpoint's step (its container's later steps)."""
    try:
        pipeline = get_pipeline(pipeline_name)
    except PipelineNotFound:
        return []
    if not position:
        return pipeline.describe()
    return pipeline.describe()[position[0] + 1 :]
