"""The registry of pipelines that runs and checkpoints refer to by name.

``register(pipeline)`` adds one; apps are also searched for a ``pipelines.py``
module at startup (as the admin discovers ``admin.py``), so declaring a
registered pipeline there is enough.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .engine import Pipeline
from .exceptions import PipelineAlreadyRegistered, PipelineNotFound
from .inputs import check_input_schema

__all__ = [
    "Migration",
    "Registration",
    "get_pipeline",
    "get_registration",
    "register",
    "registered",
    "unregister",
]

# fn(context, step) -> new context, or (new context, new step display path)
Migration = Callable[[dict[str, Any], str], "dict[str, Any] | tuple[dict[str, Any], str]"]


DURABILITY = ("step", "pause")


@dataclass(frozen=True)
class Registration:
    """A registered pipeline with the options it was registered with."""

    pipeline: Pipeline
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    #: "step": progress saved after every step; "pause": only at pauses, failures and the end.
    durability: str = "step"
    #: The JSON Schema a run's input must match (``start()`` checks it), or None.
    input_schema: dict[str, Any] | None = None
    #: How long after they end its runs keep their data (``stepkit_purge`` without ``--older-than``); None: kept.
    retention: timedelta | None = None


_lock = threading.Lock()
_registry: dict[str, Registration] = {}


def register(
    pipeline: Pipeline,
    *,
    migrations: Mapping[int, Migration] | None = None,
    durability: str = "step",
    input_schema: Mapping[str, Any] | None = None,
    retention: timedelta | None = None,
    replace: bool = False,
) -> Pipeline:
    """Register ``pipeline`` under its name and return it.

    ``migrations`` maps an older version to a function that adapts a checkpoint
    of that version: ``fn(context, step) -> context`` or ``-> (context, step)``.
    ``durability="pause"`` saves progress only when the run pauses, fails or ends
    (a crash then repeats the steps since the last save); the default ``"step"``
    saves after every step. ``input_schema`` is a JSON Schema (an object's) that a
    run's input must match: ``start()`` raises :class:`InvalidInput` with a message per
    field otherwise, and writes nothing; the admin builds its "Start a run" form from it.
    An invalid schema is refused here (``ValueError``). ``retention`` is how long the data of its runs is
    kept after they end: ``manage.py stepkit_purge`` (and the ``purge`` periodic task) without
    ``--older-than`` redacts the runs that ended longer ago (see :mod:`stepkit_django.retention`).

    Registering the same pipeline again with the same options does nothing. Another
    pipeline (or other options) under a name already taken raises
    :class:`PipelineAlreadyRegistered`, unless ``replace=True``: runs and checkpoints
    refer to their pipeline by name, and would resume with the new one's steps.
    """
    if durability not in DURABILITY:
        raise ValueError(f"durability must be one of {', '.join(DURABILITY)}; got {durability!r}")
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"register() takes a Pipeline, got {pipeline!r}")
    if not pipeline.name:
        raise ValueError("Only named pipelines can be registered: use stepkit('name', ...)")
    for version, fn in (migrations or {}).items():
        if not isinstance(version, int) or version >= pipeline.version:
            raise ValueError(f"Migrations must be keyed by older versions (< {pipeline.version}), got {version!r}")
        if not callable(fn):
            raise TypeError(f"Migration for version {version} must be callable")
    if retention is not None and (not isinstance(retention, timedelta) or retention <= timedelta(0)):
        raise ValueError(f"retention must be a positive timedelta or None; got {retention!r}")
    schema = None if input_schema is None else check_input_schema(input_schema, pipeline.name)
    registration = Registration(pipeline, dict(migrations or {}), durability, schema, retention)
    with _lock:
        existing = _registry.get(pipeline.name)
        if existing is not None and not replace:
            if _same(existing, registration):
                return pipeline
            raise PipelineAlreadyRegistered(_taken(existing, registration))
        _registry[pipeline.name] = registration
    return pipeline


def _same(a: Registration, b: Registration) -> bool:
    """The same pipeline object with the same options (registering it again is a no-op)."""
    return (
        a.pipeline is b.pipeline
        and a.durability == b.durability
        and dict(a.migrations) == dict(b.migrations)
        and a.input_schema == b.input_schema
        and a.retention == b.retention
    )


def _taken(existing: Registration, new: Registration) -> str:
    name = new.pipeline.name
    if existing.pipeline is new.pipeline:
        return (
            f"Pipeline {name!r} is registered already, with other options ({_options(existing)}); "
            "pass replace=True to change them"
        )
    return (
        f"Another pipeline is registered as {name!r} already: {existing.pipeline!r}. Runs and checkpoints "
        "refer to their pipeline by name, so theirs would resume with the new one's steps. Use another name, "
        f"unregister({name!r}) first, or pass replace=True to replace it."
    )


def _options(registration: Registration) -> str:
    versions = ", ".join(str(v) for v in sorted(registration.migrations)) or "none"
    schema = "an input_schema" if registration.input_schema is not None else "no input_schema"
    return (
        f"durability={registration.durability!r}, migrations for versions: {versions}, {schema}, "
        f"retention={registration.retention!r}"
    )


def unregister(name: str) -> None:
    """Remove a registered pipeline (mainly for tests)."""
    with _lock:
        _registry.pop(name, None)


def registered() -> dict[str, Pipeline]:
    """The registered pipelines by name."""
    return {name: reg.pipeline for name, reg in sorted(_registry.items())}


def get_registration(name: str) -> Registration:
    """The registration of the pipeline called ``name`` (with its options); raises :class:`PipelineNotFound`."""
    try:
        return _registry[name]
    except KeyError:
        names = ", ".join(sorted(_registry)) or "(none)"
        raise PipelineNotFound(
            f"No pipeline named {name!r} is registered. Registered pipelines: {names}. "
            "Register it with stepkit_django.register(), e.g. in your app's pipelines.py."
        ) from None


def get_pipeline(name: str) -> Pipeline:
    """The registered pipeline called ``name``; raises :class:`PipelineNotFound` listing the registered names."""
    return get_registration(name).pipeline
