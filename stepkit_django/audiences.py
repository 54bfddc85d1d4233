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

Changing both tables (a reassignment, an escalation) goes through :func:`assign`, or inside
:func:`deferred`: each ``set()`` would otherwise compute an audience, the first one for the
intermediate state (the new users with the old groups), a row no checkpoint keeps, and the summary
of pending counts would move twice. An audience no checkpoint points at is harmless (the queue never
reads it) and is found again by the next checkpoint assigned to the same set; :func:`remove_unused`
(``manage.py stepkit_refresh_audiences --remove-unused``) deletes them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Exists, OuterRef

from .models import Audience, Checkpoint, PendingCount

__all__ = ["assign", "assign_new", "audience_of", "deferred", "key_of", "refresh", "refresh_all", "remove_unused"]

#: Checkpoints recomputed per statement by :func:`refresh` (and by migration 0018's backfill).
BATCH = 2000


def _sorted_strings(pks: Iterable[Any]) -> list[str]:
    """The distinct ids as strings, shortest first then in order: integers in numeric order, any other
    primary key (a UUID, a string) in a fixed one. No ``int()``: a custom user model may have any pk."""
    return sorted({str(pk) for pk in pks}, key=lambda text: (len(text), text))


def _clean(field: str, pks: Iterable[Any]) -> set[Any]:
    """The ids as the primary key of the related model reads them (``"7"`` and ``7`` alike, a UUID's text)."""
    related: Any = Audience._meta.get_field(field).related_model
    to_python = related._meta.pk.to_python
    return {to_python(pk) for pk in pks}


def key_of(user_ids: Iterable[Any], group_ids: Iterable[Any]) -> str:
    """The audience key of a set of assignees: a SHA-256 of the sorted user ids and group ids."""
    users = ",".join(_sorted_strings(user_ids))
    groups = ",".join(_sorted_strings(group_ids))
    return hashlib.sha256(f"users:{users};groups:{groups}".encode()).hexdigest()


def _members(audience: Audience) -> tuple[set[Any], set[Any]]:
    users = set(Audience.users.through.objects.filter(audience_id=audience.pk).values_list("user_id", flat=True))
    groups = set(Audience.groups.through.objects.filter(audience_id=audience.pk).values_list("group_id", flat=True))
    return users, groups


def _sorted_pks(pks: set[Any]) -> list[Any]:
    return sorted(pks, key=lambda pk: (len(str(pk)), str(pk)))


def _create(key: str, user_ids: set[Any], group_ids: set[Any]) -> Audience:
    audience = Audience.objects.create(key=key)
    Audience.users.through.objects.bulk_create(
        [Audience.users.through(audience_id=audience.pk, user_id=pk) for pk in _sorted_pks(user_ids)]
    )
    Audience.groups.through.objects.bulk_create(
        [Audience.groups.through(audience_id=audience.pk, group_id=pk) for pk in _sorted_pks(group_ids)]
    )
    return audience


