"""The queue's count from a summary: pending checkpoints per pipeline, step, permission and audience.

An exact ``COUNT(*)`` of a reviewer's queue reads an index entry per pending item (about 60 ms for
200,000 on the development machine); the queue's default views (pending, by pipeline and step) add it
up instead from :class:`~stepkit_django.models.PendingCount`, a few rows per pipeline and step. The
summary is kept on PostgreSQL by a trigger on the checkpoints' table (migration 0019), in the
transaction of every insert, update and delete: no service, bulk ``update()`` or raw SQL can change a
checkpoint without it. Other databases have no trigger and count the queue itself (:func:`queue_count`
answers None there).

What a reviewer may see is decided by :func:`stepkit_django.permissions.counted_for` (the summary's rows)
and :func:`~stepkit_django.permissions.may_review_in` (the checkpoints of runs they started, counted
apart: their queue holds those whether or not they may review them).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.core.paginator import Paginator
from django.db import connections, router, transaction
from django.db.models import Sum

from . import permissions
from .models import Audience, Checkpoint, PendingCount, PipelineRun

__all__ = ["Counted", "CountedPaginator", "count_for", "queue_count", "rebuild", "summary_kept"]

#: A queue whose summary total is below this is counted exactly instead: cheap for so few items, and an
#: undercount of a drifted summary cannot then hide them (no next link).
EXACT_BELOW = 500

_FILL = """
INSERT INTO stepkit_django_pendingcount (pipeline_name, step, permission, assigned, audience_id, slot, pending)
SELECT pipeline_name, step, permission, assigned, coalesce(audience_id, 0), 0, count(*)
FROM stepkit_django_checkpoint WHERE status = 'pending'
GROUP BY pipeline_name, step, permission, assigned, coalesce(audience_id, 0)
"""


def summary_kept() -> bool:
    """Whether the database keeps the summary (PostgreSQL, with migration 0019's trigger)."""
    return connections[router.db_for_read(PendingCount)].vendor == "postgresql"


def queue_count(user: Any, pipeline: str | None = None, step: str | None = None) -> int | None:
    """How many pending checkpoints ``user``'s queue holds (``Checkpoint.objects.for_user(user).pending()``),
    of ``pipeline`` and ``step`` if given; None when the summary is not kept or has drifted below zero
    (count the queue then)."""
    if not summary_kept():
        return None
    if not permissions.is_active_user(user):
        return 0
    rows = PendingCount.objects.all()
    pending = Checkpoint.objects.pending()
    if pipeline is not None:
        rows, pending = rows.filter(pipeline_name=pipeline), pending.filter(pipeline_name=pipeline)
    if step is not None:
        rows, pending = rows.filter(step=step), pending.filter(step=step)
    total = int(permissions.counted_for(rows, Audience, user).aggregate(n=Sum("pending"))["n"] or 0)
    if total < 0:  # a drifted summary (see rebuild()): count the queue rather than answer nonsense
        return None
    if permissions.is_superuser(user):
        return total
    # A reassigner's orphans (assigned, no assignee left): counted from the queue, the summary cannot tell.
    total += permissions.count_orphans(pending, user)
    # Their runs' checkpoints they may not review are in their queue too (a run's starter follows it).
    started = pending.filter(run_id__in=PipelineRun.objects.filter(started_by=user).values("pk"))
    return total + started.count() - permissions.may_review_in(started, user).count()


class Counted:
    """A count already known, where a paginator expects a queryset's ``count()``."""

    def __init__(self, total: int) -> None:
        self.total = total

    def count(self) -> int:
        return self.total


class CountedPaginator(Paginator):  # type: ignore[type-arg]
    """Django's paginator, with the count given (from the summary) rather than counted."""

    def __init__(self, object_list: Any, per_page: int, *args: Any, total: int, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.total = total

    @property
    def count(self) -> int:
        return self.total


def count_for(
    user: Any,
    params: Mapping[str, Any],
    *,
    pipeline: str,
    step: str,
    ignored: Collection[str],
    pending_by_default: bool,
) -> int | None:
    """The count of the queue page that ``params`` (a request's query) asks for, from the summary, when its
    filters are only ones the summary answers: the status pending (or no status, with
    ``pending_by_default``), the parameters ``pipeline`` and ``step``, each given once, and ``ignored`` ones
    that do not change the count (the page, the order). None otherwise: count the queue then."""
    keys = set(params)
    if not keys <= {"status", pipeline, step, *ignored}:
        return None
    getlist = getattr(params, "getlist", None)
    if getlist is not None and any(len(getlist(key)) != 1 for key in keys):
        return None
    status = params.get("status")
    if status != "pending" and not (status is None and pending_by_default):
        return None
    total = queue_count(user, params.get(pipeline) or None, params.get(step) or None)
    # A small queue is counted exactly: cheap, and a summary that undercounts cannot hide its items.
    return None if total is not None and total < EXACT_BELOW else total


def rebuild() -> int | None:
    """Refill the summary from the pending checkpoints, under a ``SHARE`` lock of the checkpoints' table
    (writes wait for it); how many rows it holds then, None where the summary is not kept.

    For a summary that drifted: rows written with the trigger disabled (``pg_restore --disable-triggers``,
    ``session_replication_role = replica``), or restored apart from the checkpoints
    (``manage.py stepkit_rebuild_pending_counts``).
    """
    if not summary_kept():
        return None
    alias = router.db_for_write(PendingCount)
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute("LOCK TABLE stepkit_django_checkpoint IN SHARE MODE")
        cursor.execute("DELETE FROM stepkit_django_pendingcount")
        cursor.execute(_FILL)
    return PendingCount.objects.using(alias).count()
