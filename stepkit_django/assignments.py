"""Who a checkpoint is assigned to: resolving a ``Review``'s assignees and a reassignment's targets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils.translation import gettext

from .exceptions import InvalidAssignment, ReviewMisconfigured

__all__ = ["resolve_groups", "resolve_targets", "resolve_users"]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def resolve_groups(spec: Any, context: dict[str, Any], step: str) -> list[Group]:
    names: list[str] = []
    groups: list[Group] = []
    for item in _as_list(spec):
        for value in _as_list(item(context) if callable(item) else item):
            if isinstance(value, Group):
                groups.append(value)
            elif isinstance(value, get_user_model()):
                continue
            else:
                names.append(str(value))
    if names:
        found = {g.name: g for g in Group.objects.filter(name__in=names)}
        missing = sorted(set(names) - set(found))
        if missing:
            raise ReviewMisconfigured(
                f"Review of step {step!r} is assigned to group(s) {', '.join(map(repr, missing))}, "
                "which do not exist: create them or fix the Review"
            )
        groups.extend(found.values())
    return groups


def resolve_users(spec: Any, context: dict[str, Any], step: str) -> list[Any]:
    user_model = get_user_model()
    names: list[str] = []
    users: list[Any] = []
    for item in _as_list(spec):
        for value in _as_list(item(context) if callable(item) else item):
            if isinstance(value, user_model):
                users.append(value)
            elif not isinstance(value, Group):
                names.append(str(value))
    if names:
        found = {
            u.get_username(): u
            for u in user_model._default_manager.filter(**{f"{user_model.USERNAME_FIELD}__in": names})
        }
        missing = sorted(set(names) - set(found))
        if missing:
            raise ReviewMisconfigured(
                f"Review of step {step!r} is assigned to user(s) {', '.join(map(repr, missing))}, which do not exist"
            )
        users.extend(found.values())
    return users


def resolve_targets(to_users: Iterable[Any], to_groups: Iterable[Any]) -> tuple[list[Any], list[Group]]:
    """The users (objects or usernames) and groups (objects or names) of a reassignment.

    Raises :class:`InvalidAssignment` naming the users that do not exist or are
    inactive and the groups that do not exist, or when both lists are empty.
    """
    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    user_names = [u.get_username() if isinstance(u, user_model) else str(u) for u in to_users]
    group_names = [g.name if isinstance(g, Group) else str(g) for g in to_groups]
    errors: dict[str, list[str]] = {}
    if not user_names and not group_names:
        errors["__all__"] = [gettext("Choose at least one user or group.")]
    users = {u.get_username(): u for u in user_model._default_manager.filter(**{f"{field}__in": user_names})}
    for name in user_names:
        if name not in users:
            errors.setdefault("to_users", []).append(gettext("There is no user %(name)r.") % {"name": name})
        elif not users[name].is_active:
            errors.setdefault("to_users", []).append(
                gettext("%(name)s is inactive and cannot review.") % {"name": name}
            )
    groups = {g.name: g for g in Group.objects.filter(name__in=group_names)}
    for name in group_names:
        if name not in groups:
            errors.setdefault("to_groups", []).append(gettext("There is no group %(name)r.") % {"name": name})
    if errors:
        raise InvalidAssignment(errors)
    return [users[n] for n in dict.fromkeys(user_names)], [groups[n] for n in dict.fromkeys(group_names)]
