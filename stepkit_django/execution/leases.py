"""Leases: which process executes a run, until when, and recovery when that process dies.

A process takes a run with one conditional UPDATE (``queued`` → ``running``, or
``running`` with an expired lease → ``running``), so two workers never execute
the same run at once. The lease is renewed by a saved step once half of it has
passed and, while a long step runs, by a heartbeat thread. :func:`requeue_expired`
(called by :func:`stepkit_django.jobs.recover`) puts runs whose lease expired back in
the queue: their completed steps are not run again, the step that was running is (at
least once), and it can read a stable idempotency key from :func:`stepkit_django.current_step`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import connection, connections, transaction
from django.utils import timezone

from .. import audit
from ..conf import settings
from ..models import PipelineRun
from ..status import AuditAction, RunStatus
from ..transitions import check_run
from . import _sql as sql

__all__ = ["HEARTBEAT", "acquire", "lease_duration", "new_owner", "requeue_expired", "stale_queued", "take"]

logger = logging.getLogger("stepkit_django")


def lease_duration() -> timedelta:
    return timedelta(seconds=float(settings.LEASE_SECONDS))


def new_owner() -> str:
    """A lease owner id unique to one execution: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(run_id: Any, owner: str, *, force: bool = False) -> bool:
    """Take ``run_id`` for ``owner`` if it is queued, or running with an expired (or no) lease.

    ``force`` takes a running run even if its lease is still valid: only when you
    know its process is gone.
    """
    return take(run_id, owner, force=force) is not None


def take(run_id: Any, owner: str, *, force: bool = False) -> tuple[datetime, datetime] | None:
    """:func:`acquire`, returning ``(lease expiry, time taken)`` as written, or None."""
    now = timezone.now()
    until = now + lease_duration()
    at = sql.prep(PipelineRun, "updated_at", now)
    params = [RunStatus.RUNNING.value, owner, sql.prep(PipelineRun, "lease_expires_at", until), at, at]
    params += [sql.prep(PipelineRun, "id", run_id), RunStatus.QUEUED.value, RunStatus.RUNNING.value, at]
    with sql.cursor() as cursor:
        cursor.execute(_take_statement(connection.vendor, force), params)
        taken = cursor.rowcount
    return (until, now) if taken == 1 else None


@cache
def _take_statement(vendor: str, force: bool) -> str:
    """The conditional UPDATE that takes a run: queued, or running with an expired (or no) lease.

    Compiled once (this runs for every run and every resume); ``force`` also takes
    a running run whose lease is valid.
    """
    status, expires, started = (sql.column(PipelineRun, n) for n in ("status", "lease_expires_at", "started_at"))
    return (
        f"UPDATE {sql.table(PipelineRun)} SET {status} = %s, {sql.column(PipelineRun, 'lease_owner')} = %s, "
        f"{expires} = %s, {started} = COALESCE({started}, %s), {sql.column(PipelineRun, 'updated_at')} = %s "
        f"WHERE {sql.column(PipelineRun, 'id')} = %s AND ({status} = %s OR ({status} = %s AND "
        f"({expires} < %s OR {expires} IS NULL{' OR TRUE' if force else ''})))"
    )


class Heartbeat:
    """Renews the leases of the runs this process is executing while their steps run.

    One daemon thread per process, started with the first held run. It renews
    every ``LEASE_SECONDS / 3`` while runs are held, so long steps do not lose
    their lease, and closes its database connection whenever none is held.
    Holding and releasing a run only update a dict (runs that end quickly cost no
    thread start and no renewal).
    """

    def __init__(self) -> None:
        self._held: dict[Any, str] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, run_id: Any, owner: str) -> None:
        with self._changed:
            self._held[run_id] = owner
            if self._thread is None or not self._thread.is_alive():  # first use, or after a fork
                self._thread = threading.Thread(target=self._loop, name="stepkit-lease-heartbeat", daemon=True)
                self._thread.start()
            self._changed.notify()

    def release(self, run_id: Any) -> None:
        with self._changed:
            self._held.pop(run_id, None)
            self._changed.notify()

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._held))  # idle until a run is held
                interval = max(0.5, float(settings.LEASE_SECONDS) / 3)
                self._changed.wait_for(lambda: not self._held, timeout=interval)
                held = dict(self._held)
            if held:
                self._renew(held)
            else:
                connections.close_all()  # idle again: give back the connection a renewal opened

    def _renew(self, held: dict[Any, str]) -> None:
        until = timezone.now() + lease_duration()
        for run_id, owner in held.items():
            try:
                PipelineRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, lease_owner=owner).update(
                    lease_expires_at=until
                )
            except Exception:  # a database hiccup must not kill the heartbeat
                logger.exception("Could not renew the lease of run %s", run_id)
                connections.close_all()


HEARTBEAT = Heartbeat()


def requeue_expired(now: datetime) -> list[PipelineRun]:
    """Put runs whose lease expired back in the queue, audited; return them (to be sent to a worker again).

    Safe to run from several processes at once: each run is requeued by one of them.
    """
    check_run(RunStatus.RUNNING, RunStatus.QUEUED)
    requeued = []
    expired = PipelineRun.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now).values_list(
        "pk", "lease_owner"
    )
    for pk, owner in list(expired):
        with transaction.atomic():
            moved = PipelineRun.objects.filter(
                pk=pk, status=RunStatus.RUNNING, lease_owner=owner, lease_expires_at__lt=now
            ).update(status=RunStatus.QUEUED, lease_owner="", lease_expires_at=None, updated_at=now)
            if not moved:
                continue  # renewed meanwhile, or another sweeper got it
            run = PipelineRun.objects.get(pk=pk)
            audit.record(run, AuditAction.RUN_RECOVERED, data={"lease_owner": owner, "after": run.current_step})
        requeued.append(run)
    return requeued


def stale_queued(now: datetime) -> list[PipelineRun]:
    """Queued runs nobody picked up within a lease (their message may be lost), marked as sent again now."""
    stale = []
    for run in PipelineRun.objects.filter(status=RunStatus.QUEUED, updated_at__lt=now - lease_duration()):
        if PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(updated_at=now):
            stale.append(run)
    return stale
