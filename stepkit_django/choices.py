"""``Review(choices=...)``: the outcome a reviewer picks when approving, written into the run's context.

A review with choices is approved *with* a choice (several with ``multiple=True``): the
chosen key, or the list of chosen keys in the order of the declaration, is written into
the context the run resumes with at ``choice_key``, where a following ``branch_on`` or
``when`` routes on it. The reviewer cannot type it: an edit of ``choice_key`` is refused.

With a quorum (``approvals_required`` > 1), every approval must make the same choice as
the approvals already given: one that disagrees is refused, so the run never goes a way
that fewer than the required number of people chose. Edits that void the approvals given
before (see :mod:`stepkit_django.review`) void their choices too.

These functions read the review settings stored on the checkpoint (``Checkpoint.review``),
so a decision follows the choices the checkpoint was created with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.utils.translation import gettext

from .exceptions import InvalidDecision, InvalidOverride
from .models import AuditEvent, Checkpoint
from .status import AuditAction

__all__ = ["choice_field", "chosen", "labels_of", "options", "recorded", "refuse_edit", "requires_choice"]

#: A choice as a caller gives it: one key, or several with ``multiple=True``.
Choice = str | Sequence[str] | None


def options(review: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``(key, label)`` pairs of a checkpoint's review settings, in declaration order; ``[]`` without choices.

    Labels are stored untranslated and translated here, when shown.
    """
    return [(str(item["key"]), gettext(str(item["label"]))) for item in review.get("choices") or []]


def requires_choice(checkpoint: Checkpoint) -> bool:
    """Whether approving ``checkpoint`` needs a choice."""
    return bool(checkpoint.review.get("choices"))


def choice_field(review: Mapping[str, Any]) -> str:
    """The name the choice goes by in a request and in field errors: ``choices`` when several may be picked."""
    return "choices" if review.get("multiple") else "choice"


def labels_of(review: Mapping[str, Any], value: Any) -> str:
    """The labels of a chosen value (a key or a list of keys), quoted, for people."""
    labels = dict(options(review))
    keys = value if isinstance(value, list) else [value]
    return ", ".join(f"“{labels.get(str(key), key)}”" for key in keys)


def _offered(review: Mapping[str, Any]) -> str:
    return ", ".join(f"“{label}” ({key})" for key, label in options(review))


def _picked(review: Mapping[str, Any], choice: Choice) -> str | list[str]:
    """The value ``choice`` writes into the context; InvalidDecision when it is missing or not offered."""
    field, keys = choice_field(review), [key for key, _label in options(review)]
    if review.get("multiple"):
        given = [choice] if isinstance(choice, str) else list(choice or [])
        if not given:
            message = gettext("Choose at least one of: %(choices)s.")
            raise InvalidDecision({field: [message % {"choices": _offered(review)}]})
    else:
        if not isinstance(choice, str) or not choice:
            if choice:
                raise InvalidDecision({field: [gettext("Choose one only.")]})
            message = gettext("Choose what happens next: one of %(choices)s.")
            raise InvalidDecision({field: [message % {"choices": _offered(review)}]})
        given = [choice]
    unknown = [str(key) for key in given if key not in keys]
    if unknown:
        message = gettext("“%(choice)s” is not one of the choices: %(choices)s.")
        raise InvalidDecision({field: [message % {"choice": key, "choices": _offered(review)} for key in unknown]})
    if not review.get("multiple"):
        return given[0]
    return [key for key in keys if key in given]  # the declaration's order, each once


def _choices_given(checkpoint: Checkpoint, approvers: Iterable[Any]) -> list[Any]:
    """The choice of each standing approval: the last approval event of each approver."""
    latest: dict[Any, Any] = {}
    events = AuditEvent.objects.filter(
        checkpoint=checkpoint, action=AuditAction.APPROVED, actor_id__in=list(approvers)
    ).order_by("timestamp", "pk")
    for actor_id, data in events.values_list("actor_id", "data"):
        latest[actor_id] = (data or {}).get("choice")
    return list(latest.values())


def chosen(checkpoint: Checkpoint, choice: Choice, approvers: Iterable[Any] = ()) -> dict[str, Any]:
    """``{choice_key: value}`` for approving ``checkpoint`` with ``choice``; ``{}`` when its review has no choices.

    ``approvers`` are the ids of the users whose approvals stand (those an edit voids left out).
    Raises :class:`InvalidDecision` (field ``choice``, or ``choices`` with ``multiple=True``) when a
    choice is missing, not offered, given to a review without choices, or differs from the one the
    standing approvals made.
    """
    review = checkpoint.review
    if not requires_choice(checkpoint):
        if choice:
            message = gettext("This review offers no choices: approve it without one.")
            raise InvalidDecision({"choice": [message]})
        return {}
    value = _picked(review, choice)
    for earlier in _choices_given(checkpoint, approvers):
        if earlier != value:
            message = gettext(
                "The approvals already given chose %(chosen)s. Approve with the same choice, or reject the item."
            )
            raise InvalidDecision({choice_field(review): [message % {"chosen": labels_of(review, earlier)}]})
    return {str(review["choice_key"]): value}


def recorded(checkpoint: Checkpoint, picked: Mapping[str, Any]) -> dict[str, Any]:
    """What the approval event records of ``picked`` (from :func:`chosen`): the value and its labels, untranslated.

    The next approvals of a quorum read ``choice``; the trail shows ``choice_labels``.
    """
    if not picked:
        return {}
    value = next(iter(picked.values()))
    labels = {str(item["key"]): str(item["label"]) for item in checkpoint.review.get("choices") or []}
    keys = value if isinstance(value, list) else [value]
    return {"choice": value, "choice_labels": [labels.get(key, key) for key in keys]}


def refuse_edit(checkpoint: Checkpoint, override_data: object) -> None:
    """Raise :class:`InvalidOverride` when ``override_data`` sets the context key a choice is written to."""
    key = checkpoint.review.get("choice_key")
    if key and isinstance(override_data, Mapping) and key in override_data:
        message = gettext("This value is the reviewer's choice: choose it when you approve; it cannot be edited.")
        raise InvalidOverride({str(key): [message]})
