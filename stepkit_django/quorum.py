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
from django.db.models import Q
from django.utils.translation import gettext

from .exceptions import ReviewConflict, ReviewPermissionDenied

__all__ = [
    "GroupProgress",
    "applies",
    "declared",
    "declared_or_none",
    "describe",
    "group_for",
    "is_met",
    "outsiders",
    "progress",
    "progress_of",
    "refusal",
    "uncovered",
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


def applies(review: Mapping[str, Any]) -> bool:
    """Whether a checkpoint's review settings declare a per-group quorum (well formed or not)."""
    return review.get("approvals_by_group") is not None


def declared(review: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The groups and counts of a checkpoint's review settings, in the order declared; ``[]`` for a
    plain count (``approvals_required=2``).

    Raises :class:`ReviewConflict` when the stored settings are not a list of ``{"group", "required"}``
    objects (they were changed in the database by hand): such an item can be rejected, not approved.
    """
    raw = review.get("approvals_by_group")
    if raw is None:
        return []
    groups: list[tuple[str, int]] = []
    if isinstance(raw, list) and raw:
        for item in raw:
            if not isinstance(item, Mapping):
                break
            name, required = item.get("group"), item.get("required")
            if not isinstance(name, str) or not name or isinstance(required, bool) or not isinstance(required, int):
                break
            groups.append((name, max(required, 1)))
        else:
            return groups
    raise ReviewConflict(
        gettext("The approval rules stored with this item are damaged: it can be rejected, not approved.")
    )


def declared_or_none(review: Mapping[str, Any]) -> list[tuple[str, int]]:
    """:func:`declared` for display: ``[]`` instead of an error when the stored settings are damaged."""
    try:
        return declared(review)
    except ReviewConflict:
        return []


def progress(review: Mapping[str, Any], given: Iterable[str]) -> list[GroupProgress]:
    """Each declared group's count, from the group names the approvals given counted toward."""
    counted: dict[str, int] = {}
    for name in given:
        counted[name] = counted.get(name, 0) + 1
    return [GroupProgress(name, counted.get(name, 0), required) for name, required in declared_or_none(review)]


def progress_of(checkpoint: Any) -> list[GroupProgress]:
    """:func:`progress` of ``checkpoint``'s approvals (prefetched ``approvals`` are used when present);
    ``[]`` without a per-group quorum, or with damaged settings."""
    if not declared_or_none(checkpoint.review):
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
    declared(review)  # damaged settings refuse the approval
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
    names = [name for name, _required in declared_or_none(review)]
    users = list(users)
    if not names or not users:
        return []
    model = get_user_model()
    inside = set(
        model._default_manager.filter(pk__in=[u.pk for u in users], groups__name__in=names).values_list("pk", flat=True)
    )
    return [str(u.get_username()) for u in users if u.pk not in inside]


def uncovered(
    review: Mapping[str, Any],
    given: Iterable[str],
    users: Iterable[Any],
    groups: Iterable[Any],
    permission: str,
    excluded: Iterable[Any] = (),
) -> list[GroupProgress]:
    """The groups whose open count the assignees ``users`` and ``groups`` could not meet: fewer of their
    active members holding ``permission`` (and not among the ``excluded`` user ids: those who already
    approved, the reassigner) than approvals still missing. ``[]`` when every count can be met."""
    model = get_user_model()
    user_ids, group_ids = [u.pk for u in users], [g.pk for g in groups]
    excluded = set(excluded)
    short: list[GroupProgress] = []
    for group in progress(review, given):
        missing = group.required - group.given
        if missing <= 0:
            continue
        reachable = (
            model._default_manager.filter(is_active=True, groups__name=group.group)
            .filter(Q(pk__in=user_ids) | Q(groups__pk__in=group_ids))
            .exclude(pk__in=excluded)
            .distinct()
        )
        able = 0
        for member in reachable.iterator():
            if member.is_superuser or member.has_perm(permission):
                able += 1
                if able >= missing:
                    break
        if able < missing:
            short.append(group)
    return short


def refusal(review: Mapping[str, Any], user: Any, given: Iterable[str]) -> str | None:
    """Why ``user`` cannot add an approval now, or None if they can (:func:`group_for` as a message)."""
    try:
        group_for(review, user, given)
    except (ReviewConflict, ReviewPermissionDenied) as refused:
        return str(refused)
    return None
