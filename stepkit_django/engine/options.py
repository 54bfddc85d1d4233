"""The engine's settings, passed in: it reads no project settings itself.

``stepkit_django.conf`` connects the ``STEPKIT`` setting (``CHECKPOINT_SALT``,
``CHECKPOINT_MAX_AGE``, ``LOGGER_NAME``) with :func:`use`; without it, the engine
uses the defaults of :class:`EngineOptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EngineOptions", "current", "use"]


@dataclass(frozen=True)
class EngineOptions:
    """What the engine needs to know from its host."""

    #: Salt of the HMAC that signs checkpoint tokens.
    checkpoint_salt: str = "stepkit_django.checkpoint"
    #: Seconds a checkpoint token stays valid; None: no limit.
    checkpoint_max_age: float | None = None
    #: The logger of ``log=True`` when no ``log_fn`` is given, and of key-collision warnings.
    logger_name: str = "stepkit_django"


_source: Callable[[], EngineOptions] = EngineOptions


def use(source: Callable[[], EngineOptions]) -> None:
    """Read the options from ``source`` (called each time they are needed, so settings may change)."""
    global _source
    _source = source


def current() -> EngineOptions:
    """The options in force now."""
    return _source()