def _kept(audience: Audience) -> bool:
    """Share-lock ``audience`` (``FOR KEY SHARE``, on PostgreSQL) until the transaction ends, so that
    :func:`remove_unused` cannot delete it before the checkpoint pointing at it commits; False when it was
    deleted or retired meanwhile. Many transactions hold that lock at once (it is the one the foreign key's
    check takes at commit anyway): assignments to a popular group's audience do not wait for each other."""
    alias = router.db_for_write(Audience)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return True  # SQLite: the assigning transaction already holds the database's write lock
    table = connection.ops.quote_name(Audience._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s AND key = %s FOR KEY SHARE", [audience.pk, audience.key])
        return cursor.fetchone() is not None


def audience_of(user_ids: Iterable[Any], group_ids: Iterable[Any]) -> Audience | None:
    """The audience of exactly these users and groups (created if need be); None for nobody.

    An audience found by its key whose members differ (one was deleted since) is retired: its key is
    replaced by a unique one, so that it keeps serving its checkpoints and no new assignment finds it.
    """
    users, groups = _clean("users", user_ids), _clean("groups", group_ids)
    if not users and not groups:
        return None
    key = key_of(users, groups)
    # Share-locked only once its members match: two transactions retiring it must not both hold the lock.
    found = Audience.objects.filter(key=key).first()
    if found is not None and _members(found) == (users, groups):
        if _kept(found):
            return found
        found = None  # removed as unused meanwhile: create it again
    if found is not None:
        Audience.objects.filter(pk=found.pk, key=key).update(key=f"retired-{uuid.uuid4().hex}")
    try:
        with transaction.atomic():
            return _create(key, users, groups)
    except IntegrityError:  # created meanwhile by a concurrent transaction, which committed it
        return Audience.objects.get(key=key)


def _pks(objects: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(getattr(obj, "pk", obj) for obj in objects))


def assign_new(checkpoint: Checkpoint, users: Iterable[Any], groups: Iterable[Any]) -> None:
    """Assign a checkpoint just created (no assignment rows yet) to ``users`` and ``groups``, then point it
    at their audience: one audience computed, where a ``set()`` of each table would compute two (the
    first a throwaway). Writes the assignment tables' rows itself, and so refreshes the audience itself;
    code outside this module must not write them directly (``m2m_changed`` would not see it)."""
    Checkpoint.assigned_groups.through.objects.bulk_create(
        [Checkpoint.assigned_groups.through(checkpoint_id=checkpoint.pk, group_id=pk) for pk in _pks(groups)]
    )
    Checkpoint.assigned_users.through.objects.bulk_create(
        [Checkpoint.assigned_users.through(checkpoint_id=checkpoint.pk, user_id=pk) for pk in _pks(users)]
    )
    checkpoint.audience_id = refresh([checkpoint.pk])[checkpoint.pk]


#: While :func:`deferred` runs: the checkpoints whose assignments changed, with the instances to update.
_deferred: ContextVar[dict[Any, list[Any]] | None] = ContextVar("stepkit_audiences_deferred", default=None)


@contextmanager
def deferred() -> Iterator[None]:
    """Change assignments in the block, then compute each changed checkpoint's audience once, for its final
    assignees: ``m2m_changed`` only notes which checkpoints changed until the block ends.

    Runs the block in a transaction (nothing is recomputed when it raises: its changes roll back). Inside a
    block, a changed checkpoint's audience is still the one before it (the queue shows it to its former
    assignees until the block ends). Nested blocks compute once, when the outermost ends.
    """
    if _deferred.get() is not None:
        yield
        return
    changed: dict[Any, list[Any]] = {}
    token = _deferred.set(changed)
    with transaction.atomic():
        try:
            yield
        finally:
            _deferred.reset(token)
        found = refresh(list(changed))
        for pk, instances in changed.items():
            for instance in instances:
                instance.audience_id = found[pk]


def defer(checkpoint_ids: Iterable[Any], instance: Any = None) -> bool:
    """Note checkpoints whose assignments changed, to refresh when :func:`deferred` ends (``instance``: a
    checkpoint whose ``audience_id`` to update then); False outside a block (refresh them now)."""
    changed = _deferred.get()
    if changed is None:
        return False
    for pk in checkpoint_ids:
        instances = changed.setdefault(pk, [])
        if instance is not None and instance.pk == pk and all(seen is not instance for seen in instances):
            instances.append(instance)
    return True


def assign(checkpoint: Checkpoint, users: Iterable[Any], groups: Iterable[Any]) -> None:
    """Replace ``checkpoint``'s assignees by ``users`` and ``groups`` (instances or ids) and point it at their
    audience, computed once (what a reassignment and an escalation call). Recomputed even when neither
    set changes, so that it also repairs an audience that drifted."""
    with deferred():
        defer([checkpoint.pk], checkpoint)
        checkpoint.assigned_users.set(list(users))
        checkpoint.assigned_groups.set(list(groups))


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
    users: dict[Any, set[Any]] = defaultdict(set)
    groups: dict[Any, set[Any]] = defaultdict(set)
    through_users = Checkpoint.assigned_users.through.objects.filter(checkpoint_id__in=ids)
    for cp, pk in through_users.values_list("checkpoint_id", "user_id"):
        users[cp].add(pk)
    through_groups = Checkpoint.assigned_groups.through.objects.filter(checkpoint_id__in=ids)
    for cp, pk in through_groups.values_list("checkpoint_id", "group_id"):
        groups[cp].add(pk)
    found: dict[tuple[frozenset[Any], frozenset[Any]], Any] = {}
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


def refresh_all(batch_size: int = BATCH) -> int:
    """Recompute the audience of every checkpoint from its assignment rows, ``batch_size`` checkpoints per
    transaction (in the order of their ids); how many checkpoints changed audience.

    For what ``m2m_changed`` does not see: assignment rows written through the assignment tables' models
    (``create()``, ``bulk_create()``, a queryset's ``delete()``), raw SQL, or by code older than the
    audience while migration 0018 backfilled it (``manage.py stepkit_refresh_audiences``).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    changed, last = 0, None
    while True:
        rows = Checkpoint.objects.order_by("pk")
        if last is not None:
            rows = rows.filter(pk__gt=last)
        before = dict(rows.values_list("pk", "audience_id")[:batch_size])
        if not before:
            return changed
        with transaction.atomic():
            after = _refresh(list(before))
        changed += sum(1 for pk, audience_id in after.items() if before[pk] != audience_id)
        last = max(before)


def _unreferenced() -> Any:
    return Audience.objects.filter(~Exists(Checkpoint.objects.filter(audience_id=OuterRef("pk"))))


def remove_unused(batch_size: int = BATCH) -> int:
    """Delete the audiences that no checkpoint points at (with their rows of the summary of pending counts),
    ``batch_size`` per transaction; how many were deleted.

    They are left by reassignments and escalations (the audience before), and by code older than
    :func:`assign` (the intermediate state's); the queue never reads them, so keeping them is harmless. Safe while
    assignments go on: on PostgreSQL each batch locks its audiences (``FOR UPDATE SKIP LOCKED``: one that a
    transaction is assigning, share-locked by :func:`audience_of`, is skipped) and checks again that none is
    used before deleting it; an assignment that finds a locked one waits, then creates it again.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    removed, last = 0, None
    while True:
        with transaction.atomic():
            candidates = _unreferenced().order_by("pk")
            if last is not None:
                candidates = candidates.filter(pk__gt=last)
            ids = list(candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size])
            if not ids:
                return removed
            gone = list(_unreferenced().filter(pk__in=ids).values_list("pk", flat=True))  # again, locked now
            Audience.users.through.objects.filter(audience_id__in=gone).delete()
            Audience.groups.through.objects.filter(audience_id__in=gone).delete()
            Audience.objects.filter(pk__in=gone).delete()
            PendingCount.objects.filter(audience_id__in=gone).delete()  # zero: no checkpoint counted there
        removed += len(gone)
        last = max(ids)
