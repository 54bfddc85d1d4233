"""What a purge keeps of an audit event's data (:func:`redacted_data`), shared by the purge
(:mod:`stepkit_django.retention`) and the hash chain (:mod:`stepkit_django.chain`), which covers exactly
what is kept so that a purged trail still verifies.

:func:`redacted_data` is idempotent: redacting a redacted event's data changes nothing, so a purge never
changes what the chain hashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import permissions
from .status import AuditAction

__all__ = ["FAILURE_KEYS", "KEPT", "is_redacted", "redacted_data"]

#: Keys of event data that hold a failure's message (which may quote personal data).
FAILURE_KEYS = ("error", "previous_error")

#: Keys of event data whose values are kept: steps, versions, counts, group and worker names, who was
#: assigned (the reviewers' accountability, not the subject's data).
KEPT = frozenset(
    {
        "step",
        "version",
        "duration_ms",
        "via",
        "voided",
        "changed",
        "edited",
        "from",
        "review_reopened",
        "to_group",
        "checkpoints",
        "claimed_by",
        "lease_owner",
        "revision",
        "group",
        "outcome",
        "why",
        "cutoff",
        "removed",
        "events",
    }
)

#: The audit actions whose ``before``/``after`` name reviewers or steps, not the subject's data.
_KEEPS_BEFORE_AFTER = frozenset({AuditAction.REASSIGNED, AuditAction.RESUMED, AuditAction.RUN_RECOVERED})


def redacted_data(action: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a purge keeps of an event's ``data``: the values of :data:`KEPT`, the keys of its changes,
    an error's exception type; the other keys are named under ``"purged_keys"``, without their values."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in data.items():
        if key in KEPT or (key in ("before", "after") and action in _KEEPS_BEFORE_AFTER):
            kept[key] = value
        elif key == "changes" and isinstance(value, Mapping):
            kept[key] = {str(changed): {} for changed in value}
        elif key in FAILURE_KEYS and isinstance(value, str):
            kept[key] = permissions.error_type(value)
        elif key not in ("purged", "purged_keys"):
            dropped.append(str(key))
    if "purged_keys" in data:
        dropped = sorted({*dropped, *data["purged_keys"]})
    kept["purged"] = True
    if dropped:
        kept["purged_keys"] = sorted(dropped)
    return kept


def is_redacted(action: str, data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is what a purge leaves (it holds ``"purged": true`` and nothing a purge removes)."""
    return data.get("purged") is True and redacted_data(action, data) == dict(data)
