"""stepkit_django's own signal receivers, connected by ``StepkitConfig.ready()``.

* ``m2m_changed`` of the checkpoints' assignments keeps ``Checkpoint.assigned`` true for a
  checkpoint that gets an assignee through the ORM (the queue skips the assignment lookups
  of checkpoints created assigned to nobody), and ``Checkpoint.audience`` the set of its assignees;
* ``connection_created`` lets Django's flush empty the audit table on SQLite, whose
  triggers refuse every DELETE (migration 0008);
* ``checkpoint_created`` and the ``post_save`` of audit events write the notifications of the event in
  its own transaction (see :mod:`stepkit_django.notifications.events`);
* ``checkpoint_created``, ``checkpoint_decided`` and ``run_finished`` feed the OpenTelemetry metrics, and
  a decision's span (see :mod:`stepkit_django.telemetry`); they do nothing while no SDK records.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.signals import connection_created
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from . import audiences
from .models import AuditEvent, Checkpoint, PipelineRun
from .notifications import events as notification_events
from .signals import checkpoint_created, checkpoint_decided, run_finished
from .telemetry import metrics, tracing

__all__ = ["SQLITE_AUDIT_TRIGGERS"]


#: The append-only triggers of the audit table on SQLite (migration 0008).
SQLITE_AUDIT_TRIGGERS = ("stepkit_django_audit_no_update", "stepkit_django_audit_no_delete")


@receiver(connection_created, dispatch_uid="stepkit_django.sqlite_flush_keeps_audit_triggers")
def _sqlite_flush_keeps_audit_triggers(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Let Django's flush empty the audit table on SQLite, whose triggers refuse every DELETE.

    On PostgreSQL the flush is a ``TRUNCATE``, which row triggers do not see. On SQLite it is
    a ``DELETE`` per table: when the audit table is among them, the flush's statements, which
    Django runs in one transaction (DDL included), drop the triggers first and re-create them,
    as they were, last. Other connections never see the table without them. Only the statements
    of a flush (``manage.py flush`` and ``sqlflush``, the flush after a ``TransactionTestCase``)
    change; any other DELETE is refused.
    """
    if connection.vendor != "sqlite" or getattr(connection.ops, "_stepkit_audit_flush", False):
        return
    plain = connection.ops.sql_flush

    def sql_flush(style: Any, tables: Any, *, reset_sequences: bool = False, allow_cascade: bool = False) -> list[str]:
        statements = plain(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return _around_audit_delete(connection, list(statements))

    connection.ops.sql_flush = sql_flush
    connection.ops._stepkit_audit_flush = True


def _around_audit_delete(connection: Any, statements: list[str]) -> list[str]:
    table = AuditEvent._meta.db_table
    quoted = connection.ops.quote_name(table)
    if not any(quoted in statement and "DELETE" in statement for statement in statements):
        return statements
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s AND name IN (%s, %s) "
            "ORDER BY name",
            [table, *SQLITE_AUDIT_TRIGGERS],
        )
        triggers = cursor.fetchall()
    drops = [f"DROP TRIGGER {connection.ops.quote_name(name)};" for name, _ in triggers]
    creates = [f"{sql};" for _, sql in triggers]
    return [*drops, *statements, *creates]


@receiver(m2m_changed, sender=Checkpoint.assigned_users.through)
@receiver(m2m_changed, sender=Checkpoint.assigned_groups.through)
def _assignment_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
    """Keep ``Checkpoint.assigned`` and ``Checkpoint.audience`` true to the assignment tables.

    A stale ``assigned=False`` would show the checkpoint to every reviewer with the permission, so every
    ``add()`` (from either side) sets it; removing assignments leaves it true (fail closed). Every add,
    remove and clear recomputes the audience of the checkpoints it changed (see
    :mod:`stepkit_django.audiences`), in the same transaction; inside ``audiences.deferred()``, once
    when the block ends.
    """
    if action == "pre_clear" and reverse:  # user.stepkit_assigned_checkpoints.clear(): post_clear has no pk_set
        through = sender.objects.filter(**{_reverse_column(sender, instance): instance.pk})
        instance._stepkit_cleared = list(through.values_list("checkpoint_id", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if reverse:  # user.stepkit_assigned_checkpoints.add(...) or group.stepkit_assigned_checkpoints.add(...)
        ids = list(pk_set or ()) if action != "post_clear" else instance.__dict__.pop("_stepkit_cleared", [])
        if action == "post_add":
            Checkpoint.objects.filter(pk__in=ids, assigned=False).update(assigned=True)
        if not audiences.defer(ids):
            audiences.refresh(ids)
    else:  # the instance may be stale (or a bare Checkpoint(pk=...)): ask the row
        if action == "post_add":
            Checkpoint.objects.filter(pk=instance.pk, assigned=False).update(assigned=True)
            instance.assigned = True
        if not audiences.defer([instance.pk], instance):
            instance.audience_id = audiences.refresh([instance.pk])[instance.pk]


def _reverse_column(sender: Any, instance: Any) -> str:
    """The through table's column naming ``instance`` (a user or a group)."""
    return "user_id" if sender is Checkpoint.assigned_users.through else "group_id"


@receiver(checkpoint_created, dispatch_uid="stepkit_django.notify_review_requested")
def _notify_review_requested(sender: Any, checkpoint: Checkpoint, run: Any, **kwargs: Any) -> None:
    """``review_requested``, written in the transaction that creates the checkpoint (assignments set)."""
    notification_events.on_checkpoint_created(checkpoint, run)


@receiver(post_save, sender=AuditEvent, dispatch_uid="stepkit_django.notify_audit_event")
def _notify_audit_event(sender: Any, instance: AuditEvent, created: bool, **kwargs: Any) -> None:
    """The notifications of a decision, reassignment, escalation, expiry or failed run, written in the
    transaction of the change (its audit event is saved with it)."""
    if created and not kwargs.get("raw", False):
        notification_events.on_audit_event(instance)


@receiver(checkpoint_created, dispatch_uid="stepkit_django.telemetry_checkpoint_created")
def _measure_checkpoint_created(sender: Any, checkpoint: Checkpoint, **kwargs: Any) -> None:
    """``stepkit.checkpoints.created``, once the pause commits."""
    metrics.checkpoint_created(checkpoint)


@receiver(checkpoint_decided, dispatch_uid="stepkit_django.telemetry_checkpoint_decided")
def _measure_checkpoint_decided(sender: Any, checkpoint: Checkpoint, decision: str, **kwargs: Any) -> None:
    """``stepkit.checkpoints.decided`` and ``stepkit.checkpoint.time_to_decision``; the decision span's outcome."""
    metrics.checkpoint_decided(checkpoint, decision)
    tracing.decided(checkpoint, decision)


@receiver(run_finished, sender=PipelineRun, dispatch_uid="stepkit_django.telemetry_run_finished")
def _measure_run_finished(sender: Any, run: PipelineRun, status: str, **kwargs: Any) -> None:
    """``stepkit.runs.completed``, ``.failed``, ``.rejected`` or ``.cancelled``."""
    metrics.run_finished(run, status)
