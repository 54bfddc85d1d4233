"""Context helpers: isolation copies, JSON conversion and merge policies."""

from __future__ import annotations

import copy
import datetime
import decimal
import functools
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .errors import CheckpointError, ContextKeyCollision
from .options import current as options

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

    ``datetime``, ``date``, ``time``, ``timedelta``, ``Decimal``, ``UUID`` and lazy
    translation strings become strings exactly as Django's ``DjangoJSONEncoder``
    writes them, so a context reads back the same from a checkpoint and from a
    ``JSONField``. The Django runner applies it to every step's output, so the
    next step sees what a resumed run would read back. ``parts``: the key path of
    ``value`` itself, for the message.
    """
    try:
        return _ready(value)
    except _Refused as refused:
        path = [*(parts or ()), *reversed(refused.parts)]
        raise CheckpointError(f"{_path(path)}{refused.rest}") from None


class _Refused(Exception):
    """A value that cannot be stored, on its way up to :func:`to_json_ready`; each level adds its key.

    The happy path builds no key path: it is only needed for the message.
    """

    def __init__(self, rest: str) -> None:
        self.rest = rest  # the message after the key path
        self.parts: list[str | int] = []  # innermost first


def _ready(value: Any) -> Any:
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is dict:
        return _ready_mapping(value)
    if t is list:
        return _ready_items(value)
    if t is float:
        if not math.isfinite(value):
            raise _Refused(f" is {value!r}: NaN and Infinity are not valid JSON")
        return value
    exact = _exact_conversions().get(t)
    if exact is not None:
        try:
            return exact(value)
        except ValueError as exc:  # e.g. a time with a time zone, which JSON cannot represent
            raise _Refused(f" is {value!r}: {exc}") from None
    if isinstance(value, Mapping):
        return _ready_mapping(value)
    if isinstance(value, (list, tuple)):
        return _ready_items(value)
    if isinstance(value, (int, float)):  # int/float subclasses such as IntEnum
        return _ready(int(value) if isinstance(value, int) else float(value))
    if isinstance(value, str):
        return str(value)
    try:
        converted = _convert_special(value)
    except ValueError as exc:  # e.g. a time with a time zone, which JSON cannot represent
        raise _Refused(f" is {value!r}: {exc}") from None
    if converted is not None:
        return converted
    raise _Refused(
        f" is a {type(value).__name__}, which cannot be stored in a checkpoint: "
        "context values must be JSON types, datetime, date, time, timedelta, Decimal or UUID"
    )


def _ready_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    out = {}
    for k, v in value.items():
        t = type(v)
        if type(k) is str and (t is str or t is int or t is bool or v is None):  # most items: no call
            out[k] = v
            continue
        if not isinstance(k, str):
            raise _Refused(f" has a key {k!r} of type {type(k).__name__}: JSON object keys must be strings")
        try:
            out[k] = _ready(v)
        except _Refused as refused:
            refused.parts.append(k)
            raise
    return out


def _ready_items(value: list[Any] | tuple[Any, ...]) -> list[Any]:
    items = []
    for i, v in enumerate(value):
        t = type(v)
        if t is str or t is int or t is bool or v is None:
            items.append(v)
            continue
        try:
            items.append(_ready(v))
        except _Refused as refused:
            refused.parts.append(i)
            raise
    return items


@functools.cache
def _django_json() -> tuple[Callable[[Any], Any], type]:
    """``DjangoJSONEncoder().default`` (stateless: one instance serves every call) and ``Promise``.

    Imported on first use, so that the engine imports no Django module until a value needs it.
    """
    from django.core.serializers.json import DjangoJSONEncoder
    from django.utils.functional import Promise

    return DjangoJSONEncoder().default, Promise


@functools.cache
def _exact_conversions() -> dict[type, Callable[[Any], str]]:
    """The conversion of each convertible type itself (not subclasses): one lookup instead of isinstance tests."""
    default = _django_json()[0]

    def encoded(value: Any) -> str:
        return str(default(value))

    return {
        decimal.Decimal: str,
        uuid.UUID: str,
        datetime.datetime: encoded,
        datetime.date: encoded,
        datetime.time: encoded,
        datetime.timedelta: encoded,
    }


def _convert_special(value: Any) -> str | None:
    # Same strings as django.core.serializers.json.DjangoJSONEncoder.
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    default, promise = _django_json()
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, promise)):
        return str(default(value))
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
            (warn or logging.getLogger(options().logger_name).warning)(message)
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
