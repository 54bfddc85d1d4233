"""Writing notifications with the events they tell, in the same transaction, and sending them after it commits.

:mod:`stepkit_django.signal_handlers` calls :func:`on_checkpoint_created` from ``checkpoint_created``
(sent inside the transaction that creates the checkpoint) and :func:`on_audit_event` from the
``post_save`` of each audit event (saved in the transaction of the change it records: a decision,
a reassignment, an escalation, an expiry, a failed run). ``checkpoint_decided`` and ``run_finished``
are sent after the commit, too late to write with the change.

A rolled-back event therefore leaves no notification and sends nothing. After the commit, the
executor (``STEPKIT["EXECUTOR"]``) sends each one: inline right away, or as a task of Django's tasks
framework or of Celery. A notifier that cannot be loaded, or whose recipients cannot be found, is
logged and skipped: a notification never blocks the decision it tells.

:func:`retry_failed` puts failed notifications back for one more attempt, sent the same way after its
commit (the admin's "Send again" action).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..models import AuditEvent, Checkpoint, Notification, PipelineRun
from ..status import AuditAction, CheckpointStatus, NotificationEvent, NotificationStatus
from .notifiers import Occasion, channels_of, get_notifier

__all__ = ["notification_key", "notify", "on_audit_event", "on_checkpoint_created", "retry_failed", "send_after_commit"]

logger = logging.getLogger("stepkit_django")


def notification_key(event: str, occurrence: Any, channel: str, recipient: str) -> str:
    """The unique key of one notification: of one occurrence of ``event``, to ``recipient``, by ``channel``."""
    return hashlib.sha256(f"{event}\x1f{occurrence}\x1f{channel}\x1f{recipient}".encode()).hexdigest()


def _is_actor(recipient: Any, actor: Any) -> bool:
    if actor is None:
        return False
    if isinstance(recipient, str):
        email = str(getattr(actor, "email", "") or "")
        return bool(email) and recipient.strip().lower() == email.strip().lower()
    return bool(getattr(recipient, "pk", None) == actor.pk)


def notify(
    event: str,
    *,
    run: PipelineRun,
    checkpoint: Checkpoint | None = None,
    actor: Any = None,
    occurrence: Any,
    data: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Write the notifications of ``event`` (one per notifier and recipient, the actor left out) and have them
    sent once the current transaction commits; their keys.

    ``occurrence`` tells this event from another of the same kind (the checkpoint, or the audit event):
    writing the same occurrence again adds nothing.
    """
    try:
        names = channels_of(checkpoint.review if checkpoint is not None else None)
    except Exception:
        logger.exception("Notifications of %s cannot be written: the notifiers are misconfigured", event)
        return []
    if not names:
        return []
    occasion = Occasion(event=event, run=run, checkpoint=checkpoint, actor=actor, data=dict(data or {}))
    rows: list[Notification] = []
    for name in names:
        try:
            notifier = get_notifier(name)
            if not notifier.handles(event):
                continue
            recipients = list(notifier.recipients(occasion))
        except Exception:
            logger.exception("Notifier %r cannot tell %s of run %s; skipped", name, event, run.pk)
            continue
        for recipient in recipients:
            if _is_actor(recipient, actor):
                continue
            user = None if isinstance(recipient, str) else recipient
            address = recipient if user is None else str(getattr(user, "email", "") or "")
            who = f"user:{user.pk}" if user is not None else f"address:{address}"
            rows.append(
                Notification(
                    key=notification_key(event, occurrence, name, who),
                    event=event,
                    channel=name,
                    recipient=user,
                    address=address[:500],
                    run=run,
                    checkpoint=checkpoint,
                    actor=actor,
                    data=dict(data or {}),
                )
            )
    if not rows:
        return []
    Notification.objects.bulk_create(rows, ignore_conflicts=True)  # the same occurrence again: nothing new
    keys = [row.key for row in rows]
    ids = list(
        Notification.objects.filter(key__in=keys, status=NotificationStatus.PENDING).values_list("pk", flat=True)
    )
    transaction.on_commit(lambda: send_after_commit(ids), robust=True)
    return keys


