"""Per-group quorum: ``Review(approvals_required={"legal": 1, "finance": 1})``.

A checkpoint declared so is approved once every named group has given its count of
distinct approvals. One person's approval counts once, toward the first group (in the
order declared) that they belong to and whose count is still open; a member of groups
whose counts are all met is told so and cannot add another approval. Someone in none of
the groups cannot approve at all (they may still reject or request changes, as any
reviewer may). Edits void the approvals given before them, as with a plain count: the
counts start again.

Each :class:`~stepkit_django.models.Approval` stores the name of the group it counted
toward (``Approval.group``), so the progress is a count by name, whatever happens to the
groups' members later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext

from .exceptions import ReviewConflict, ReviewPermissionDenied

__all__ = [
    "GroupProgress",
    "declared",
    "describe",
    "group_for",
    "is_met",
    "outsiders",
    "progress",
    "progress_of",
    "refusal",
]


@dataclass(frozen=True)
class GroupProgress:
    """Where one group's count stands."""

    group: str
    given: int
    required: int

    @property
    def met(self) -> bool:
        return self.given >= self.required


def declared(review: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The groups and counts of a checkpoint's review settings, in the order declared; ``[]`` for a
    plain count (``approvals_required=2``)."""
    return [(str(item["group"]), int(item["required"])) for item in review.get("approvals_by_group") or ()]


def progress(review: Mapping[str, Any], given: Iterable[str]) -> list[GroupProgress]:
    """Each declared group's count, from the group names the approvals given counted toward."""
    counted: dict[str, int] = {}
    for name in given:
        counted[name] = counted.get(name, 0) + 1
    return [GroupProgress(name, counted.get(name, 0), required) for name, required in declared(review)]


def progress_of(checkpoint: Any) -> list[GroupProgress]:
    """:func:`progress` of ``checkpoint``'s approvals (prefetched ``approvals`` are used when present)."""
    if not checkpoint.review.get("approvals_by_group"):
        return []
    cache = getattr(checkpoint, "_prefetched_objects_cache", {})
    if "approvals" in cache:
        names: Iterable[str] = [approval.group for approval in cache["approvals"]]
    else:
        names = checkpoint.approvals.values_list("group", flat=True)
    return progress(checkpoint.review, names)


def is_met(groups: Iterable[GroupProgress]) -> bool:
    return all(group.met for group in groups)


def describe(groups: Iterable[GroupProgress]) -> str:
    """The progress as the queue shows it: ``"legal 1/1 · finance 0/1"``."""
    return " · ".join(f"{group.group} {group.given}/{group.required}" for group in groups)


def _names(names: Iterable[str]) -> str:
    return ", ".join(names)


def group_for(review: Mapping[str, Any], user: Any, given: Iterable[str]) -> str:
    """The group ``user``'s approval counts toward, given the groups the approvals so far counted toward.

    Raises :class:`ReviewPermissionDenied` when ``user`` is in none of the declared groups, and
    :class:`ReviewConflict` when every group of theirs has already given the approvals it needs.
    """
    groups = progress(review, given)
    member_of = set(user.groups.filter(name__in=[group.group for group in groups]).values_list("name", flat=True))
    if not member_of:
        raise ReviewPermissionDenied(
            gettext("This item needs approvals from %(groups)s, and you are in none of these groups.")
            % {"groups": _names(group.group for group in groups)}
        )
    for group in groups:
        if group.group in member_of and not group.met:
            return group.group
    raise ReviewConflict(
        gettext("%(done)s already gave the approvals it needs; the item now waits for %(waiting)s.")
        % {
            "done": _names(group.group for group in groups if group.group in member_of),
            "waiting": _names(group.group for group in groups if not group.met),
        }
    )


def outsiders(review: Mapping[str, Any], users: Iterable[Any]) -> list[str]:
    """The usernames among ``users`` who are in none of a per-group quorum's groups (``[]`` without one):
    a reassignment to them would hand the item to people who cannot approve it."""
    names = [name for name, _required in declared(review)]
    users = list(users)
    if not names or not users:
        return []
    model = get_user_model()
    inside = set(
        model._default_manager.filter(pk__in=[u.pk for u in users], groups__name__in=names).values_list("pk", flat=True)
    )
    return [str(u.get_username()) for u in users if u.pk not in inside]


def refusal(review: Mapping[str, Any], user: Any, given: Iterable[str]) -> str | None:
    """Why ``user`` cannot add an approval now, or None if they can (:func:`group_for` as a message)."""
    try:
        group_for(review, user, given)
    except (ReviewConflict, ReviewPermissionDenied) as refused:
        return str(refused)
    return None
