"""Validation of reviewer-edited data (``override_data``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext

from .conf import settings
from .engine.context import to_json_ready
from .exceptions import CheckpointError, InvalidOverride
from .inputs import error_key
from .jsonchecks import UnsafeJSON, check_json_value

__all__ = ["diff", "validate_override"]


def validate_override(
    override: object,
    *,
    context: Mapping[str, Any],
    editable: list[str] | None,
    schema: dict[str, Any] | None,
    existing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return ``override`` as JSON-ready data, or raise :class:`InvalidOverride` with per-key messages.

    Checks, in order: it is a dict; only ``editable`` keys (when given); every value
    can be stored (no NUL characters or lone surrogates, at most
    :data:`~stepkit_django.jsonchecks.MAX_DEPTH` levels deep, JSON types); the size
    limit; the JSON Schema against the context with the edits merged in.

    ``existing`` is the override data the checkpoint already holds (None: none). The
    size limit bounds what the checkpoint would hold with these edits merged in
    (``{**existing, **override}``), not one edit: many small edits add up.
    """
    if not isinstance(override, Mapping):
        message = gettext("Override data must be an object, got %(type)s.") % {"type": type(override).__name__}
        raise InvalidOverride({"__all__": [message]})
    errors: dict[str, list[str]] = {}
    if editable is not None:
        allowed = ", ".join(editable) or gettext("(none)")
        refused = gettext("This key is not editable. Editable keys: %(keys)s.") % {"keys": allowed}
        for key in override:
            if key not in editable:
                errors.setdefault(str(key), []).append(refused)
    if errors:
        raise InvalidOverride(errors)
    try:
        check_json_value(override)  # before to_json_ready, which recurses: any depth is safe here
    except UnsafeJSON as exc:
        key = str(exc.path[0]) if exc.path else "__all__"
        raise InvalidOverride({key: [exc.message]}) from None
    try:
        data = to_json_ready(dict(override))
    except CheckpointError as exc:
        raise InvalidOverride({"__all__": [str(exc).replace("context", "override_data", 1)]}) from exc
    limit = settings.MAX_OVERRIDE_BYTES
    size = len(json.dumps({**(existing or {}), **data}, ensure_ascii=False).encode())
    if size > limit:
        message = gettext(
            "With these edits the checkpoint's override data would be %(size)d bytes; the limit is %(limit)d bytes. "
            "Shorten the edited values."
        )
        raise InvalidOverride({"__all__": [message % {"size": size, "limit": limit}]})
    if schema is not None:
        from jsonschema.validators import validator_for

        merged = {**to_json_ready(dict(context)), **data}
        validator = validator_for(schema)(schema)
        for error in sorted(validator.iter_errors(merged), key=lambda e: list(e.path)):
            key = error_key(error) or "__all__"
            errors.setdefault(key, []).append(error.message)
        if errors:
            raise InvalidOverride(errors)
    return data  # type: ignore[no-any-return]


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{key: {"before": old, "after": new}}`` for each key whose value changed."""
    missing = object()
    changes: dict[str, dict[str, Any]] = {}
    for key, value in after.items():
        old = before.get(key, missing)
        if old is missing or old != value:
            changes[key] = {"before": None if old is missing else old, "after": value}
    return changes