def send_after_commit(ids: list[Any]) -> None:
    """Hand the notifications ``ids`` to the executor (called once their transaction committed)."""
    from ..execution.executors import get_executor

    executor = get_executor()
    for pk in ids:
        try:
            executor.enqueue_notification(pk)
        except Exception:  # the sweep sends it later
            logger.exception("Notification %s could not be handed to the executor; the sweep will send it", pk)


def retry_failed(pks: Iterable[Any], now: datetime | None = None) -> list[Any]:
    """Put the failed notifications among ``pks`` back to pending, due at ``now``, and have them sent once the
    transaction commits (:func:`send_after_commit`, then :func:`~stepkit_django.notifications.delivery.deliver`);
    their ids.

    Each gets one more attempt: ``attempts`` keeps counting the earlier ones and ``last_error`` stays until it is
    sent, so failing again it is failed again. Those not failed (sent, or pending) are left as they are.
    """
    now = now or timezone.now()
    with transaction.atomic():
        failed = list(
            Notification.objects.select_for_update()
            .filter(pk__in=list(pks), status=NotificationStatus.FAILED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if failed:
            Notification.objects.filter(pk__in=failed).update(status=NotificationStatus.PENDING, next_attempt_at=now)
            transaction.on_commit(lambda: send_after_commit(failed), robust=True)
            logger.info("Notifications %s put back to be sent again", ", ".join(map(str, failed)))
    return failed


def on_checkpoint_created(checkpoint: Checkpoint, run: PipelineRun) -> None:
    """``review_requested`` to the new checkpoint's reviewers."""
    notify(NotificationEvent.REVIEW_REQUESTED, run=run, checkpoint=checkpoint, occurrence=checkpoint.pk)


def _groups(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def on_audit_event(event: AuditEvent) -> None:
    """The notifications of the audit event just saved (a decision, a reassignment, an escalation…), if any."""
    action = AuditAction(event.action) if event.action in _TOLD else None
    if action is None:
        return
    checkpoint = event.checkpoint if event.checkpoint_id else None
    actor = event.actor if event.actor_id else None
    told = _TOLD[action]
    data: dict[str, Any] = {}
    if action == AuditAction.APPROVED and (checkpoint is None or checkpoint.status != CheckpointStatus.APPROVED):
        return  # an approval short of the quorum decides nothing yet
    if action in (AuditAction.APPROVED, AuditAction.REJECTED, AuditAction.CHANGES_REQUESTED):
        data = {"comment": event.note}
        occurrence: Any = checkpoint.pk if checkpoint is not None else event.pk
    elif action == AuditAction.REASSIGNED:
        if event.data.get("kept_from"):
            return  # a revision keeping a manager's choice of reviewers: they are told review_requested
        after = event.data.get("after") or {}
        data = {"to_users": list(after.get("users", [])), "to_groups": list(after.get("groups", []))}
        occurrence = event.pk
    elif action == AuditAction.ESCALATED:
        data = {"to_groups": _groups(event.data.get("to_group"))}
        occurrence = event.pk
    elif action == AuditAction.RUN_FAILED:
        error = str(event.data.get("error", ""))
        data = {"step": event.data.get("step", ""), "error_type": error.split(":", 1)[0].strip()}
        occurrence = event.pk
    else:
        occurrence = checkpoint.pk if checkpoint is not None else event.pk
    notify(told, run=event.run, checkpoint=checkpoint, actor=actor, occurrence=occurrence, data=data)


#: The audit actions that are told, and as which event.
_TOLD: dict[str, NotificationEvent] = {
    AuditAction.APPROVED: NotificationEvent.APPROVED,
    AuditAction.REJECTED: NotificationEvent.REJECTED,
    AuditAction.CHANGES_REQUESTED: NotificationEvent.CHANGES_REQUESTED,
    AuditAction.REASSIGNED: NotificationEvent.REASSIGNED,
    AuditAction.ESCALATED: NotificationEvent.ESCALATED,
    AuditAction.EXPIRED: NotificationEvent.EXPIRED,
    AuditAction.RUN_FAILED: NotificationEvent.RUN_FAILED,
}
