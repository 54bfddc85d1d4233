"""Checks of parsed JSON that the database or the server cannot take, shared by the API, the admin and the services.

PostgreSQL refuses NUL characters and lone surrogates in ``text`` and ``jsonb``; very deep
nesting exhausts the stack of whatever walks the value next. One check, one depth limit,
wherever JSON comes in: the API's parser turns :class:`UnsafeJSON` into a 400, the admin's
JSON editor into a form error, :func:`~stepkit_django.overrides.validate_override` into
:class:`~stepkit_django.exceptions.InvalidOverride`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext

__all__ = ["MAX_DEPTH", "UnsafeJSON", "check_json_value", "too_deep"]

#: Deeper JSON is refused: no context needs it, and very deep input exhausts the stack.
#: The outermost value (a request body, the admin editor's text, the edits) is level 1.
MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")

Path = tuple[str | int, ...]


class UnsafeJSON(ValueError):
    """A JSON value that cannot be stored; the message says what is wrong, ``path`` where (keys and indexes)."""

    def __init__(self, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def too_deep(path: Path = ()) -> UnsafeJSON:
    """The error for JSON nested deeper than :data:`MAX_DEPTH` (also when parsing it ran out of stack)."""
    message = gettext("JSON is nested more than %(depth)d levels deep; flatten the data.") % {"depth": MAX_DEPTH}
    return UnsafeJSON(message, path)


def _where(path: Path) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
    return text or gettext("the top level")


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return gettext("NUL characters (\\u0000) are not allowed")
    if not text.isascii() and _SURROGATE.search(text):
        return gettext(
            "a lone surrogate (\\ud800 to \\udfff) is not a character; send the whole surrogate pair or remove it"
        )
    return None


def check_json_value(data: Any) -> None:
    """Raise :class:`UnsafeJSON` for a NUL character or a lone surrogate in a string or key, or too deep nesting.

    Walks the value without recursion, so any depth is safe to check. Mappings, lists and
    tuples are walked; other values (numbers, dates, ...) are left to the caller.
    """
    stack: list[tuple[Any, Path]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            raise too_deep(path[:1])  # the whole path would be 64 steps long: name the outermost key
        if isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                raise UnsafeJSON(
                    gettext("Strings must be valid text: %(problem)s (in %(where)s).")
                    % {"problem": problem, "where": _where(path)},
                    path,
                )
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str):
                    problem = _text_problem(key)
                    if problem:
                        raise UnsafeJSON(
                            gettext("Keys must be valid text: %(problem)s (a key in %(where)s).")
                            % {"problem": problem, "where": _where(path)},
                            path,
                        )
                stack.append((item, (*path, key)))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
