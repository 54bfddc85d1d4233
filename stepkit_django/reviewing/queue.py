"""The queue's filters as conditions, once for the admin's filters and the inbox's: assigned to me,
to my groups, claimed by me, unclaimed, overdue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Q
from django.utils import timezone

from ..status import CheckpointStatus

__all__ = ["CONDITIONS", "assigned_to_me", "assigned_to_my_groups", "claimed_by", "overdue", "unclaimed"]


def assigned_to_me(user: Any) -> Q:
    """Assigned to ``user``, directly or through one of their groups."""
    return Q(assigned_users=user) | Q(assigned_groups__user=user)


def assigned_to_user(user: Any) -> Q:
    """Assigned to ``user`` by name."""
    return Q(assigned_users=user)


def assigned_to_my_groups(user: Any) -> Q:
    """Assigned to one of ``user``'s groups."""
    return Q(assigned_groups__user=user)


def claimed_by(user: Any) -> Q:
    """Claimed by ``user``."""
    return Q(claimed_by=user)


def unclaimed(user: Any = None) -> Q:
    """Pending and claimed by nobody."""
    return Q(claimed_by__isnull=True, status=CheckpointStatus.PENDING)


def overdue(user: Any = None) -> Q:
    """Pending past its deadline."""
    return Q(status=CheckpointStatus.PENDING, expires_at__lt=timezone.now())


#: The inbox's filters by their parameter value (``?show=mine``): a condition on the user.
CONDITIONS: dict[str, Callable[[Any], Q]] = {
    "mine": assigned_to_user,
    "groups": assigned_to_my_groups,
    "claimed": claimed_by,
    "unclaimed": unclaimed,
    "overdue": overdue,
}
