"""Who a checkpoint is assigned to, as one row: its *audience*, the distinct set of its users and groups.

The assignment tables (``Checkpoint.assigned_users`` and ``assigned_groups``) stay the record of who was
assigned; ``Checkpoint.audience`` is derived from them so that the queue's visibility rule reads one
column of the queue index (``audience_id IN`` the few audiences that hold the user or one of their
groups) instead of a row per assignment (see :mod:`stepkit_django.permissions`).

:func:`refresh` recomputes the audience of checkpoints from their assignment rows; the ``m2m_changed``
receiver of :mod:`stepkit_django.signal_handlers` calls it after every ``add``, ``remove``, ``set`` and
``clear`` of either table, from either side, in the transaction of the change. Audiences hold groups,
not the groups' members, so joining or leaving a group counts at once. Deleting a user or a group
deletes its rows in the assignment tables and in the audiences alike (no signal is sent, none is
needed): an audience then keeps the members that are left, as its checkpoints do. Its key is then
stale, and :func:`audience_of` retires an audience whose members no longer match its key rather than
hand it to a new set of assignees (a database may give a deleted user's id to a new user).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from .models import Audience, Checkpoint

__all__ = ["audience_of", "key_of", "refresh"]

#: Checkpoints recomputed per statement by :func:`refresh` (and by migration 0018's backfill).
BATCH = 2000


def key_of(user_ids: Iterable[Any], group_ids: Iterable[Any]) -> str:
    """The audience key of a set of assignees: a SHA-256 of the sorted user ids and group ids."""
    users = ",".join(str(pk) for pk in sorted({int(pk) for pk in user_ids}))
    groups = ",".join(str(pk) for pk in sorted({int(pk) for pk in group_ids}))
    return hashlib.sha256(f"users:{users};groups:{groups}".encode()).hexdigest()


def _members(audience: Audience) -> tuple[set[int], set[int]]:
    users = set(Audience.users.through.objects.filter(audience_id=audience.pk).values_list("user_id", flat=True))
    groups = set(Audience.groups.through.objects.filter(audience_id=audience.pk).values_list("group_id", flat=True))
    return users, groups


def _create(key: str, user_ids: set[int], group_ids: set[int]) -> Audience:
    audience = Audience.objects.create(key=key)
    Audience.users.through.objects.bulk_create(
        [Audience.users.through(audience_id=audience.pk, user_id=pk) for pk in sorted(user_ids)]
    )
    Audience.groups.through.objects.bulk_create(
        [Audience.groups.through(audience_id=audience.pk, group_id=pk) for pk in sorted(group_ids)]
    )
    return audience


def audience_of(user_ids: Iterable[Any], group_ids: Iterable[Any]) -> Audience | None:
    """The audience of exactly these users and groups (created if need be); None for nobody.

    An audience found by its key whose members differ (one was deleted since) is retired: its key is
    replaced by a unique one, so that it keeps serving its checkpoints and no new assignment finds it.
    """
    users, groups = {int(pk) for pk in user_ids}, {int(pk) for pk in group_ids}
    if not users and not groups:
        return None
    key = key_of(users, groups)
    # No lock: every transaction that assigns a checkpoint to a popular group reads the same row.
    found = Audience.objects.filter(key=key).first()
    if found is not None:
        if _members(found) == (users, groups):
            return found
        Audience.objects.filter(pk=found.pk, key=key).update(key=f"retired-{uuid.uuid4().hex}")
    try:
        with transaction.atomic():
            return _create(key, users, groups)
    except IntegrityError:  # created meanwhile by a concurrent transaction, which committed it
        return Audience.objects.get(key=key)


def refresh(checkpoint_ids: Iterable[Any]) -> dict[Any, Any]:
    """Point each of these checkpoints at the audience of its current assignees (None when it has none);
    each checkpoint's audience id.

    ``Checkpoint.assigned`` is left as it is: a checkpoint created with assignees stays restricted when
    they are all removed or deleted (the permissions' fail-closed rule).
    """
    ids = list(dict.fromkeys(checkpoint_ids))
    result: dict[Any, Any] = {}
    for start in range(0, len(ids), BATCH):
        result.update(_refresh(ids[start : start + BATCH]))
    return result


def _refresh(ids: list[Any]) -> dict[Any, Any]:
    users: dict[Any, set[int]] = defaultdict(set)
    groups: dict[Any, set[int]] = defaultdict(set)
    through_users = Checkpoint.assigned_users.through.objects.filter(checkpoint_id__in=ids)
    for cp, pk in through_users.values_list("checkpoint_id", "user_id"):
        users[cp].add(pk)
    through_groups = Checkpoint.assigned_groups.through.objects.filter(checkpoint_id__in=ids)
    for cp, pk in through_groups.values_list("checkpoint_id", "group_id"):
        groups[cp].add(pk)
    found: dict[tuple[frozenset[int], frozenset[int]], Any] = {}
    targets: dict[Any, list[Any]] = defaultdict(list)
    for cp in ids:
        members = (frozenset(users[cp]), frozenset(groups[cp]))
        if members not in found:
            audience = audience_of(*members)
            found[members] = audience.pk if audience is not None else None
        targets[found[members]].append(cp)
    for audience_id, cps in targets.items():
        rows = Checkpoint.objects.filter(pk__in=cps)
        if audience_id is None:
            rows.filter(audience__isnull=False).update(audience=None)
        else:
            rows.exclude(audience_id=audience_id).update(audience_id=audience_id)
    return {cp: audience_id for audience_id, cps in targets.items() for cp in cps}
