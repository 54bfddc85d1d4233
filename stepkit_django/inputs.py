"""A pipeline's ``input_schema``: the JSON Schema a run's input must match, checked with ``jsonschema``.

:func:`check_input_schema` is what ``register()`` asks; :func:`validate_input` is what
``start()`` asks, before anything is written. Messages name the field and say what to
enter, for the person who filled in the admin's start form as much as for an API client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext, gettext_lazy, ngettext

from .exceptions import InvalidInput

__all__ = ["check_input_schema", "error_key", "input_errors", "validate_input"]


def check_input_schema(schema: object, pipeline_name: str) -> dict[str, Any]:
    """``schema`` if it is a valid JSON Schema for a run's input (an object); else TypeError or ValueError."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, Mapping):
        raise TypeError(
            f"input_schema of pipeline {pipeline_name!r} must be a JSON Schema (a dict), got {type(schema).__name__}"
        )
    schema = dict(schema)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        raise ValueError(
            f"input_schema of pipeline {pipeline_name!r} is not a valid JSON Schema"
            f"{f' (at {where})' if where else ''}: {exc.message}"
        ) from None
    declared = schema.get("type", "object")
    if declared != "object" and not (isinstance(declared, list) and "object" in declared):
        raise ValueError(
            f"input_schema of pipeline {pipeline_name!r} must describe an object (a run's input is a dict of "
            f'named values): use "type": "object" with "properties", got "type": {declared!r}'
        )
    return schema


def validate_input(schema: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    """Raise :class:`~stepkit_django.exceptions.InvalidInput` if ``data`` does not match ``schema``."""
    errors = input_errors(schema, data)
    if errors:
        raise InvalidInput(errors)


def input_errors(schema: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{key: [messages]}`` for each input key (``"__all__"`` for the input as a whole) that ``schema`` refuses.

    Formats (``"format": "email"``, ``"date"``…) are checked when ``jsonschema`` can check them.
    """
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(dict(data)), key=lambda e: [str(p) for p in e.path]):
        errors.setdefault(error_key(error) or "__all__", []).append(_message(error))
    return errors


def error_key(error: Any) -> str | None:
    """The top-level key a ``jsonschema`` error is about: its path's first part, or the missing required key."""
    if error.path:
        return str(error.path[0])
    return _missing(error)  # "'body' is a required property": reported on the missing key


def _missing(error: Any) -> str | None:
    """The missing key of a ``required`` error (``jsonschema`` makes one per missing key, each naming its own)."""
    if error.validator != "required" or not isinstance(error.instance, dict):
        return None
    missing = [k for k in error.validator_value if k not in error.instance]
    found = [k for k in missing if str(error.message).startswith(repr(k))] or missing
    return str(found[0]) if found else None


# Lazy, not gettext_noop: gettext_noop reads the settings, and this module is imported (through register())
# by pipelines.py modules before Django is set up.
TYPES = {
    "integer": gettext_lazy("Enter a whole number."),
    "number": gettext_lazy("Enter a number."),
    "string": gettext_lazy("Enter text."),
    "boolean": gettext_lazy("Enter true or false."),
    "object": gettext_lazy("Enter an object of named values."),
    "array": gettext_lazy("Enter a list."),
    "null": gettext_lazy("Leave this empty."),
}


def _message(error: Any) -> str:
    """What to enter instead, in words, for the usual checks; ``jsonschema``'s own message for the others."""
    message = _plain_message(error.validator, error.validator_value, error)
    # Deeper than a top-level key: say where, e.g. "address/city: This field is required."
    nested = [str(part) for part in list(error.path)[1:]]
    if error.path and (missing := _missing(error)) is not None:
        nested.append(missing)
    return f"{'/'.join(nested)}: {message}" if nested else message


def _plain_message(validator: str, value: Any, error: Any) -> str:
    if validator == "required":
        return gettext("This field is required.")
    if validator == "type" and isinstance(value, str) and value in TYPES:
        return str(TYPES[value])
    if validator == "enum" and isinstance(value, list):
        return gettext("Choose one of: %(choices)s.") % {"choices": ", ".join(str(v) for v in value)}
    if validator == "minimum":
        return gettext("Enter a value of at least %(limit)s.") % {"limit": value}
    if validator == "maximum":
        return gettext("Enter a value of at most %(limit)s.") % {"limit": value}
    if validator == "exclusiveMinimum":
        return gettext("Enter a value greater than %(limit)s.") % {"limit": value}
    if validator == "exclusiveMaximum":
        return gettext("Enter a value less than %(limit)s.") % {"limit": value}
    if validator == "minLength" and isinstance(value, int):
        return ngettext("Enter at least %(limit)d character.", "Enter at least %(limit)d characters.", value) % {
            "limit": value
        }
    if validator == "maxLength" and isinstance(value, int):
        return ngettext("Enter at most %(limit)d character.", "Enter at most %(limit)d characters.", value) % {
            "limit": value
        }
    if validator == "pattern":
        return gettext("This value is not in the expected form.")
    if validator == "format":
        return gettext("Enter a valid %(format)s.") % {"format": value}
    return str(error.message)
