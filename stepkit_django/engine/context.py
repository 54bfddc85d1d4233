"""Context helpers: isolation copies, JSON conversion and merge policies."""

from __future__ import annotations

import copy
import datetime
import decimal
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import CheckpointError, ContextKeyCollision

__all__ = ["clone", "merge_output", "to_json_ready"]

Context = dict[str, Any]

# Types that are immutable, so a copy can share them.
_IMMUTABLE: frozenset[type] = frozenset(
    {
        str,
        int,
        float,
        bool,
        type(None),
        bytes,
        decimal.Decimal,
        uuid.UUID,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
    }
)


def clone(value: Any) -> Any:
    """Deep-copy a context value, fast for JSON-shaped data.

    dicts and lists are rebuilt, immutable scalars are shared, anything else goes
    through :func:`copy.deepcopy`. This is the one full copy a step's input costs.
    """
    t = type(value)
    if t is dict:
        return {k: v if type(v) in _IMMUTABLE else clone(v) for k, v in value.items()}
    if t is list:
        return [v if type(v) in _IMMUTABLE else clone(v) for v in value]
    if t in _IMMUTABLE:
        return value
    if t is tuple:
        return tuple(clone(v) for v in value)
    return copy.deepcopy(value)


def _path(parts: list[str | int]) -> str:
    return "context" + "".join(f"[{p!r}]" for p in parts)


def to_json_ready(value: Any, parts: list[str | int] | None = None) -> Any:
    """Return ``value`` as plain JSON types, or raise :class:`CheckpointError` naming the key path.

    ``datetime``, ``date``, ``time``, ``timedelta``, ``Decimal`` and ``UUID`` become
    strings exactly as Django's ``DjangoJSONEncoder`` writes them, so a context
    reads back the same from a checkpoint and from a ``JSONField``.
    """
    parts = [] if parts is None else parts
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if not math.isfinite(value):
            raise CheckpointError(f"{_path(parts)} is {value!r}: NaN and Infinity are not valid JSON")
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CheckpointError(
                    f"{_path(parts)} has a key {k!r} of type {type(k).__name__}: JSON object keys must be strings"
                )
            parts.append(k)
            out[k] = to_json_ready(v, parts)
            parts.pop()
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for i, v in enumerate(value):
            parts.append(i)
            items.append(to_json_ready(v, parts))
            parts.pop()
        return items
    if isinstance(value, (int, float)):  # int/float subclasses such as IntEnum
        return to_json_ready(int(value) if isinstance(value, int) else float(value), parts)
    if isinstance(value, str):
        return str(value)
    converted = _convert_special(value)
    if converted is not None:
        return converted
    raise CheckpointError(
        f"{_path(parts)} is a {type(value).__name__}, which cannot be stored in a checkpoint: "
        "context values must be JSON types, datetime, date, time, timedelta, Decimal or UUID"
    )


def _convert_special(value: Any) -> str | None:
    # Same strings as django.core.serializers.json.DjangoJSONEncoder.
    from django.core.serializers.json import DjangoJSONEncoder

    if isinstance(value, (datetime.datetime, datetime.date, datetime.time, datetime.timedelta)):
        return str(DjangoJSONEncoder().default(value))
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return None


_MISSING = object()


def merge_output(
    ctx: Context,
    output: Mapping[str, Any],
    policy: str,
    step_name: str,
    warn: Callable[[str], None] | None = None,
) -> Context:
    """Shallow-merge ``output`` into a new dict built from ``ctx`` following ``policy``."""
    if not output:
        return ctx
    if policy == "override":
        merged = dict(ctx)
        merged.update(output)
        return merged
    merged = dict(ctx)
    for key, value in output.items():
        if key in merged:
            if policy == "error":
                raise ContextKeyCollision(f"Context key collision: '{key}' already exists (step '{step_name}')")
            if policy == "skip":
                continue
            message = f"Key collision on '{key}' in step '{step_name}': overriding the old value"
            (warn or logging.getLogger("stepkit_django").warning)(message)
        merged[key] = value
    return merged


def changed_keys(base: Mapping[str, Any], inner: Mapping[str, Any]) -> Context:
    """The keys of ``inner`` that are new or different from ``base`` (nested pipeline merge-back)."""
    out: Context = {}
    for key, value in inner.items():
        old = base.get(key, _MISSING)
        if old is _MISSING or (old is not value and old != value):
            out[key] = value
    return out
